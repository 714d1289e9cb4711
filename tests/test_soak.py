"""scripts/soak.py, run as a user runs it, with two kills on two scenarios: its JSON shape,
its counts against the run it leaves (``--keep``), and its exit code. Kill moments are chosen
by progress inside the script, so nothing here depends on timing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "soak.py"
SAFETY_S = 1200.0  # a hang fails; never an expectation
KEYS = {"name", "status", "kills", "complete", "parquet_rows", "duplicates", "lost", "reruns",
        "running_left", "phantom", "unrecovered", "unreadable", "faults", "errors", "seconds",
        "duplicates_by", "repeated_designs"}


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=SAFETY_S, cwd=REPO)


@pytest.fixture(scope="module")
def single_and_workers2() -> Iterator[tuple[subprocess.CompletedProcess[str], dict]]:
    res = soak("--kills", "2", "--scenario", "single", "--scenario", "workers2", "--json",
               "--keep", "--quiet")
    kept = re.search(r"run directories kept in (\S+)", res.stderr)
    try:
        lines = res.stdout.strip().splitlines()
        assert len(lines) == 1, res.stdout + res.stderr
        yield res, json.loads(lines[0])
    finally:
        if kept:
            shutil.rmtree(kept.group(1), ignore_errors=True)


def test_soak_json_shape_and_exit_code(single_and_workers2) -> None:
    res, doc = single_and_workers2
    assert set(doc) == {"ok", "kills", "population", "scenarios"}
    assert doc["kills"] == 2
    assert [s["name"] for s in doc["scenarios"]] == ["single", "workers2"]
    for s in doc["scenarios"]:
        assert KEYS <= set(s), KEYS - set(s)
        assert s["status"] in ("ok", "fault")
        assert s["kills"] == 2, s
        assert s["complete"] > 0 and s["parquet_rows"] > 0
        clean = not (s["duplicates"] or s["lost"] or s["running_left"] or s["errors"])
        assert (s["status"] == "ok") == clean, s
    assert doc["ok"] == all(s["status"] == "ok" for s in doc["scenarios"])
    assert res.returncode == (0 if doc["ok"] else 1), res.stderr
    # the search engine keeps the contract under these kills
    assert doc["ok"], json.dumps(doc["scenarios"], indent=1)


def test_soak_counts_match_the_run_it_leaves(single_and_workers2) -> None:
    res, doc = single_and_workers2
    kept = re.search(r"run directories kept in (\S+)", res.stderr)
    assert kept, res.stderr
    s = doc["scenarios"][0]
    rows = pd.read_parquet(Path(kept.group(1)) / "single" / "runs" / "single" / "trials")
    assert len(rows) == s["parquet_rows"]
    assert rows["trial"].nunique() == s["parquet_rows"] - s["duplicates"]


def _soak_module():
    """scripts/soak.py as a module."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import soak
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return soak


def _searched(tmp_path: Path, name: str, trials: int):
    """(soak module, its Soak, a Result, the run directory) after a search of ``trials``."""
    soak_mod = _soak_module()
    s = soak_mod.Soak(tmp_path, __import__("random").Random(0), 8, SAFETY_S, verbose=False)
    exp = soak_mod.write_experiment(tmp_path, name, 8)
    res = soak_mod.Result(name)
    assert s.run("search", str(exp), "--trials", str(trials), res=res) == 0, res.errors
    return soak_mod, s, res, tmp_path / "runs" / name


def test_soak_reports_an_injected_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: a Parquet file deleted behind the storage's back is reported as
    lost rows and exit 1 (measure() on a run the test damages)."""
    monkeypatch.setenv("CODESIGN_TEST_LOG_ROWS", "1")  # a file for every population
    soak_mod, _, res, run_dir = _searched(tmp_path, "lossy", 16)
    storage = soak_mod.Storage(run_dir / "study.log", study="lossy")
    soak_mod.measure(res, storage, run_dir)
    soak_mod.judge(res)
    assert (res.status, res.complete, res.parquet_rows, res.lost) == ("ok", 16, 16, 0)
    first = sorted((run_dir / "trials").glob("*.parquet"))[0]
    gone = len(pd.read_parquet(first))
    first.unlink()
    res = soak_mod.Result("lossy")
    soak_mod.measure(res, storage, run_dir)
    soak_mod.judge(res)
    assert res.status == "fault" and res.lost == gone and res.faults == [f"lost={gone}"]
    # and a file written twice is a duplicate
    res = soak_mod.Result("lossy")
    last = sorted((run_dir / "trials").glob("*.parquet"))[-1]
    (run_dir / "trials" / ("part-copy-" + last.name[5:])).write_bytes(last.read_bytes())
    soak_mod.measure(res, storage, run_dir)
    soak_mod.judge(res)
    copied = len(pd.read_parquet(last))
    assert res.duplicates == copied and res.status == "fault"
    assert res.duplicates_by == {"search": copied}


def test_the_run_after_the_last_kill_repairs_a_torn_journal(tmp_path: Path) -> None:
    """CI fault (workers2): the last kill came mid-append, so the final run was refused for a
    torn journal and the soak counted that refusal (the contract: exit 2 naming ``doctor``)
    as an engine error. The final run repairs it as every restart between kills does."""
    soak_mod, s, res, run_dir = _searched(tmp_path, "torn", 8)
    journal = run_dir / "study.log"
    with open(journal, "ab") as f:  # a writer killed mid-append
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 3, "param')
    refused = soak_mod.Result("torn")
    assert s.run("resume", str(run_dir), "--trials", "16", res=refused) == 2
    assert "torn" in refused.errors[0] and "doctor" in refused.errors[0]
    assert s.finish("resume", str(run_dir), "--trials", "16", res=res, journal=journal) == 0
    assert res.errors == [] and res.repaired == 1
    soak_mod.measure(res, soak_mod.Storage(journal, study="torn"), run_dir)
    soak_mod.judge(res)
    assert (res.status, res.complete, res.lost) == ("ok", 8 + 16, 0), res
