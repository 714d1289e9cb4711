"""Compaction of the Parquet log and reading a run without replaying its journal (issue: 50k
trials).

* :func:`codesign.search.storage.compact.compact_log` merges the per-population files into
  larger ones; a process killed at each step of the switch (``CODESIGN_TEST_CRASH_AT``:
  ``compact-written``, ``compact-renamed``, ``compact-deleting``) leaves a log the package
  reads with every COMPLETE trial exactly once, and the next worker start (or compaction)
  leaves plain pandas reading it exactly once too;
* ``log_state.json`` (written at the end of every search) lets ``pareto`` and ``report`` read
  the log and the Pareto snapshot instead of the storage, with the same output; a journal
  changed since gives a note, a log that lost rows reads the storage;
* the report draws a sample of a large cloud of feasible trials, the front whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codesign.cli import main
from codesign.results.inspect import infeasible_reasons, load_run, read_trials, violations
from codesign.search import parquet_log
from codesign.search.storage import compact, log_state
from codesign.search.storage import rundir as rd
from tests.test_parquet_faults import CRASHED, RUN, complete, write_experiment

TRIALS = 48  # six files of 8 rows (population 8)
SMALL = {"keep_small": 2, "target_rows": 24}  # files of up to 24 rows once 3 small exist


@pytest.fixture(scope="module", autouse=True)
def _file_per_population(file_per_population: None) -> None:
    """A Parquet file for every population (conftest.file_per_population)."""


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compact")
    exp = write_experiment(folder)
    old = Path.cwd()
    os.chdir(folder)
    try:
        assert main(["search", str(exp), "--trials", str(TRIALS), "--no-progress"]) == 0
    finally:
        os.chdir(old)
    return folder


@pytest.fixture
def work(base_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for p in base_run.iterdir():  # copy2 keeps the journal's mtime: its state still matches
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp_path / p.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def parts(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "trials").glob("part-*.parquet"))


def plain(run_dir: Path) -> list[int]:
    return sorted(pd.read_parquet(run_dir / "trials")["trial"])


def cli_out(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    assert main(list(argv)) == 0
    return capsys.readouterr()


def compact_in_child(point: str) -> None:
    """Compact ``RUN`` (small thresholds) in a new process that dies at ``point``."""
    code = ("import sys; from codesign.search.storage.compact import compact_log; "
            "from codesign.search.storage.rundir import load_run; "
            f"exp, _ = load_run({str(RUN)!r}); "
            f"compact_log({str(RUN)!r}, exp, **{SMALL!r})")
    env = {**os.environ, "CODESIGN_TEST_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == CRASHED, (point, proc.returncode, proc.stderr)


# ----------------------------------------------------------------------------- compaction


def test_a_search_records_its_log_state_and_the_exact_front(work: Path) -> None:
    state = json.loads((RUN / log_state.STATE_FILE).read_text())
    assert state["n_complete"] == len(complete(RUN)) == TRIALS
    assert state["journal"][0] == (RUN / "study.log").stat().st_size
    from codesign.search.front import pareto_rows

    exp, _ = rd.load_run(RUN)
    assert state["front"] == json.loads(json.dumps(pareto_rows(exp, load_run(RUN).study),
                                                   default=str))
    assert state["front"] and all(r["writer"] == "pareto" for r in state["front"])
    assert len(parts(RUN)) == TRIALS // 8  # fewer small files than KEEP_SMALL: left alone


def test_compaction_merges_the_oldest_files_and_keeps_every_row_once(work: Path) -> None:
    exp, _ = rd.load_run(RUN)
    before = read_trials(RUN, exp)
    res = compact.compact_log(RUN, exp, **SMALL)
    names = [p.name for p in parts(RUN)]
    assert res.files_before == 6 and res.files_after == len(names) == 2
    assert all(n.startswith("part-compact-") for n in names)
    assert res.rows == TRIALS and res.sources == 6
    for p in parts(RUN):  # 24 rows each (three files of 8), one row group, sources named
        meta = pq.ParquetFile(p).metadata
        assert (meta.num_rows, meta.num_row_groups) == (24, 1)
        assert len(parquet_log.compacted_sources(p)) == 3
    assert plain(RUN) == sorted(complete(RUN))
    after = read_trials(RUN, exp)
    pd.testing.assert_frame_equal(after, before)
    assert not list((RUN / "trials").glob(".*"))  # no temporary file left


def _with_row(src: Path, trial: int, reason: str) -> pa.Table:
    """``src``'s table with one more row: its first row as trial ``trial``, ``reason`` set."""
    table = pq.read_table(src)
    extra = table.slice(0, 1)
    for name, value, kind in (("trial", trial, pa.int64()), ("reason", reason, pa.string())):
        extra = extra.set_column(extra.schema.get_field_index(name), name,
                                 pa.array([value], kind))
    return pa.concat_tables([table, extra])


def test_a_trial_twice_in_one_file_keeps_its_last_row(work: Path) -> None:
    # the names' ranges are disjoint (one search's files): only a file's own rows can repeat
    exp, _ = rd.load_run(RUN)
    src = parts(RUN)[1]
    trial = pq.read_table(src).column("trial")[0].as_py()
    pq.write_table(_with_row(src, trial, "the later row"), src)
    compact.compact_log(RUN, exp, **SMALL)
    rows = pd.concat([pd.read_parquet(p) for p in parts(RUN)])
    assert sorted(rows["trial"]) == sorted(complete(RUN))  # each trial once
    assert rows.loc[rows["trial"] == trial, "reason"].tolist() == ["the later row"]


def test_a_file_holding_trials_its_name_does_not_give_is_merged_by_its_numbers(
        work: Path) -> None:
    # a file named for its own range that also holds a trial of another file: the merge
    # reads every trial number first and keeps the last row in file order
    exp, _ = rd.load_run(RUN)
    first, later = parts(RUN)[0], parts(RUN)[1]  # merged together
    trial = pq.read_table(first).column("trial")[0].as_py()
    pq.write_table(_with_row(later, trial, "from the later file"), later)
    compact.compact_log(RUN, exp, **SMALL)
    rows = pd.concat([pd.read_parquet(p) for p in parts(RUN)])
    assert sorted(rows["trial"]) == sorted(complete(RUN))
    assert rows.loc[rows["trial"] == trial, "reason"].tolist() == ["from the later file"]
    assert not list((RUN / "trials").glob(".*"))  # the abandoned attempt left no file


def test_compaction_is_idempotent_and_waits_for_enough_small_files(work: Path) -> None:
    exp, _ = rd.load_run(RUN)
    assert compact.compact_log(RUN, exp).merged == []  # 6 small files <= KEEP_SMALL
    compact.compact_log(RUN, exp, **SMALL)
    again = compact.compact_log(RUN, exp, **SMALL)
    assert again.merged == [] and again.files_before == again.files_after == 2


def test_a_second_compaction_is_skipped_while_one_holds_the_lock(work: Path) -> None:
    exp, _ = rd.load_run(RUN)
    with compact.log_lock(RUN) as held:
        assert held
        res = compact.compact_log(RUN, exp, wait=False, **SMALL)
    assert res.skipped and res.merged == [] and len(parts(RUN)) == 6


@pytest.mark.parametrize("point", ["compact-written", "compact-renamed", "compact-deleting"])
def test_compaction_killed_at_each_step_loses_nothing_and_is_mended(work: Path,
                                                                    point: str) -> None:
    exp, _ = rd.load_run(RUN)
    want = sorted(complete(RUN))
    compact_in_child(point)
    # the package reads every trial exactly once at this instant
    assert list(read_trials(RUN, exp)["trial"]) == want
    assert sorted(parquet_log.logged_trials(RUN)) == want
    rows = plain(RUN)
    assert sorted(set(rows)) == want  # plain readers: nothing lost (a merged file's rows
    if point == "compact-written":    # are there twice until the sources go)
        assert rows == want and len(list((RUN / "trials").glob(".*.tmp"))) == 1
    else:
        assert len(rows) > len(want)
    # the next worker start mends it: stale temporary files and merged sources go
    parquet_log.recover_log(RUN)
    parquet_log.remove_stale_temp_files(RUN, lambda pid: False)
    assert plain(RUN) == want
    assert not list((RUN / "trials").glob(".*.tmp"))
    res = compact.compact_log(RUN, exp, **SMALL)  # and compaction goes on where it stopped
    assert plain(RUN) == want and res.files_after == 2


def test_mending_keeps_a_source_with_a_row_the_merged_file_lacks(work: Path) -> None:
    exp, _ = rd.load_run(RUN)
    compact_in_child("compact-renamed")
    merged = next(p for p in parts(RUN) if p.name.startswith("part-compact-"))
    src = RUN / "trials" / parquet_log.compacted_sources(merged)[0]
    table = pq.read_table(src)
    extra = table.slice(0, 1)
    extra = extra.set_column(extra.schema.get_field_index("trial"), "trial",
                             pa.array([10_000], pa.int64()))
    pq.write_table(pa.concat_tables([table, extra]), src)
    compact.mend(RUN)
    assert src.exists()  # a trial only it holds: never deleted
    assert 10_000 in set(read_trials(RUN, exp)["trial"])


def test_codesign_compact_prints_what_it_did_and_records_the_state(work: Path,
                                                                   capsys) -> None:
    (RUN / log_state.STATE_FILE).unlink()
    out, _ = cli_out(capsys, "compact", str(RUN), "--json")
    doc = json.loads(out)
    assert doc["files_before"] == 6 and doc["n_complete"] == TRIALS
    assert (RUN / log_state.STATE_FILE).is_file()
    out, _ = cli_out(capsys, "compact", str(RUN))
    assert "6 Parquet files -> 6" in out and f"{TRIALS} COMPLETE" in out


# ----------------------------------------------------------------------------- read path


def pareto_both(capsys, monkeypatch, fmt: str = "json") -> tuple[str, str, str]:
    """``pareto`` as it reads now (stdout, stderr) and with the log ignored (the storage)."""
    out, err = cli_out(capsys, "pareto", str(RUN), "--format", fmt)
    with monkeypatch.context() as m:
        m.setattr(log_state, "log_view", lambda *a, **k: log_state.LogView("unknown", 0, None))
        stored, _ = cli_out(capsys, "pareto", str(RUN), "--format", fmt)
    return out, err, stored


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_pareto_reads_the_log_and_prints_what_the_storage_gives(work: Path, capsys,
                                                                monkeypatch, fmt: str) -> None:
    exp, spec = rd.load_run(RUN)
    assert log_state.log_view(RUN, spec).status == "complete"
    compact.compact_log(RUN, exp, **SMALL)
    assert log_state.log_view(RUN, spec).status == "complete"

    def no_replay(*a, **k):
        raise AssertionError("the journal was replayed")

    with monkeypatch.context() as m:
        m.setattr("optuna.load_study", no_replay)
        out, err = cli_out(capsys, "pareto", str(RUN), "--format", fmt)
    _, _, stored = pareto_both(capsys, monkeypatch, fmt)
    assert out == stored and err == ""


def test_a_journal_changed_since_reads_the_log_with_a_note(work: Path, capsys,
                                                          monkeypatch) -> None:
    _, spec = rd.load_run(RUN)
    os.utime(RUN / "study.log")  # as a worker appending would
    view = log_state.log_view(RUN, spec)
    assert view.status == "changed" and view.n_log == TRIALS
    out, err, stored = pareto_both(capsys, monkeypatch)
    assert "storage has changed" in err and "Parquet log" in err
    got, want = json.loads(out), json.loads(stored)
    assert [r["trial"] for r in got["front"]] == [r["trial"] for r in want["front"]]
    for a, b in zip(got["front"], want["front"], strict=True):  # the log's columns agree
        assert {k: a[k] for k in a if a[k] is not None} == {
            k: b[k] for k in a if a[k] is not None}


def test_a_log_that_lost_a_file_reads_the_storage(work: Path, capsys, monkeypatch) -> None:
    _, spec = rd.load_run(RUN)
    parts(RUN)[-1].unlink()
    view = log_state.log_view(RUN, spec)
    assert view.status == "behind" and view.n_log == TRIALS - 8 and not view.usable
    out, err, stored = pareto_both(capsys, monkeypatch)
    assert out == stored and err == ""


def test_no_state_reads_the_storage(work: Path) -> None:
    _, spec = rd.load_run(RUN)
    (RUN / log_state.STATE_FILE).unlink()
    assert log_state.log_view(RUN, spec).status == "unknown"


def test_the_front_computed_from_the_log_is_the_storage_front(work: Path) -> None:
    exp, _ = rd.load_run(RUN)
    run = load_run(RUN)
    from codesign.search.front import front_trials

    assert log_state.front_numbers(RUN, exp) == [t.number for t in front_trials(run.study)]


# ----------------------------------------------------------------------------- report


def test_infeasible_reasons_by_column_equal_the_row_by_row_text(work: Path) -> None:
    run = load_run(RUN)
    bad = run.trials[~run.trials["constraints_ok"].astype(bool)
                     & run.trials["feasible"].astype(bool)]
    from codesign.results import inspect

    assert inspect._violations(run.experiment, bad) == [
        violations(run.experiment, row) for _, row in bad.iterrows()]
    assert infeasible_reasons(run)["count"].sum() == int(
        (~run.trials["constraints_ok"].astype(bool)).sum())


def test_the_report_samples_a_large_cloud_and_draws_the_front_whole(work: Path,
                                                                    monkeypatch) -> None:
    from codesign.results import report

    monkeypatch.setattr(report, "CLOUD_MAX", 5)
    run = load_run(RUN)
    n_ok = int(run.trials["constraints_ok"].astype(bool).sum())
    assert n_ok > 5 + len(run.pareto), "test bug: too few feasible trials to sample"
    html = report.build_report(RUN)
    figs = report.build_figures(RUN)
    cloud = next(t for t in figs["plot-front2d"].data if t.name == "feasible trials")
    drawn = {int(s.split()[1]) for s in cloud.text}
    assert len(drawn) <= 5 + len(run.pareto)
    assert set(run.pareto["trial"]) <= drawn
    assert f"draw {len(drawn)} of {n_ok}" in html
    assert f"{TRIALS} trials, {n_ok} feasible" in html


def test_a_search_compacts_its_log_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys) -> None:
    """Every COMPACT_EVERY trials the search merges its per-population files into files of one
    row group (here 96 rows, every 64 trials, once more than 2 small files exist, and no
    compaction at the end): the log the
    search leaves holds every trial once, mostly in merged files."""
    from codesign.search import study

    monkeypatch.setattr(study, "COMPACT_EVERY", 64)
    monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 96)
    monkeypatch.setattr(compact, "KEEP_SMALL", 2)
    monkeypatch.setattr(study, "finish_log", lambda *a, **k: None)
    run_dir = tmp_path / "run"
    quick = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.toml"
    assert main(["search", str(quick), "--trials", "320", "--out", str(run_dir),
                 "--no-progress"]) == 0
    capsys.readouterr()
    files = sorted((run_dir / "trials").glob("part-*.parquet"))
    merged = [f for f in files if f.name.startswith(f"part-{compact.WRITER}-")]
    rows = {f.name: pq.ParquetFile(f).metadata.num_rows for f in files}
    assert merged and all(rows[f.name] <= 96 for f in merged)
    assert len(files) < 320 // 32  # fewer than one file per population
    numbers = parquet_log.read_log(run_dir, columns=["trial"]).column("trial").to_pylist()
    assert sorted(numbers) == list(range(320))


@pytest.mark.parametrize("front", [[], [{"trial": 1, "x": 1.5, "y": None, "z": "a"},
                                        {"trial": 2, "x": float("nan"), "when": pd.Timestamp(0)}]])
def test_log_state_is_written_as_json_dump_writes_it(front: list) -> None:
    import io

    state = {"n_complete": 2, "journal": {"size": 10, "mtime_ns": 1}, "writer": "w",
             "written": "2026-12-06T00:00:00+00:00", "front": front}
    got, want = io.StringIO(), io.StringIO()
    log_state._dump(state, got)
    json.dump(state, want, default=str)
    assert got.getvalue() == want.getvalue()
    assert json.loads(got.getvalue())["front"][:1] == json.loads(want.getvalue())["front"][:1]
