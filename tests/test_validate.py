"""``codesign validate``: predictions vs published measurements (the contract of DESIGN.md).

``--json`` prints {"cases": [{case_id, metric, measured, predicted, error_pct, ...}],
"summary": {...}} as strict JSON; a bad cases CSV exits 2 naming the file and the row/column,
and prints nothing on stdout.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from cli_helpers import run, run_json

from codesign.validate import COLUMNS, default_cases_path

CASE_KEYS = {"case_id", "metric", "measured", "predicted", "error_pct", "mapping", "reason"}
SMALL = ("KOR22-T5-3a", "MLM21-T1-09", "MPT-01a", "MLE3-L31-8B-H100-1x-bs8-tput")
# 3 training rows, 1 inference row whose prompt length is unknown (so it cannot be predicted)


def packaged_rows() -> list[dict[str, str]]:
    with default_cases_path().open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_cases(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS,
                ) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def small_rows() -> list[dict[str, str]]:
    by_id = {r["case_id"]: r for r in packaged_rows()}
    return [dict(by_id[c]) for c in SMALL]


@pytest.fixture
def small_csv(tmp_path: Path, small_rows: list[dict[str, str]]) -> Path:
    return write_cases(tmp_path / "small.csv", small_rows)


# ----------------------------------------------------------------------------- --json


def test_json_has_contract_keys_and_error_pct(capsys, small_csv: Path) -> None:
    doc = run_json(capsys, "validate", "--cases", str(small_csv), "--json")
    assert {"cases", "summary"} <= doc.keys()
    assert [c["case_id"] for c in doc["cases"]] == list(SMALL)
    for case in doc["cases"]:
        assert CASE_KEYS <= case.keys(), CASE_KEYS - case.keys()
        assert isinstance(case["measured"], float | int) and case["measured"] > 0
    predicted = [c for c in doc["cases"] if c["predicted"] is not None]
    assert {c["case_id"] for c in predicted} == set(SMALL[:3])
    for case in predicted:
        assert math.isfinite(case["predicted"]) and case["predicted"] > 0
        assert case["error_pct"] == pytest.approx(
            100.0 * (case["predicted"] - case["measured"]) / case["measured"])
        assert {"tp", "pp", "dp", "cp", "micro_batch", "recompute", "zero"} <= \
            case["mapping"].keys()
    # fixed cells of the CSV are honoured in the mapping (KOR22-T5-3a: tp8 pp35 dp1 vpp3 mb1)
    kor = doc["cases"][0]["mapping"]
    assert (kor["tp"], kor["pp"], kor["dp"], kor["vpp"], kor["micro_batch"], kor["recompute"]) \
        == (8, 35, 1, 3, 1, "full")


def test_unpredictable_inference_row_says_why(capsys, small_csv: Path) -> None:
    doc = run_json(capsys, "validate", "--cases", str(small_csv), "--json")
    infer = doc["cases"][-1]
    assert infer["case_id"] == "MLE3-L31-8B-H100-1x-bs8-tput"
    assert infer["predicted"] is None and infer["error_pct"] is None
    assert "input_len" in infer["reason"]


def test_summary_counts(capsys, small_csv: Path) -> None:
    summary = run_json(capsys, "validate", "--cases", str(small_csv), "--json")["summary"]
    assert summary["cases"] == 4
    assert summary["predicted"] == 3
    assert summary["not_predicted"] == 1
    assert summary["median_abs_error_pct"] >= 0 and summary["mean_abs_error_pct"] >= 0
    assert {"KOR22-T5", "MLM21-T1", "MPT"} <= summary["by_family"].keys()


def test_workload_filter(capsys, small_csv: Path) -> None:
    train = run_json(capsys, "validate", "--cases", str(small_csv), "--workload", "train",
                     "--json")
    assert [c["case_id"] for c in train["cases"]] == list(SMALL[:3])
    assert train["summary"]["cases"] == 3
    infer = run_json(capsys, "validate", "--cases", str(small_csv), "--workload", "infer",
                     "--json")
    assert [c["case_id"] for c in infer["cases"]] == ["MLE3-L31-8B-H100-1x-bs8-tput"]
    everything = run_json(capsys, "validate", "--cases", str(small_csv), "--workload", "all",
                          "--json")
    assert len(everything["cases"]) == 4


def test_table_output(capsys, small_csv: Path) -> None:
    code, out, err = run(capsys, "validate", "--cases", str(small_csv))
    assert code == 0, err
    for case_id in SMALL:
        assert case_id in out
    assert "tp8 pp35 dp1 cp1 vpp3 mb1 full z0" in out  # mapping short form
    assert "input_len is empty" in out  # the reason of the row not predicted
    assert "median" in out and "KOR22-T5" in out  # summary block, per family


def test_full_packaged_run_train_rows_predicts_every_row(capsys) -> None:
    """Every training row of the packaged calibration.csv gets a prediction (none infeasible)."""
    doc = run_json(capsys, "validate", "--workload", "train", "--json")
    n_train = sum(1 for r in packaged_rows() if r["workload"] == "train")
    assert len(doc["cases"]) == n_train
    missing = {c["case_id"]: c["reason"] for c in doc["cases"] if c["predicted"] is None}
    assert not missing, f"{len(missing)} training rows not predicted: {missing}"
    assert doc["summary"]["predicted"] == n_train


# ----------------------------------------------------------------------------- bad input


def _bad(capsys, path: Path, *extra: str) -> str:
    code, out, err = run(capsys, "validate", "--cases", str(path), "--json", *extra)
    assert code == 2, (out, err)
    assert out == ""
    assert str(path) in err, err
    return err


def test_missing_column(capsys, tmp_path: Path, small_rows) -> None:
    cols = tuple(c for c in COLUMNS if c != "tp")
    err = _bad(capsys, write_cases(tmp_path / "no_tp.csv", small_rows, cols))
    assert "missing tp" in err, err


def test_non_number_in_numeric_column(capsys, tmp_path: Path, small_rows) -> None:
    small_rows[1]["tp"] = "x"
    err = _bad(capsys, write_cases(tmp_path / "tp_x.csv", small_rows))
    assert "row 3.tp" in err and "'x'" in err, err


def test_unknown_chip(capsys, tmp_path: Path, small_rows) -> None:
    small_rows[0]["chip"] = "h100-pcie-9000"
    err = _bad(capsys, write_cases(tmp_path / "chip.csv", small_rows))
    assert "row 2.chip" in err and "h100-pcie-9000" in err, err


def test_unknown_metric(capsys, tmp_path: Path, small_rows) -> None:
    small_rows[2]["metric"] = "flops_per_banana"
    err = _bad(capsys, write_cases(tmp_path / "metric.csv", small_rows))
    assert "row 4.metric" in err and "flops_per_banana" in err, err


def test_empty_file(capsys, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    err = _bad(capsys, path)
    assert "<header>" in err and "case_id" in err, err


def test_header_only(capsys, tmp_path: Path) -> None:
    err = _bad(capsys, write_cases(tmp_path / "header.csv", []))
    assert "at least one case" in err, err


def test_duplicate_case_id(capsys, tmp_path: Path, small_rows) -> None:
    small_rows[1]["case_id"] = small_rows[0]["case_id"]
    err = _bad(capsys, write_cases(tmp_path / "dup.csv", small_rows))
    assert "row 3.case_id" in err and small_rows[0]["case_id"] in err, err


def test_not_utf8(capsys, tmp_path: Path, small_csv: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(small_csv.read_bytes().replace(b"MPT-70b", b"MPT-70b \xe9t\xe9"))
    err = _bad(capsys, path)
    assert "UTF-8" in err, err


def test_missing_file(capsys, tmp_path: Path) -> None:
    _bad(capsys, tmp_path / "nope.csv")


def test_workload_filter_leaving_no_rows(capsys, tmp_path: Path, small_rows) -> None:
    path = write_cases(tmp_path / "train_only.csv", small_rows[:3])
    err = _bad(capsys, path, "--workload", "infer")
    assert "infer" in err, err


def test_bad_workload_flag(capsys, small_csv: Path) -> None:
    code, out, err = run(capsys, "validate", "--cases", str(small_csv), "--workload", "eval")
    assert code == 2 and out == ""
    assert "--workload" in err and "eval" in err, err


def test_help_exits_0(capsys) -> None:
    code, out, _ = run(capsys, "validate", "--help")
    assert code == 0
    assert "--cases" in out and "--workload" in out and "--json" in out
    assert "--hardware" in out  # predicted vs published die area and TDP (issue 5)


def test_assume_input_len_predicts_the_power_rows(capsys, tmp_path: Path) -> None:
    """The ML.ENERGY rows give no prompt length: --assume-input-len predicts them, says so in
    each row's reason, and leaves rows that have an input_len alone. Power is the fitted
    batch-8 rows within 5 % (scripts/calibrate_power.py), and rises with the batch."""
    rows = [r for r in packaged_rows() if r["case_id"].startswith("MLE3-L31-8B")
            and r["metric"] == "chip_power_w"]
    rows += [r for r in packaged_rows() if r["case_id"] == "TRTLLM-12"]
    path = write_cases(tmp_path / "power.csv", rows)
    plain = run_json(capsys, "validate", "--cases", str(path), "--json")
    assert [c["predicted"] is None for c in plain["cases"]] == [True] * 4 + [False]
    doc = run_json(capsys, "validate", "--cases", str(path), "--assume-input-len", "128",
                   "--json")
    cases = {c["case_id"]: c for c in doc["cases"]}
    assert doc["summary"]["predicted"] == 5
    for cid, c in cases.items():
        assert ("input_len 128 assumed" in (c["reason"] or "")) == cid.startswith("MLE3"), c
    assert abs(cases["MLE3-L31-8B-H100-1x-bs8-chipw"]["error_pct"]) <= 5.0
    watts = [cases[f"MLE3-L31-8B-H100-1x-bs{b}-chipw"]["predicted"] for b in (8, 64, 256, 512)]
    assert watts == sorted(watts) and watts[-1] > watts[0], watts
    code, _out, err = run(capsys, "validate", "--assume-input-len", "0")
    assert code == 2 and "--assume-input-len" in err
