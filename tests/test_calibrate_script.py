"""scripts/calibrate.py: the leave-one-family-out contract of issue 12 (JSON keys, one entry per
family, every left-out row predicted by a stack fitted without it) on a small CSV of two
families, with few iterations so it runs in seconds; the fit's starting points are neutral
(they do not depend on the measurements)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_validate import packaged_rows, write_cases

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import calibrate  # noqa: E402


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600, check=False)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [r for r in packaged_rows() if r["case_id"].startswith(("KOR22-T5", "MLM21-T1"))]
    return write_cases(tmp_path_factory.mktemp("cal") / "two_families.csv", rows)


def test_leave_one_family_out_json_contract(small_csv: Path) -> None:
    proc = run_script("--cases", str(small_csv), "--leave-one-family-out", "--json",
                      "--iters", "3", "--starts", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"families", "median_abs_err_pct", "p90_abs_err_pct", "in_sample", "stack"} <= set(doc)
    fams = {f["family"]: f for f in doc["families"]}
    assert set(fams) == {"KOR22-T5", "MLM21-T1"}
    assert fams["KOR22-T5"]["rows"] == 8 and fams["MLM21-T1"]["rows"] == 10
    for f in fams.values():
        assert {"family", "rows", "median_abs_err_pct", "p90_abs_err_pct"} <= set(f)
        assert f["predicted"] == f["rows"]
        assert 0 <= f["median_abs_err_pct"] <= f["p90_abs_err_pct"]
    all_err = doc["median_abs_err_pct"]
    assert min(f["median_abs_err_pct"] for f in fams.values()) <= all_err
    assert all_err <= max(f["median_abs_err_pct"] for f in fams.values())
    for key, (lo, hi) in calibrate.BOUNDS.items():
        assert lo <= doc["stack"][key] <= hi


def test_markdown_table_has_a_row_per_family_and_the_overall(small_csv: Path) -> None:
    proc = run_script("--cases", str(small_csv), "--leave-one-family-out", "--markdown",
                      "--iters", "2", "--starts", "1")
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| family | rows | in-sample median %")
    assert [line.split("|")[1].strip() for line in table[2:]] == ["KOR22-T5", "MLM21-T1", "all"]


def test_starts_are_neutral_and_inside_the_ranges() -> None:
    """The starting points depend only on the seed: a left-out family's fit cannot inherit
    anything fitted on it."""
    a, b = calibrate.starts(), calibrate.starts()
    assert len(a) == calibrate.N_STARTS
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[0], np.zeros(len(calibrate.BOUNDS)))  # range middles
    for x in a:
        stack = calibrate.to_stack(x)
        for key, (lo, hi) in calibrate.BOUNDS.items():
            assert lo < getattr(stack, key) < hi
