"""The ``codesign`` command outside of searches: catalog, evaluate, --help, the console script.

The keys and exit codes checked here are the command contract of DESIGN.md: relied on from
outside the code, so they change only with a deprecation path.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run, run_json

from codesign.cli import COMMANDS
from codesign.model import catalog

EVALUATE = ["evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b", "--n-chips", "64",
            "--seq-len", "8192", "--global-batch", "512", "--json"]

CONTRACT_KEYS = {"chip", "die_area_mm2", "tdp_w", "chip_cost_usd", "n_chips", "mapping",
                 "step_time_s", "tokens_per_s", "tokens_per_s_per_chip", "mfu",
                 "cluster_power_w", "tokens_per_joule", "cost_per_mtoken_usd", "feasible",
                 "reason"}
MAPPING_KEYS = {"tp", "pp", "dp", "cp", "ep", "micro_batch", "recompute", "zero"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# ----------------------------------------------------------------------------- catalog


def test_catalog_lists_chips_and_models(capsys) -> None:
    code, out, err = run(capsys, "catalog")
    assert code == 0, err
    # 22 since chips.csv gained the H800 (DeepSeek-V3's training chip) in issue 12
    assert "22 reference chips" in out and "h800" in catalog.chip_ids()
    for chip_id in catalog.chip_ids():
        assert chip_id in out, chip_id
    for model_id in catalog.model_ids():
        assert model_id in out, model_id


def test_catalog_json(capsys) -> None:
    doc = run_json(capsys, "catalog", "--json")
    assert len(doc["chips"]) == 22  # 21 + h800 (issue 12)
    assert [c["id"] for c in doc["chips"]] == catalog.chip_ids()
    assert sorted(doc["models"]) == sorted(catalog.model_ids())


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_json_has_the_contract_keys(capsys) -> None:
    doc = run_json(capsys, *EVALUATE)
    assert CONTRACT_KEYS <= doc.keys(), CONTRACT_KEYS - doc.keys()
    assert MAPPING_KEYS <= doc["mapping"].keys(), MAPPING_KEYS - doc["mapping"].keys()
    assert doc["chip"] == "h100-sxm"
    assert doc["n_chips"] == 64
    assert doc["feasible"] is True and doc["reason"] == ""
    m = doc["mapping"]
    assert m["tp"] * m["pp"] * m["dp"] * m["cp"] == 64
    for key in ("step_time_s", "tokens_per_s", "tokens_per_s_per_chip", "cluster_power_w",
                "tokens_per_joule", "die_area_mm2", "tdp_w"):
        assert math.isfinite(doc[key]) and doc[key] > 0, key
    assert 0 < doc["mfu"] <= 1
    assert doc["tokens_per_s_per_chip"] * 64 == pytest.approx(doc["tokens_per_s"])
    assert doc["tokens_per_s"] == pytest.approx(8192 * 512 / doc["step_time_s"])
    assert doc["tokens_per_joule"] == pytest.approx(doc["tokens_per_s"] / doc["cluster_power_w"])


def test_evaluate_honours_fixed_mapping_flags(capsys) -> None:
    doc = run_json(capsys, *EVALUATE, "--tp", "2", "--pp", "2")
    assert doc["feasible"] is True
    assert (doc["mapping"]["tp"], doc["mapping"]["pp"]) == (2, 2)
    assert doc["mapping"]["dp"] * doc["mapping"]["cp"] == 16


def test_evaluate_impossible_mapping_is_infeasible_not_an_error(capsys) -> None:
    doc = run_json(capsys, *EVALUATE, "--tp", "3")
    assert doc["feasible"] is False
    assert isinstance(doc["reason"], str) and doc["reason"].strip()
    assert CONTRACT_KEYS <= doc.keys()


INFEASIBLE_NULL = ("step_time_s", "mfu", "tokens_per_s", "tokens_per_s_per_chip",
                   "memory_gb_per_chip", "chip_power_w", "cluster_power_w", "tokens_per_joule",
                   "cost_per_mtoken_usd", "tokens_per_s_per_mw", "energy_per_token_j",
                   "clock_fraction")


def test_evaluate_infeasible_json_has_null_metrics_and_the_reason(capsys) -> None:
    """Issue 13: an infeasible design printed 0.0 for every metric (cost included); now
    every predicted number is null, the reason is given, and the exit code stays 0."""
    doc = run_json(capsys, *EVALUATE, "--tp", "3")
    assert doc["feasible"] is False and "mapping" in doc["reason"]
    for key in INFEASIBLE_NULL:
        assert doc[key] is None, (key, doc[key])
    assert all(v is None for v in doc["mapping"].values()), doc["mapping"]
    assert doc["chip"] == "h100-sxm" and doc["n_chips"] == 64  # what was asked stays
    assert doc["chip_cost_usd"] == catalog.get_chip("h100-sxm").price_usd


def test_evaluate_infeasible_text_says_why_and_prints_no_metric(capsys) -> None:
    code, out, err = run(capsys, *[a for a in EVALUATE if a != "--json"], "--tp", "3")
    assert code == 0, err
    assert "infeasible: no valid parallel mapping" in out
    for key in INFEASIBLE_NULL:
        assert key not in out, key
    assert ": 0.0" not in out


def test_evaluate_design_toml_as_chip(tmp_path: Path, capsys) -> None:
    design = tmp_path / "my_chip.toml"
    design.write_text("[design]\ncompute_units = 200\n", encoding="utf-8")
    doc = run_json(capsys, *[str(design) if a == "h100-sxm" else a for a in EVALUATE])
    assert CONTRACT_KEYS <= doc.keys()
    assert doc["chip"] == "my_chip"
    assert doc["die_area_mm2"] > 0 and doc["tdp_w"] > 0

    smaller = tmp_path / "small_chip.toml"
    smaller.write_text("[design]\ncompute_units = 100\n", encoding="utf-8")
    small = run_json(capsys, *[str(smaller) if a == "h100-sxm" else a for a in EVALUATE])
    # die_area_mm2 is ONE compute die (chips.csv); the silicon in all dies shrinks
    assert (small["die_area_mm2"] * small["n_compute_dies"]
            < doc["die_area_mm2"] * doc["n_compute_dies"])


def test_evaluate_bad_design_toml_names_file_and_key(tmp_path: Path, capsys) -> None:
    design = tmp_path / "bad_chip.toml"
    design.write_text('[design]\ncompute_units = "many"\n', encoding="utf-8")
    code, out, err = run(capsys, *[str(design) if a == "h100-sxm" else a for a in EVALUATE])
    assert code == 2, (out, err)
    assert str(design) in err and "compute_units" in err and "many" in err, err
    assert out == ""


@pytest.mark.parametrize(("flag", "value"), [
    ("--chip", "h100-pcie"),
    ("--workload", "llama3-7b"),
    ("--tp", "0"),
    ("--n-chips", "abc"),
    ("--pp", "-2"),
    ("--global-batch", "1.5"),
    ("--chip", "missing_chip.toml"),
])
def test_evaluate_bad_flag_exits_2_naming_flag_and_value(capsys, flag: str, value: str) -> None:
    argv = list(EVALUATE)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert out == ""
    assert flag in err or value.endswith(".toml"), err
    assert value in err, err


def test_evaluate_chip_with_unknown_numbers_exits_2_naming_the_field(capsys) -> None:
    """A catalog chip whose unknown numbers no stated assumption fills (WSE-3: no TDP, no
    bf16 peak, no NIC) is bad input. Issue 12: evaluate completes a catalog chip by
    codesign.model.catalog.assume first, so the 500 W H100 this test used is now predicted
    (below)."""
    code, out, err = run(capsys, *[a if a != "h100-sxm" else "wse3" for a in EVALUATE])
    assert code == 2, (out, err)
    assert "wse3" in err
    assert "tflops_bf16" in err and "tdp_w" in err, err
    assert out == ""


def test_evaluate_catalog_chip_lists_what_it_assumed(capsys) -> None:
    """The 500 W H100's unknown cells are filled from its same-silicon sibling (H100 SXM) and
    each one is listed with its reason under "assumed"; a fully known chip assumes nothing."""
    doc = run_json(capsys, *[a if a != "h100-sxm" else "h100-sxm-96gb-500w" for a in EVALUATE])
    assert doc["feasible"], doc["reason"]
    assumed = doc["assumed"]
    assert {"chip.sram_mb", "chip.tflops_bf16"} <= assumed.keys(), assumed
    h100 = catalog.get_chip("h100-sxm")
    assert assumed["chip.sram_mb"]["value"] == h100.sram_mb
    assert assumed["chip.tflops_bf16"]["value"] == h100.tflops_bf16
    assert all("h100-sxm" in a["reason"] for a in assumed.values()), assumed
    assert "chip.tdp_w" not in assumed and doc["tdp_w"] == 500.0  # its own published limit
    assert run_json(capsys, *EVALUATE)["assumed"] == {}


# ----------------------------------------------------------------------------- help, script


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_exits_0(capsys, command: str | None) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "usage: codesign" in out


def test_no_command_exits_2(capsys) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "codesign" in err


def test_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("codesign")
    assert exe.is_file(), f"console script not installed next to {sys.executable}"
    proc = subprocess.run([str(exe), "catalog", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["chips"]) == 22  # 21 + h800 (issue 12)
    proc = subprocess.run([str(exe), "evaluate", "--chip", "nope", "--workload", "llama3-8b"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "--chip" in proc.stderr and "nope" in proc.stderr
