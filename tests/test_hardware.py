"""Predicted vs published die area and TDP of the catalog chips (issue 5 calibration gate)."""

from __future__ import annotations

import json
import math

import pytest

from codesign.cli import main
from codesign.model import catalog
from codesign.model.chip import area as area_model
from codesign.model.chip import datasheet as chip_area
from codesign.model.chip import power
from codesign.validate import hardware

ROWS = {r["id"]: r for r in hardware.hardware_table()}
CONTRACT_KEYS = {"id", "die_area_mm2", "predicted_die_area_mm2", "tdp_w", "predicted_tdp_w"}


def test_table_covers_every_catalog_chip() -> None:
    assert list(ROWS) == catalog.chip_ids()
    assert len(ROWS) == 22  # 21 + h800 (issue 12)


@pytest.mark.parametrize("chip_id", ["h100-sxm", "maia100"])
def test_die_area_within_20_pct_of_published(chip_id: str) -> None:
    """The issue-5 area gate: the named chips whose catalog row has a published die area.
    H100 is in the fit; Maia 100 (clock assumed) is out of sample."""
    row = ROWS[chip_id]
    assert row["die_area_mm2"] is not None and row["predicted_die_area_mm2"] is not None
    assert abs(row["die_area_error_pct"]) <= hardware.GATE_PCT, row


def test_mi355x_compute_die_out_of_sample() -> None:
    row = ROWS["mi355x"]
    assert abs(row["die_area_error_pct"]) <= hardware.GATE_PCT, row
    assert "XCD" in row["assumptions"]


def test_gate_chips_without_published_area_are_named() -> None:
    s = hardware.gate_summary(list(ROWS.values()))
    assert s["die_area"]["compared"] >= 2
    assert s["die_area"]["within"] == s["die_area"]["compared"]
    assert {"h100-sxm", "maia100"}.isdisjoint(s["die_area"]["not_compared"])


def test_fit_reproduces_the_area_constants() -> None:
    fit = hardware.fit_area_constants()
    assert fit["chips"] == list(hardware.FIT_CHIPS)
    assert fit["mac_mm2_n7"] == pytest.approx(area_model.MAC_MM2_N7, rel=1e-3)
    assert fit["unit_mm2_n7"] == pytest.approx(area_model.UNIT_MM2_N7, rel=1e-3)
    assert all(abs(r) < 0.1 for r in fit["residual_pct"].values())


def test_missing_predictions_have_reasons() -> None:
    for row in ROWS.values():
        if row["predicted_die_area_mm2"] is None:
            assert "area:" in row["reason"], row["id"]
        if row["predicted_tdp_w"] is None:
            assert "tdp:" in row["reason"], row["id"]
    assert "process_nm" in ROWS["tpu-v5p"]["reason"]
    assert "clock" in ROWS["maia100"]["assumptions"]


def test_published_hbm_stacks_fit_the_predicted_shoreline() -> None:
    checked = [r for r in ROWS.values() if r["max_hbm_stacks"] is not None]
    assert {"a100-sxm-80gb", "h100-sxm", "h200", "gaudi3", "maia100"} <= {
        r["id"] for r in checked}
    for row in checked:
        assert row["hbm_stacks"] <= row["max_hbm_stacks"], row


GATE_NOT_MET = {
    # The issue-5 TDP gate is not met for these rows (issue 5 stays open); the tests say why and
    # turn into failures (strict) the day the model meets them.
    "b200": "B200 (SRAM assumed at H100's per-SM share, clock assumed 1.8 GHz) is predicted "
            "at 1399 W against its 1000 W rating: 0.44 W per dense bf16 TFLOP/s against "
            "H100's 0.71 on the same 4 nm class, which a sustained-peak TDP cannot reproduce "
            "(the rating caps the clock below the peak: at 1000 W the model sustains 0.84 of "
            "it, and the 1000 W / 1200 W clock ratio of B200 and GB200 is reproduced)",
    "mi300x": "MI300X is rated 750 W and MI325X 1000 W with the same silicon and peak FLOPS: "
              "the rating is partly the vendor's power limit; the model predicts 1141 W at "
              "peak clock, and 0.80 of the peak clock within 750 W",
}


@pytest.mark.parametrize("chip_id", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=GATE_NOT_MET[c]))
    if c in GATE_NOT_MET else c for c in hardware.GATE_CHIPS])
def test_tdp_within_20_pct_of_published(chip_id: str) -> None:
    """The issue-5 TDP gate, for the named chips whose catalog row has a published TDP."""
    row = ROWS[chip_id]
    if row["tdp_w"] is None:
        pytest.skip(f"{chip_id}: no published TDP in chips.csv")
    assert row["predicted_tdp_w"] is not None, row["reason"]
    assert abs(row["tdp_error_pct"]) <= hardware.GATE_PCT, row


def test_clock_at_tdp_is_where_the_sustained_peak_meets_the_rating() -> None:
    """Chips whose predicted sustained peak fits their rating run GEMMs at their peak clock;
    B200 and MI300X (over their rating, above) sustain a lower clock, at which the predicted
    power equals the rating."""
    for chip_id in ("maia100", "mi355x"):
        assert ROWS[chip_id]["clock_at_tdp"] == 1.0, chip_id
    # predicted at their rating (H100 +0.1 %, H200 +2.2 % with the power constants refitted
    # on every ML.ENERGY chip-power row): within a few percent of the peak clock
    for chip_id in ("h100-sxm", "h200"):
        assert 0.98 < ROWS[chip_id]["clock_at_tdp"] <= 1.0, chip_id
    for chip_id in ("b200", "mi300x"):
        row = ROWS[chip_id]
        assert 0.75 < row["clock_at_tdp"] < 0.9, row
        parts = power.tdp_parts_from_chip(chip_area.with_assumed_sram(
            catalog.get_chip(chip_id))[0])
        assert parts is not None and sum(parts) == pytest.approx(row["predicted_tdp_w"])
        assert power.power_at_clock_w(parts, row["clock_at_tdp"]) == pytest.approx(
            row["tdp_w"], rel=1e-9)


def test_cli_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--hardware", "--json"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert set(doc) == {"chips"}
    assert [c["id"] for c in doc["chips"]] == catalog.chip_ids()
    for chip in doc["chips"]:
        assert CONTRACT_KEYS <= set(chip)
        for key in CONTRACT_KEYS - {"id"}:
            value = chip[key]
            assert value is None or (isinstance(value, int | float) and math.isfinite(value))
    h100 = next(c for c in doc["chips"] if c["id"] == "h100-sxm")
    assert h100["die_area_mm2"] == 814


def test_cli_table_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--hardware"]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm" in out and "maia100" in out
    assert "within 20 %" in out and "die area 2/2" in out


def test_cli_hardware_with_cases_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--hardware", "--cases", "runs.csv"]) == 2
    err = capsys.readouterr().err
    assert "--hardware" in err and "--cases" in err
