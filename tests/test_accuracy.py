"""Accuracy of the calibrated training model on the published measurements (issue 3 gates).

Uses the packaged copy of calibration.csv; the copy is compared with ../shared/data where that
directory exists (skipped otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.validate.predictions import default_cases_path, load_cases, run_cases, summarize

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration.csv"

ORIGINAL_FAMILIES = ("MLM21-T1", "MLM21-T2", "KOR22-T5", "MPT", "NEMO2407")
"""The families of the 63 training rows these gates were written for (Megatron-LM 2021-22,
MosaicML and NeMo 24.07: dense models on A100 and H100). calibration.csv now has 110 training
rows; the 47 added (MoE models, B200/GB200/H800/TPU) are outside these gates until the model
covers them (the kernels are being reworked for them): see test_validate for their
behaviour (predicted, or null with a reason)."""


@pytest.fixture(scope="module")
def all_train_results():
    cases = [c for c in load_cases() if c.workload == "train"]
    return run_cases(cases)


@pytest.fixture(scope="module")
def train_results(all_train_results):
    return all_train_results[all_train_results["family"].isin(ORIGINAL_FAMILIES)]


def test_packaged_calibration_matches_shared_data() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent (only the packaged copy is used)")
    assert default_cases_path().read_bytes() == SHARED.read_bytes()


def test_training_row_counts(all_train_results) -> None:
    assert len(all_train_results) == 110


def test_every_training_row_is_predicted(train_results) -> None:
    # restricted to ORIGINAL_FAMILIES (see there): rows added later may be infeasible for now
    assert len(train_results) == 63
    missing = train_results[train_results["predicted"].isna()]
    assert missing.empty, missing[["case_id", "reason"]].to_string()


def test_kor22_iteration_times_within_5_percent(train_results) -> None:
    kor = train_results[train_results["case_id"].str.startswith("KOR22-T5")]
    assert len(kor) == 8
    mae = kor["error_pct"].abs().mean()
    assert mae <= 5.0, kor[["case_id", "measured", "predicted", "error_pct"]].to_string()


def test_median_error_over_training_rows_within_10_percent(train_results) -> None:
    # restricted to ORIGINAL_FAMILIES, the rows this gate was written for (see there)
    summary = summarize(train_results)
    assert summary["predicted"] == 63
    assert summary["median_abs_error_pct"] <= 10.0, summary


def test_error_pct_definition(train_results) -> None:
    r = train_results.iloc[0]
    assert r["error_pct"] == pytest.approx(100 * (r["predicted"] - r["measured"]) / r["measured"])
