"""scripts/measure_microbench.py without an accelerator: the sweep covers what issue 12 asks
(bf16 and fp8 GEMMs against M, N, K, small-M grouped GEMMs, attention forward and backward
against sequence length and head width), its FLOP counts follow the conventions of the
published rows it sits beside, and its rows have microbench.csv's columns. The timing itself
needs PyTorch on the accelerator machine; without PyTorch the script exits 2 and says so."""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import measure_microbench as mm  # noqa: E402


def test_columns_are_those_of_the_packaged_table() -> None:
    path = resources.files("codesign.model.catalog").joinpath("microbench.csv")
    with path.open(encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == mm.COLUMNS


def test_sweep_covers_the_issue() -> None:
    points = list(mm.sweeps(quick=False))
    gemm = [p for p in points if p["kernel"] == "gemm"]
    assert {p["precision"] for p in gemm} == {"bf16", "fp8"}
    assert {p["m"] for p in gemm} == set(mm.GEMM_M) and min(mm.GEMM_M) <= 16
    assert len({(p["n"], p["k"]) for p in gemm}) == len(mm.GEMM_NK)
    grouped = [p for p in points if p["kernel"] == "grouped_gemm"]
    assert {p["groups"] for p in grouped} == {8, 64, 256} and min(p["m"] for p in grouped) == 16
    attn = [p for p in points if p["kernel"] == "attention"]
    assert {p["direction"] for p in attn} == {"fwd", "bwd"}
    assert {p["causal"] for p in attn} == {0, 1}
    assert {p["head_dim"] for p in attn} == {64, 128}
    assert {p["seq_len"] for p in attn} == set(mm.ATTN_SEQ)
    assert all(p["batch"] * p["seq_len"] >= mm.ATTN_TOKENS for p in attn)
    quick = list(mm.sweeps(quick=True))
    assert 0 < len(quick) < len(points)
    assert {p["kernel"] for p in quick} == {"gemm", "grouped_gemm", "attention"}


def test_flop_conventions() -> None:
    assert mm.gemm_flops(64, 2112, 7168) == 2 * 64 * 2112 * 7168
    assert mm.gemm_flops(128, 2048, 7168, groups=8) == 8 * mm.gemm_flops(128, 2048, 7168)
    fwd = mm.attention_flops(2, 16, 8192, 128, False, "fwd")
    assert fwd == 4 * 2 * 16 * 8192**2 * 128
    assert mm.attention_flops(2, 16, 8192, 128, True, "fwd") == fwd / 2
    assert mm.attention_flops(2, 16, 8192, 128, False, "bwd") == 2.5 * fwd


def test_row_and_chip_names() -> None:
    point = {"kernel": "gemm", "precision": "bf16", "m": 4096, "n": 4096, "k": 4096}
    r = mm.row(point, 2 * 4096**3 / 700e12, "h200", 989.4, "measured: test", "median")
    assert tuple(r) == mm.COLUMNS
    assert r["tflops"] == "700.0" and r["peak_dense_tflops"] == "989.4" and r["m"] == "4096"
    assert mm.chip_of("NVIDIA H200") == "h200" and mm.chip_of("NVIDIA H100 80GB HBM3") == \
        "h100-sxm"
    assert mm.chip_of("NVIDIA GB200") == "gb200" and mm.chip_of("NVIDIA B200") == "b200"
    assert mm.chip_of("AMD Instinct MI300X") == "mi300x" and mm.chip_of("CPU") is None
    assert mm.peak_tflops("h200", "fp8") == pytest.approx(1978.9, rel=0.01)


def test_without_pytorch_exits_2_with_a_message(tmp_path: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PyTorch is installed here: the missing-PyTorch path cannot be shown")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "measure_microbench.py"),
                           "--out", str(tmp_path / "m.csv")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and "PyTorch" in proc.stderr
    assert not (tmp_path / "m.csv").exists()
