"""A ``codesign worker`` killed with SIGKILL and started again with the same flags, and a worker
joining the default run of a study by its journal path (issue 13, "Data integrity").

The restarted worker gets its storage from ``--storage`` alone (no CODESIGN_STORAGE_URL), fails
and re-runs once the trials its dead predecessor left RUNNING, and brings the run's Parquet log
level with the storage: every COMPLETE trial logged exactly once, none left RUNNING.

The kill is placed, not timed: the worker runs through a wrapper that parks it (writes a marker
file, then sleeps) either in the model evaluation of its first population (enqueued trials
asked and RUNNING) or in its first Parquet write (a population COMPLETE in the storage, not yet
logged); the test waits for the marker and for the storage records, then sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import optuna
import pytest
import test_faults
from optuna.trial import TrialState
from test_faults import (
    POP,
    RUN,
    STUDY,
    Procs,
    check_log,
    check_trials,
    journal_study,
    write_experiment,
)
from test_postgres import URL as PG_URL

from codesign.search import recovery
from codesign.search import workers as wk
from codesign.search.recovery import sync_parquet
from codesign.search.study import LOG_ROWS

# python -c PARK WHERE MARKER codesign-args...: run ``codesign`` and park (marker, then sleep)
# in the first model evaluation (WHERE=evaluate) or the first Parquet write (WHERE=parquet)
PARK = """
import os, sys, time
from pathlib import Path
import codesign.search.parquet_log as pl
import codesign.search.study as st
where, marker = sys.argv[1], sys.argv[2]
sys.argv = ["codesign", *sys.argv[3:]]
def park(*args, **kwargs):
    Path(marker).write_text(str(os.getpid()))
    time.sleep(3600)
if where == "evaluate":
    st.evaluate_designs = park
else:
    pl.write_trials = park
from codesign.cli import entry
entry()
"""

needs_pg = pytest.mark.skipif(
    not PG_URL, reason="CODESIGN_TEST_PG_URL is not set (scripts/postgres.sh starts PostgreSQL)")


def wait_for(path: Path, proc, procs: Procs, timeout: float = 300.0) -> None:
    """Until ``path`` exists (the parked worker wrote its marker); fails if the worker ends."""
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the worker ended (exit {proc.returncode}) before parking: "
                        f"{procs.output(proc)}")
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not park within {timeout} s: {procs.output(proc)}")
        time.sleep(0.1)


def storage_args(tmp_path: Path, kind: str) -> tuple[list[str], str]:
    """``--storage`` flags of a shared storage of this kind, and the study name."""
    if kind == "journal":
        return ["--storage", str(tmp_path / "shared.log")], STUDY
    return ["--storage", PG_URL], f"restart-{uuid.uuid4().hex[:8]}"


def load(tmp_path: Path, kind: str, study: str) -> optuna.Study:
    if kind == "journal":
        return journal_study(tmp_path / "shared.log", study)
    return optuna.load_study(study_name=study, storage=PG_URL)


KINDS = ["journal", pytest.param("postgresql", marks=needs_pg)]


@pytest.mark.parametrize("log_rows", ["1", None])
@pytest.mark.parametrize("kind", KINDS)
def test_worker_killed_before_logging_a_population_is_restarted_with_its_flags(
        tmp_path: Path, procs: Procs, kind: str, log_rows: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after its first population (``log_rows`` "1": a file a population) or its first
    LOG_ROWS trials (the default) are COMPLETE in the storage and before they reach the
    Parquet log; the same command again logs them, once."""
    monkeypatch.delitem(test_faults.ENV, "CODESIGN_STORAGE_URL", raising=False)  # --storage only
    if log_rows is None:
        monkeypatch.delitem(test_faults.ENV, "CODESIGN_TEST_LOG_ROWS", raising=False)
    else:
        monkeypatch.setitem(test_faults.ENV, "CODESIGN_TEST_LOG_ROWS", log_rows)
    batch = POP if log_rows == "1" else LOG_ROWS
    exp = write_experiment(tmp_path)
    storage, study = storage_args(tmp_path, kind)
    flags = ["worker", str(exp), *storage, "--study", study, "--out", "runs/w",
             "--no-progress"]
    marker = tmp_path / "parked"
    parked = procs.start("parquet", str(marker), *flags, "--trials", "100000", python=PARK)
    wait_for(marker, parked, procs)
    s = load(tmp_path, kind, study)
    unlogged = [t.number for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    assert len(unlogged) == batch
    assert not (tmp_path / "runs/w/trials").exists() or not any(
        (tmp_path / "runs/w/trials").glob("*.parquet"))
    assert procs.kill(parked) == -signal.SIGKILL

    procs.run(*flags[:-1], "--trials", str(POP), timeout=300)
    s = load(tmp_path, kind, study)
    check_trials(s)
    df = check_log(tmp_path / "runs/w", s)
    assert set(unlogged) <= set(df["trial"])
    assert len(df) == batch + POP


@pytest.mark.parametrize("kind", KINDS)
def test_worker_killed_holding_running_trials_is_restarted_with_its_flags(
        tmp_path: Path, procs: Procs, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed while it evaluates enqueued trials (RUNNING, owned by it); the same command
    again, at once (no heartbeat grace period waited), fails them and re-runs each once."""
    monkeypatch.delitem(test_faults.ENV, "CODESIGN_STORAGE_URL", raising=False)  # --storage only
    exp = write_experiment(tmp_path)
    storage, study = storage_args(tmp_path, kind)
    flags = ["worker", str(exp), *storage, "--study", study, "--out", "runs/w",
             "--no-progress"]
    procs.run(*flags[:-1], "--trials", str(POP), timeout=300)
    s = load(tmp_path, kind, study)
    for t in s.get_trials(deepcopy=False)[:3]:  # three queued trials (as re-runs, baselines)
        s.enqueue_trial(t.params)
    marker = tmp_path / "parked"
    parked = procs.start("evaluate", str(marker), *flags, "--trials", "100000", python=PARK)
    wait_for(marker, parked, procs)
    running = [t.number for t in load(tmp_path, kind, study).get_trials(
        deepcopy=False, states=(TrialState.RUNNING,))]
    assert len(running) == 3
    assert procs.kill(parked) == -signal.SIGKILL

    procs.run(*flags[:-1], "--trials", str(POP), timeout=300)
    s = load(tmp_path, kind, study)
    check_trials(s)  # nothing RUNNING or WAITING, each re-run once
    retried = sorted(t.user_attrs[wk.RETRY_ATTR] for t in s.get_trials(deepcopy=False)
                     if wk.RETRY_ATTR in t.user_attrs)
    assert retried == running
    check_log(tmp_path / "runs/w", s)


def test_worker_joins_the_default_run_by_its_journal_path(tmp_path: Path,
                                                         procs: Procs) -> None:
    """``codesign worker EXP --storage runs/S/study.log --study S`` is the run's own storage
    (the default journal), written relative, absolute or with ``./``."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP), timeout=300)
    info = (tmp_path / RUN / "run.json").read_text()
    for k, path in enumerate([str(RUN / "study.log"), str(tmp_path / RUN / "study.log"),
                              f"./{RUN}/study.log"]):
        procs.run("worker", str(exp), "--storage", path, "--study", STUDY,
                  "--trials", str(POP), timeout=300)
        s = journal_study(tmp_path / RUN / "study.log")
        assert len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == (k + 2) * POP
        check_log(tmp_path / RUN, s)
    assert (tmp_path / RUN / "run.json").read_text() == info  # still the default storage
    assert json.loads(info)["storage"] is None
    # another journal is another storage: refused, nothing created
    _, _, err = procs.run("worker", str(exp), "--storage", "other.log", "--study", STUDY,
                             "--trials", str(POP), code=2)
    assert "--storage" in err and not (tmp_path / "other.log").exists()
    procs.run("resume", str(RUN), "--trials", str(POP), timeout=300)
    check_log(tmp_path / RUN, journal_study(tmp_path / RUN / "study.log"))
    assert os.path.exists(tmp_path / RUN / "study.log")


@needs_pg
def test_ownerless_running_trial_on_a_database_is_recovered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed between ask and recording itself leaves a RUNNING trial with neither
    an owner nor a heartbeat: Optuna never finds it stale; once older than the orphan grace
    period (0 here) the next worker fails it and re-runs it once."""
    from codesign.search.experiment import load_experiment
    from codesign.search.space import distributions
    from codesign.search.storage import rundir as rd
    from codesign.search.study import run_search

    exp = load_experiment(write_experiment(tmp_path))
    name = f"orphan-{uuid.uuid4().hex[:8]}"
    run = rd.prepare_run(exp, tmp_path / "runs" / "a", name, PG_URL)
    run_search(exp, run, POP, progress=False)
    s = optuna.load_study(study_name=name, storage=rd.open_storage(run))
    s.enqueue_trial(s.trials[0].params)
    orphan = s.ask(distributions(exp.space)).number  # no owner, no heartbeat: then killed
    monkeypatch.setattr(recovery, "ORPHAN_GRACE_S", 0.0)
    run_search(exp, run, POP, progress=False)
    s = load(tmp_path, "postgresql", name)
    check_trials(s)
    assert [t.user_attrs.get(wk.RETRY_ATTR) for t in s.trials].count(orphan) == 1
    check_log(tmp_path / "runs" / "a", s)


def test_workers_starting_together_log_a_dead_writers_trials_once(
        tmp_path: Path, procs: Procs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers that start together both find the COMPLETE trials a dead writer never
    logged; only one of them may log each (the soak's three-worker scenario found 31 rows
    logged twice, "rebuild" rows from workers with consecutive pids). Both are made to read
    the log before either writes: without the run's recovery lock both append."""
    import threading

    from codesign.search import parquet_log
    from codesign.search.storage import rundir as rd

    exp_path = write_experiment(tmp_path)
    procs.run("search", str(exp_path), "--trials", str(2 * POP), timeout=300)
    run_dir = tmp_path / RUN
    for part in (run_dir / "trials").glob("*.parquet"):
        part.unlink()  # the writer died before logging: every COMPLETE trial is unlogged
    exp, run = rd.load_run(run_dir)
    study = journal_study(run_dir / "study.log")
    real = parquet_log.logged_trials
    both_read = threading.Barrier(2)

    def logged_trials(folder: Path) -> set[int]:
        seen = real(folder)
        try:
            both_read.wait(timeout=5.0)  # the race, made certain where the code allows it
        except threading.BrokenBarrierError:
            pass  # the other worker waits on the recovery lock: it cannot read yet
        return seen

    monkeypatch.setattr(parquet_log, "logged_trials", logged_trials)
    monkeypatch.setattr(recovery, "_writer_gone", lambda tag: True)  # the evaluating writer is dead
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(sync_parquet(exp, run, study)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == [0, 2 * POP], counts
    check_log(run_dir, study)  # every COMPLETE trial in Parquet exactly once
