"""Fit the kernel-efficiency curves to the published microbenchmarks of
codesign/catalog/microbench.csv (this session had no accelerator of its own; see
codesign/catalog/MICROBENCH.md for the sources), and print how the model's curves follow them.

    python scripts/fit_microbench.py

* Attention (codesign/kernels/attention.py): BLOCK_OVERHEAD and CAUSAL_EXTRA by least squares
  in log space over the FlashAttention-3 H100 forward sweep (hd 128, non-causal, 512-16k
  tokens) and the FlashAttention-4 B200 forward sweeps (hd 128, non-causal 1k-16k, causal
  1k-4k), each chip with its own asymptote; the asymptotes are the generations'
  ``attention_best`` in codesign/efficiency.py.
* GEMM best shapes (codesign/efficiency.py SILICON): the largest measured fraction of dense
  peak per chip and precision among the best-shape ("MAMF") rows.
* GEMM by M (codesign/kernels/gemm.py): the model's throughput next to the published cuBLAS
  H100 bf16 sweep (N 2112, K 7168), relative to its largest-M point.

With an accelerator, measure these curves instead: ``python scripts/measure_microbench.py
--out measured.csv`` (PyTorch, one run of a few minutes) writes rows in the same columns,
to be added to microbench.csv with their source and fitted here.
"""

from __future__ import annotations

import csv
import math
from importlib import resources

import numpy as np

from codesign.model import catalog, pack
from codesign.model.kernels import attention, layout
from codesign.model.kernels.gemm import gemm_time, tile_elems


def rows() -> list[dict[str, str]]:
    """The rows of the packaged microbench.csv."""
    path = resources.files("codesign.model.catalog").joinpath("microbench.csv")
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def attention_sweeps(data: list[dict[str, str]]) -> dict[str, list[tuple[float, int, float]]]:
    """(seq, causal, TFLOP/s) of the forward sweeps used for the fit, by chip."""
    out: dict[str, list[tuple[float, int, float]]] = {"h100-sxm": [], "b200": []}
    for r in data:
        if r["kernel"] != "attention" or r["direction"] != "fwd" or r["head_dim"] != "128":
            continue
        note = r["note"]
        if r["chip"] == "h100-sxm" and note.startswith("flash_v3 (FlashAttention-3, July 2024"):
            out["h100-sxm"].append((float(r["seq_len"]), int(r["causal"]), float(r["tflops"])))
        if r["chip"] == "b200" and note.startswith("FlashAttention-4 forward; B200 inferred"):
            out["b200"].append((float(r["seq_len"]), int(r["causal"]), float(r["tflops"])))
    return out


def share(seq: float, causal: int, c: float, cc: float) -> float:
    """flash_util's share for one head of one sequence (the model's form)."""
    pairs = seq * seq / 2 if causal else seq * seq
    waste = seq * attention.ATTN_BLOCK * (c + (cc if causal else 0.0))
    return pairs / (pairs + waste)


def fit_attention(sweeps: dict) -> tuple[float, float, dict[str, float]]:
    """(BLOCK_OVERHEAD, CAUSAL_EXTRA, asymptote TFLOP/s by chip) minimising the squared log
    error, each chip's asymptote eliminated in closed form."""
    best = None
    for c in np.arange(0.2, 4.0, 0.05):
        for cc in np.arange(0.5, 5.0, 0.05):
            err = 0.0
            for data in sweeps.values():
                s = np.array([share(q, k, c, cc) for q, k, _ in data])
                t = np.array([x for _, _, x in data])
                resid = np.log(t) - np.log(s)
                err += float(np.sum((resid - resid.mean()) ** 2))
            if best is None or err < best[0]:
                best = (err, float(c), float(cc))
    _, c, cc = best
    asym = {}
    for chip, data in sweeps.items():
        s = np.array([share(q, k, c, cc) for q, k, _ in data])
        t = np.array([x for _, _, x in data])
        asym[chip] = float(np.exp(np.mean(np.log(t) - np.log(s))))
    return c, cc, asym


def best_shapes(data: list[dict[str, str]]) -> dict[tuple[str, str], float]:
    """Largest measured fraction of dense peak per (chip, precision) among the MAMF rows."""
    out: dict[tuple[str, str], float] = {}
    for r in data:
        if r["kernel"] != "gemm" or ("ml-engineering" not in r["source"] and "MAMF" not in (
                r["source"] + r["note"])):
            continue
        if not r["peak_dense_tflops"]:
            continue
        key = (r["chip"], r["precision"])
        out[key] = max(out.get(key, 0.0), float(r["tflops"]) / float(r["peak_dense_tflops"]))
    return out


def gemm_by_m(data: list[dict[str, str]]) -> list[tuple[float, float, float]]:
    """(M, measured TFLOP/s, model TFLOP/s) for the cuBLAS H100 bf16 sweep N 2112 K 7168."""
    chip = pack.chip_array(catalog.get_chip("h100-sxm"))
    out = []
    for r in data:
        if (r["chip"] == "h100-sxm" and r["kernel"] == "gemm" and r["precision"] == "bf16"
                and r["n"] == "2112" and r["k"] == "7168" and "cuBLAS" in r["note"]):
            m, n, k = float(r["m"]), 2112.0, 7168.0
            t = gemm_time(m, k, n, chip[layout.C_FLOPS_BF16], chip[layout.C_GEMM_EFF],
                          chip[layout.C_HBM_BPS], chip[layout.C_MEM_EFF], chip[layout.C_SRAM_B],
                          2.0, chip[layout.C_UNITS], tile_elems(chip),
                          chip[layout.C_MIN_TILE_M])
            out.append((m, float(r["tflops"]), 2.0 * m * n * k / t / 1e12))
    return sorted(out)


def main() -> None:
    data = rows()
    c, cc, asym = fit_attention(attention_sweeps(data))
    print(f"attention: BLOCK_OVERHEAD = {c:.2f}, CAUSAL_EXTRA = {cc:.2f} (model: "
          f"{attention.BLOCK_OVERHEAD}, {attention.CAUSAL_EXTRA})")
    for chip, a in asym.items():
        peak = catalog.get_chip(chip).tflops_bf16
        print(f"  {chip}: asymptote {a:.0f} TFLOP/s = {a / peak:.3f} of the bf16 peak")
    print("GEMM best shape (fraction of dense peak):")
    for (chip, prec), f in sorted(best_shapes(data).items()):
        print(f"  {chip:16s} {prec:6s} {f:.3f}")
    sweep = gemm_by_m(data)
    if sweep:
        m_ref, meas_ref, model_ref = sweep[-1]
        print(f"GEMM H100 bf16 N 2112 K 7168, relative to M {m_ref:.0f} (measured, model):")
        for m, meas, model in sweep:
            print(f"  M {m:6.0f}: {meas / meas_ref:.2f} {model / model_ref:.2f} "
                  f"(log ratio {math.log(model / meas):+.2f})")


if __name__ == "__main__":
    main()
