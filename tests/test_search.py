"""codesign.search.study + the search-side CLI: run directory, continuation, Parquet log,
reliability.

Every test writes a small experiment (population 8, a few dozen trials) into ``tmp_path`` and
runs from there, so nothing lands in the repository. The contract is DESIGN.md ("The command
contract", "Run directory", "Reliability the users rely on").
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

from codesign.cli import main
from codesign.errors import ConfigError
from codesign.search import parquet_log
from codesign.search import study as st
from codesign.search import workers as wk
from codesign.search.experiment import load_experiment
from codesign.search.recovery import sync_parquet
from codesign.search.storage import rundir as rd

REPO = Path(__file__).resolve().parents[1]
POP = 8
STUDY = "qs"


# ----------------------------------------------------------------------------- helpers


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"test bug: {old!r} not in the template"
    return text.replace(old, new, 1)


def write_experiment(
    folder: Path,
    *,
    trials: int = 24,
    population: int = POP,
    sampler: str = "nsga2",
    exp_edits: tuple[tuple[str, str], ...] = (),
    space_edits: tuple[tuple[str, str], ...] = (),
    name: str = "exp.toml",
) -> Path:
    """The quickstart experiment with a small budget and population, next to a copy of the
    quickstart space (``space.toml``); returns the experiment path."""
    space = (REPO / "search_spaces" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in space_edits:
        space = edit(space, old, new)
    (folder / "space.toml").write_text(space, encoding="utf-8")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    text = edit(text, 'name = "quickstart"', f'name = "{STUDY}"')
    text = edit(text, '"../search_spaces/quickstart.toml"', '"space.toml"')
    text = edit(text, "trials = 960", f"trials = {trials}")
    text = edit(text, "population = 32", f"population = {population}")
    text = edit(text, 'sampler = "nsga2"', f'sampler = "{sampler}"')
    for old, new in exp_edits:
        text = edit(text, old, new)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``codesign ARGV`` in-process (always without a progress bar where it applies)."""
    args = list(argv)
    if args[0] in ("search", "resume", "worker"):
        args.append("--no-progress")
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def load(run_dir: Path) -> optuna.Study:
    """The Optuna study of a run directory, as the library opens it."""
    _, run = rd.load_run(run_dir)
    return optuna.load_study(study_name=run.study_name, storage=rd.open_storage(run))


def states(study: optuna.Study) -> dict[int, TrialState]:
    return {t.number: t.state for t in study.get_trials(deepcopy=False)}


def temp_files(run_dir: Path) -> list[str]:
    return sorted(p.name for sub in ("trials", "pareto") if (run_dir / sub).is_dir()
                  for p in (run_dir / sub).iterdir()
                  if p.name.startswith(".") and p.name.endswith(".tmp"))


def check_log(run_dir: Path, study: optuna.Study | None = None) -> pd.DataFrame:
    """Storage and Parquet agree: trials numbered 0..n-1, none RUNNING, exactly the COMPLETE
    trials in ``trials/`` (each once), no temp file left. Returns the Parquet rows."""
    study = study or load(run_dir)
    by_number = states(study)
    assert sorted(by_number) == list(range(len(by_number)))
    assert TrialState.RUNNING not in by_number.values()
    complete = {n for n, s in by_number.items() if s == TrialState.COMPLETE}
    df = pd.read_parquet(run_dir / "trials")
    assert df["trial"].is_unique, sorted(df["trial"])
    assert set(df["trial"]) == complete
    assert len(df) == len(complete)
    assert temp_files(run_dir) == []
    return df


def snapshot(run_dir: Path) -> dict[str, Any]:
    """What a rejected command must leave untouched."""
    log = run_dir / "study.log"
    return {
        "log": log.read_bytes(),
        "log_mtime": log.stat().st_mtime_ns,
        "run.json": (run_dir / "run.json").read_bytes(),
        "experiment.toml": (run_dir / "experiment.toml").read_bytes(),
        "trials": sorted(p.name for p in (run_dir / "trials").iterdir()),
        "pareto": sorted(p.name for p in (run_dir / "pareto").iterdir()),
    }


def front_snapshots(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "pareto").glob("front-*.parquet"))


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


RUN = Path("runs") / STUDY


# ----------------------------------------------------------------------------- run directory


def test_search_writes_the_run_directory(work: Path, capsys) -> None:
    exp_path = write_experiment(work)
    code, out, err = cli(capsys, "search", str(exp_path), "--trials", "24")
    assert code == 0, err
    assert "24 trials run" in out
    for name in ("experiment.toml", "search_space.toml", "run.json", "study.log"):
        assert (RUN / name).is_file(), name
    for name in ("trials", "pareto"):
        assert (RUN / name).is_dir(), name

    study = load(RUN)
    assert len(study.trials) == 24
    df = check_log(RUN, study)
    n_complete = len(df)
    assert n_complete > 0

    # the config as run reproduces the experiment
    exp = load_experiment(exp_path)
    info = json.loads((RUN / "run.json").read_text(encoding="utf-8"))
    assert info["study"] == STUDY and info["fingerprint"] == exp.fingerprint()
    assert load_experiment(RUN / "experiment.toml").fingerprint() == exp.fingerprint()

    # pyarrow.dataset and duckdb read the same rows as pandas
    dataset = pads.dataset(RUN / "trials", format="parquet")
    assert dataset.count_rows() == n_complete
    meta = dataset.schema.metadata
    assert meta[b"codesign.schema_version"] == parquet_log.SCHEMA_VERSION.encode()
    assert meta[b"codesign.config_hash"] == exp.fingerprint().encode()
    for f in (RUN / "trials").glob("*.parquet"):
        file_meta = pq.read_schema(f).metadata
        assert b"codesign.schema_version" in file_meta
        assert file_meta[b"codesign.config_hash"] == exp.fingerprint().encode()
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"SELECT count(*), count(DISTINCT trial) FROM read_parquet('{RUN / 'trials'}/*.parquet')"
    ).fetchall()[0]
    assert rows == (n_complete, n_complete)


def test_search_again_and_resume_continue_numbering(work: Path, capsys) -> None:
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "16")[0] == 0
    assert len(check_log(RUN)) == sum(
        s == TrialState.COMPLETE for s in states(load(RUN)).values())

    code, _, err = cli(capsys, "search", str(exp_path), "--trials", "8")
    assert code == 0, err
    study = load(RUN)
    assert sorted(states(study)) == list(range(24))
    check_log(RUN, study)

    code, _, err = cli(capsys, "resume", str(RUN), "--trials", "8")
    assert code == 0, err
    study = load(RUN)
    assert sorted(states(study)) == list(range(32))
    df = check_log(RUN, study)
    assert len(df) == len(study.get_trials(states=(TrialState.COMPLETE,)))


@pytest.mark.parametrize("sampler", ["random", "nsga2"])
def test_resume_does_not_repeat_the_first_population(work: Path, capsys, sampler: str) -> None:
    exp_path = write_experiment(work, sampler=sampler)
    assert cli(capsys, "search", str(exp_path), "--trials", str(POP), "--seed", "7")[0] == 0
    assert cli(capsys, "resume", str(RUN), "--trials", str(POP))[0] == 0
    trials = sorted(load(RUN).trials, key=lambda t: t.number)
    assert len(trials) == 2 * POP
    first = [t.params for t in trials[:POP]]
    resumed = [t.params for t in trials[POP:]]
    assert first != resumed
    if sampler == "random":  # independent draws from a continuous space never coincide
        assert not any(p in first for p in resumed)


def test_budget_is_the_total(work: Path, capsys) -> None:
    exp_path = write_experiment(work, trials=16)
    code, out, err = cli(capsys, "search", str(exp_path))
    assert code == 0, err
    n = len(load(RUN).trials)
    assert n >= 16
    before = snapshot(RUN)

    for argv in (("search", str(exp_path)), ("resume", str(RUN))):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
        assert "budget" in out and "reached" in out, out
        assert len(load(RUN).trials) == n
        assert snapshot(RUN)["trials"] == before["trials"]
        assert snapshot(RUN)["log"] == before["log"]
    check_log(RUN)


# ----------------------------------------------------------------------------- changed experiment

CHANGES = {
    "objective": {"exp_edits": (('silicon_mm2 = "minimize"', 'tdp_w = "minimize"'),)},
    "param-range": {"space_edits": (("high = 256", "high = 248"),)},
    "constraint": {"exp_edits": (("max = 1200.0", "max = 1000.0"),)},
}


@pytest.mark.parametrize("change", CHANGES)
def test_changed_experiment_is_rejected_unless_allowed(work: Path, capsys, change: str) -> None:
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "8")[0] == 0
    before = snapshot(RUN)

    changed = write_experiment(work, **CHANGES[change])
    for extra in ((), ("--trials", "8")):
        code, out, err = cli(capsys, "search", str(changed), *extra)
        assert code == 2, (out, err)
        assert str(changed) in err, err
        assert "fingerprint" in err and "changed" in err, err
        assert "--allow-space-change" in err, err
        assert snapshot(RUN) == before
        assert len(load(RUN).trials) == 8

    code, out, err = cli(capsys, "search", str(changed), "--trials", "8", "--allow-space-change")
    if change == "objective":  # an Optuna study's objectives are fixed when it is created
        assert code == 2, (out, err)
        assert "objectives" in err and "never change" in err, err
        assert snapshot(RUN) == before
        return
    assert code == 0, err
    study = load(RUN)
    assert sorted(states(study)) == list(range(16))
    assert TrialState.RUNNING not in states(study).values()


def test_allowed_change_becomes_the_config_as_run(work: Path, capsys) -> None:
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "8")[0] == 0
    changed = write_experiment(work, **CHANGES["param-range"])
    assert cli(capsys, "search", str(changed), "--trials", "8", "--allow-space-change")[0] == 0

    exp_as_run, _ = rd.load_run(RUN)
    assert exp_as_run.fingerprint() == load_experiment(changed).fingerprint()
    assert list((RUN / "history").iterdir())  # the previous config is kept
    code, _out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    check_log(RUN)  # one schema, every COMPLETE trial once
    # resuming continues under the changed experiment, without --allow-space-change
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    check_log(RUN)


def test_worker_with_a_changed_experiment_is_rejected(work: Path, capsys) -> None:
    storage = str(work / "shared.log")
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "8", "--storage", storage)[0] == 0
    changed = write_experiment(work, name="changed.toml", **CHANGES["objective"])
    code, out, err = cli(capsys, "worker", str(changed), "--storage", storage, "--study", STUDY,
                         "--trials", "8", "--out", "runs/w2")
    assert code == 2, (out, err)
    assert "fingerprint" in err
    assert len(load(RUN).trials) == 8
    assert not Path("runs/w2").exists()


# ----------------------------------------------------------------------------- workers


def test_two_workers_run_every_trial_once(work: Path, capsys) -> None:
    exp_path = write_experiment(work)
    code, _, err = cli(capsys, "search", str(exp_path), "--trials", "32", "--workers", "2")
    assert code == 0, err
    study = load(RUN)
    assert sorted(states(study)) == list(range(32))
    assert all(s == TrialState.COMPLETE for s in states(study).values())
    df = check_log(RUN, study)
    assert len(df) == 32
    assert df["writer"].str.endswith("-w1").any() and df["writer"].str.endswith("-w0").any()


def test_worker_starting_mid_population_does_not_duplicate_rows(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = load_experiment(write_experiment(work))
    run = rd.prepare_run(exp, None, None, None)
    st.run_search(exp, run, POP, progress=False)
    real_write = parquet_log.write_trials
    real_pid = os.getpid()
    started = []

    def write_trials(run_dir, exp_, rows, writer):
        if not started:  # worker 1 starts now: this population is told but not yet logged
            started.append(True)
            with monkeypatch.context() as m:  # worker 1 is another (live) process
                m.setattr(wk.os, "getpid", lambda: real_pid + 1)
                sync_parquet(exp, run, rd.open_study(exp, run, worker=1))
        return real_write(run_dir, exp_, rows, writer)

    monkeypatch.setattr(parquet_log, "write_trials", write_trials)
    st.run_search(exp, run, POP, progress=False)
    assert started
    check_log(RUN)


def test_workers_joining_together_propose_different_designs(
        work: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = work / "shared.log"
    exp_path = write_experiment(work, sampler="random")
    assert cli(capsys, "search", str(exp_path), "--trials", str(POP),
               "--storage", str(storage))[0] == 0
    at_join = storage.read_bytes()

    def join(out: str) -> list[dict[str, Any]]:
        code, _, err = cli(capsys, "worker", str(exp_path), "--storage", str(storage),
                           "--study", STUDY, "--trials", str(POP), "--out", out)
        assert code == 0, err
        return [t.params for t in sorted(load(RUN).trials, key=lambda t: t.number)[POP:]]

    first = join("runs/a")
    storage.write_bytes(at_join)  # the second worker sees the study as the first one did,
    monkeypatch.setattr(os, "getpid", lambda: 424242)  # from another process
    monkeypatch.setattr(socket, "gethostname", lambda: "other-machine")  # on another machine
    second = join("runs/b")
    assert first != second


# ----------------------------------------------------------------------------- Pareto


def test_pareto_front_matches_optuna_and_the_snapshot(work: Path, capsys) -> None:
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "24")[0] == 0
    assert cli(capsys, "search", str(exp_path), "--trials", "16")[0] == 0
    study = load(RUN)
    best = sorted(t.number for t in study.best_trials)
    assert best

    code, out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    front = [r["trial"] for r in doc["front"]]
    assert front == best
    assert all(r["constraints_ok"] and r["feasible"] for r in doc["front"])
    assert doc["objectives"] == [["tokens_per_s", "maximize"], ["tokens_per_joule", "maximize"],
                                 ["silicon_mm2", "minimize"]]
    for r in doc["front"]:
        t = study.trials[r["trial"]]
        assert [r["value_tokens_per_s"], r["value_tokens_per_joule"],
                r["value_silicon_mm2"]] == pytest.approx(t.values)

    code, out, err = cli(capsys, "pareto", str(RUN), "--format", "csv")
    assert code == 0, err
    csv = pd.read_csv(pd.io.common.StringIO(out))
    assert csv["trial"].tolist() == best
    assert "value_tokens_per_s" in csv.columns

    code, out, err = cli(capsys, "pareto", str(RUN))
    assert code == 0, err
    assert f"{len(best)} Pareto-optimal" in out.splitlines()[0]

    snapshots = front_snapshots(RUN)
    assert len(snapshots) == 2
    latest = pd.read_parquet(snapshots[-1])
    assert sorted(latest["trial"]) == best
    assert pq.read_schema(snapshots[-1]).metadata[b"codesign.schema_version"] == b"1"


# ----------------------------------------------------------------------------- crash recovery


@pytest.mark.parametrize(("log_rows", "sizes"), [(None, [40]), ("16", [16, 16, 8]),
                                                 ("1", [8] * 5)])
def test_a_search_logs_its_rows_a_file_every_log_rows(work: Path, capsys, monkeypatch,
                                                      log_rows: str | None,
                                                      sizes: list[int]) -> None:
    # rows gathered until LOG_ROWS (256) or the end; population 8
    if log_rows is not None:
        monkeypatch.setenv("CODESIGN_TEST_LOG_ROWS", log_rows)
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "40")[0] == 0
    parts = sorted((RUN / "trials").glob("part-*.parquet"))
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == sizes
    assert len(check_log(RUN)) == 40


def test_lost_part_file_is_rebuilt_from_storage(work: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CODESIGN_TEST_LOG_ROWS", "1")  # a file for every population
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "24")[0] == 0
    parts = sorted((RUN / "trials").glob("part-*.parquet"))
    assert len(parts) == 3
    lost = set(pd.read_parquet(parts[1])["trial"])
    parts[1].unlink()
    assert cli(capsys, "resume", str(RUN), "--trials", "1")[0] == 0
    df = check_log(RUN)
    assert lost <= set(df["trial"])
    assert len(load(RUN).trials) == 25


def test_torn_temp_file_of_a_killed_writer_does_not_break_readers(work: Path, capsys) -> None:
    duckdb = pytest.importorskip("duckdb")
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "16")[0] == 0
    part = sorted((RUN / "trials").glob("part-*.parquet"))[0]
    dead_pid = 2**22 + 12345  # above Linux's default pid_max: never a live process
    torn = parquet_log.temp_path(RUN / "trials" / "part-host-w0-00000016-00000023.parquet",
                                 dead_pid)
    torn.write_bytes(part.read_bytes()[:100])  # the writer was killed mid-write
    assert len(pd.read_parquet(RUN / "trials")) == 16  # pandas / pyarrow skip dot files
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    query = f"SELECT count(*) FROM read_parquet('{RUN / 'trials'}/*.parquet')"
    n = duckdb.sql(query).fetchall()[0]
    assert n == (len(load(RUN).get_trials(states=(TrialState.COMPLETE,))),)


# ----------------------------------------------------------------------------- NaN / inf


def test_non_finite_objectives_fail_the_trial(work: Path, capsys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = st.evaluate_designs
    poisoned: dict[int, tuple[str, float]] = {}
    seen = [0]

    def evaluate_designs(designs, job, extra=None, prices=None):
        metrics = real(designs, job, extra, prices)
        for m in metrics:  # trial number == position in the sequence of evaluations
            i = seen[0]
            seen[0] += 1
            if i % 3 == 0:
                poisoned[i] = ("tokens_per_s", math.nan)
            elif i % 5 == 1:  # would dominate every design if it were COMPLETE
                poisoned[i] = ("tokens_per_s", math.inf)
            elif i % 7 == 2:
                poisoned[i] = ("silicon_mm2", -math.inf)
            elif i % 11 == 4:
                poisoned[i] = ("tokens_per_joule", -math.inf)
            if i in poisoned:
                m[poisoned[i][0]] = poisoned[i][1]
        return metrics

    monkeypatch.setattr(st, "evaluate_designs", evaluate_designs)
    exp_path = write_experiment(work)
    code, out, err = cli(capsys, "search", str(exp_path), "--trials", "24")
    assert code == 0, err
    assert len(poisoned) >= 6

    study = load(RUN)
    by_number = states(study)
    assert len(by_number) == 24
    for n, state in by_number.items():
        assert state == (TrialState.FAIL if n in poisoned else TrialState.COMPLETE), n
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert all(math.isfinite(v) for v in t.values)
    df = check_log(RUN, study)
    assert not set(df["trial"]) & set(poisoned)

    code, out, err = cli(capsys, "pareto", str(RUN), "--format", "json")
    assert code == 0, err
    front = {r["trial"] for r in json.loads(out)["front"]}
    assert front and not front & set(poisoned)
    assert not set(pd.read_parquet(front_snapshots(RUN)[-1])["trial"]) & set(poisoned)


# ----------------------------------------------------------------------------- interrupts


def test_keyboard_interrupt_leaves_a_clean_study(work: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = st.evaluate_designs
    calls = [0]

    def evaluate_designs(designs, job, extra=None, prices=None):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return real(designs, job, extra, prices)

    monkeypatch.setattr(st, "evaluate_designs", evaluate_designs)
    exp_path = write_experiment(work)
    code, _, err = cli(capsys, "search", str(exp_path), "--trials", "24")
    assert code == 130
    assert "interrupted" in err
    study = load(RUN)
    by_number = states(study)
    # proposals are recorded only once evaluated: the interrupted population leaves no trace
    assert by_number == {n: TrialState.COMPLETE for n in range(POP)}
    for f in (RUN / "trials").iterdir():
        pq.read_table(f)
    check_log(RUN, study)

    # and the study continues cleanly
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    study = load(RUN)
    assert len(study.trials) == 2 * POP
    check_log(RUN, study)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parquet_log.pq, "write_table", full_disk)
    target = tmp_path / "trials" / "part-x-00000000-00000001.parquet"
    with pytest.raises(ConfigError, match="no space left") as info:  # one line, exit 2
        parquet_log.atomic_write(pa.table({"trial": [0, 1]}), target)
    assert info.value.__cause__.errno == 28
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "front.parquet"
    parquet_log.atomic_write(pa.table({"trial": [1, 2, 3]}), target)

    def full_disk(table, where, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parquet_log.pq, "write_table", full_disk)
    with pytest.raises(ConfigError, match="no space left"):
        parquet_log.atomic_write(pa.table({"trial": [9]}), target)
    assert [p.name for p in tmp_path.iterdir()] == ["front.parquet"]
    assert pq.read_table(target).column("trial").to_pylist() == [1, 2, 3]


# ----------------------------------------------------------------------------- storages


def test_journal_storage_path(work: Path, capsys) -> None:
    storage = work / "x.log"
    exp_path = write_experiment(work)
    code, _, err = cli(capsys, "search", str(exp_path), "--trials", "8", "--storage",
                         str(storage))
    assert code == 0, err
    assert storage.is_file()
    assert not (RUN / "study.log").exists()
    assert json.loads((RUN / "run.json").read_text(encoding="utf-8"))["storage"] == str(storage)
    assert cli(capsys, "resume", str(RUN), "--trials", "8")[0] == 0
    study = optuna.load_study(study_name=STUDY, storage=rd.open_storage(rd.load_run(RUN)[1]))
    assert sorted(states(study)) == list(range(16))
    check_log(RUN, study)
    assert not (RUN / "study.log").exists()


@pytest.mark.parametrize("url", ["redis://x", "x.db", "http://db/x"])
def test_bad_storage_url_exits_2_and_creates_nothing(work: Path, capsys, url: str) -> None:
    exp_path = write_experiment(work)
    code, out, err = cli(capsys, "search", str(exp_path), "--trials", "8", "--storage", url)
    assert code == 2, (out, err)
    assert "--storage" in err and url in err, err
    assert not Path("runs").exists()
    assert sorted(p.name for p in work.iterdir()) == ["exp.toml", "space.toml"]


def test_resume_from_another_directory_with_a_relative_journal(
        work: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "8", "--storage", "rel.log")[0] == 0
    (work / "elsewhere").mkdir()
    monkeypatch.chdir(work / "elsewhere")
    assert cli(capsys, "resume", str(work / RUN), "--trials", "8")[0] == 0
    monkeypatch.chdir(work)
    assert not (work / "elsewhere" / "rel.log").exists()
    study = optuna.load_study(study_name=STUDY, storage=rd.open_storage(
        rd.RunSpec(RUN, STUDY, str(work / "rel.log"), "nsga2", 0)))
    assert sorted(states(study)) == list(range(16))
    check_log(RUN, study)


def test_search_again_uses_the_storage_of_the_run(work: Path, capsys) -> None:
    storage = work / "x.log"
    exp_path = write_experiment(work)
    assert cli(capsys, "search", str(exp_path), "--trials", "8", "--storage",
               str(storage))[0] == 0
    parts = sorted(p.name for p in (RUN / "trials").iterdir())
    code, _, err = cli(capsys, "search", str(exp_path), "--trials", "8")
    assert not (RUN / "study.log").exists()
    if code == 2:  # also acceptable: a clear error that touches nothing
        assert sorted(p.name for p in (RUN / "trials").iterdir()) == parts
        return
    assert code == 0, err
    study = optuna.load_study(study_name=STUDY, storage=rd.open_storage(
        rd.RunSpec(RUN, STUDY, str(storage), "nsga2", 0)))
    assert sorted(states(study)) == list(range(16))
    check_log(RUN, study)
