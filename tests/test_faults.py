"""Fault injection with real processes (DESIGN.md, "Reliability the users rely on").

Every test runs the ``codesign`` console script as separate processes from ``tmp_path`` on a
small copy of the quickstart experiment (population 8), kills them with SIGKILL, runs several
on one journal at once, tears the journal or leaves a stale lock, then checks the contract:
no finished trial lost, none run twice, no trial left RUNNING, every re-run recorded once
(``codesign:retry_of``), Parquet readable and equal to the COMPLETE trials of the storage,
``codesign doctor`` healthy. Every wait has a timeout: a hang fails the test.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from codesign import rundir as rd
from codesign import workers as wk

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("codesign")
POP = 8
STUDY = "qs"
RUN = Path("runs") / STUDY  # relative to tmp_path, the cwd of every process
ENV = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
LONG = ("--trials", "100000")  # a search that is still running when it is killed


# ----------------------------------------------------------------------------- helpers


def write_experiment(folder: Path) -> Path:
    """The quickstart experiment (population 8, sampler NSGA-II) next to a copy of the
    quickstart space; returns the experiment path."""
    (folder / "space.toml").write_text(
        (REPO / "search_spaces" / "quickstart.toml").read_text(encoding="utf-8"),
        encoding="utf-8")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in (('name = "quickstart"', f'name = "{STUDY}"'),
                     ('"../search_spaces/quickstart.toml"', '"space.toml"'),
                     ("population = 32", f"population = {POP}")):
        assert old in text, f"test bug: {old!r} not in the quickstart experiment"
        text = text.replace(old, new, 1)
    path = folder / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Procs:
    """Starts ``codesign`` processes in ``cwd`` (own session each, output to files) and kills
    the ones still alive at teardown."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, tuple[Path, Path]] = {}
        (cwd / "logs").mkdir(exist_ok=True)

    def start(self, *args: str, python: str | None = None) -> subprocess.Popen[bytes]:
        """``codesign ARGS``, or with ``python``: ``python -c PYTHON ARGS``."""
        argv = [str(EXE), *args] if python is None else [sys.executable, "-c", python, *args]
        if python is None and args[0] in ("search", "resume", "worker"):
            argv.append("--no-progress")
        k = len(self.started)
        out, err = self.cwd / "logs" / f"{k}.out", self.cwd / "logs" / f"{k}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(argv, cwd=self.cwd, env=ENV, stdout=fo, stderr=fe,
                                    start_new_session=True)
        self.started.append(proc)
        self.logs[proc.pid] = (out, err)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        out, err = self.logs[proc.pid]
        return (out.read_text(encoding="utf-8", errors="replace"),
                err.read_text(encoding="utf-8", errors="replace"))

    def wait(self, proc: subprocess.Popen[bytes], timeout: float) -> int:
        """The exit code; fails the test (after killing the process) on a timeout."""
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            out, err = self.output(proc)
            pytest.fail(f"{proc.args} did not finish within {timeout} s\n{out}\n{err}")

    def run(self, *args: str, timeout: float = 30.0, code: int | None = 0) -> tuple[int, str, str]:
        """Run to the end; check the exit code unless ``code`` is None."""
        proc = self.start(*args)
        rc = self.wait(proc, timeout)
        out, err = self.output(proc)
        if code is not None:
            assert rc == code, f"{args}: exit {rc}\n{out}\n{err}"
        return rc, out, err

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGKILL the process (and what it spawned, its session) and reap it."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def journal_study(path: Path, name: str = STUDY) -> optuna.Study:
    """A study read straight from a journal file (reading takes no lock)."""
    return optuna.load_study(study_name=name,
                             storage=JournalStorage(JournalFileBackend(str(path))))


def run_study(run_dir: Path) -> optuna.Study:
    _, run = rd.load_run(run_dir)
    return optuna.load_study(study_name=run.study_name, storage=rd.open_storage(run))


def owner_pid(t: FrozenTrial) -> int | None:
    """The process that asked a trial (``codesign:owner`` host|pid|start)."""
    tag = t.user_attrs.get(wk.OWNER_ATTR)
    return int(tag.split("|")[1]) if tag else None


def trial_pid(t: FrozenTrial) -> int | None:
    """The process a trial belongs to: its owner, else the writer that evaluated it
    (host-pid-wN in the metrics attribute)."""
    pid = owner_pid(t)
    if pid is not None:
        return pid
    writer = t.user_attrs.get(rd.METRICS_ATTR, {}).get(rd.WRITER_KEY)
    return int(writer.rsplit("-", 2)[1]) if writer else None


def parquet_files(run_dir: Path) -> list[Path]:
    return sorted(p for sub in ("trials", "pareto") if (run_dir / sub).is_dir()
                  for p in (run_dir / sub).iterdir())


def check_parquet_readable(run_dir: Path) -> None:
    """Every visible ``*.parquet`` reads in full; no temp file of a writer is left."""
    files = parquet_files(run_dir)
    for f in files:
        if f.suffix == ".parquet" and not f.name.startswith((".", "_")):
            pq.read_table(f)  # a half-written visible file raises here
    leftovers = [f.name for f in files if f.name.startswith(".") or f.name.endswith(".tmp")]
    assert leftovers == [], leftovers


def check_trials(study: optuna.Study, *, every_retry_ran: bool = True) -> dict[str, int]:
    """Numbers 0..n-1 once each, nothing RUNNING, each re-run once, every trial a dead
    worker left has its re-run with the same parameters. Returns counts for the report."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "trial numbers not 0..n-1 each once"
    by_number = {t.number: t for t in trials}
    running = [t.number for t in trials if t.state == TrialState.RUNNING]
    assert running == [], f"trials left RUNNING: {running}"
    waiting = [t.number for t in trials if t.state == TrialState.WAITING]
    if every_retry_ran:
        assert waiting == [], f"re-runs never run (WAITING): {waiting}"
    retry_of = [t.user_attrs[wk.RETRY_ATTR] for t in trials if wk.RETRY_ATTR in t.user_attrs]
    twice = [n for n, c in Counter(retry_of).items() if c > 1]
    assert twice == [], f"trials re-run more than once: {twice}"
    for t in trials:
        if wk.RETRY_ATTR in t.user_attrs:
            orig = by_number[t.user_attrs[wk.RETRY_ATTR]]
            assert orig.state == TrialState.FAIL, (t.number, orig.number, orig.state)
            assert orig.number < t.number
            if t.state != TrialState.WAITING:  # a trial killed mid-ask has some params only
                assert orig.params.items() <= t.params.items(), (t.number, orig.number)
    # a FAIL trial with no reason of the model's (non-finite values) was left by a kill
    killed = {t.number for t in trials
              if t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs}
    lost = sorted(killed - set(retry_of))
    assert lost == [], f"trials left by a dead worker and never re-run: {lost}"
    return {"trials": len(trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "killed": len(killed), "retries": len(retry_of)}


def check_log(run_dir: Path, study: optuna.Study) -> pd.DataFrame:
    """The Parquet log of a run holds exactly the COMPLETE trials of the storage, once each,
    read by pandas and pyarrow.dataset alike."""
    check_parquet_readable(run_dir)
    complete = {t.number for t in study.get_trials(deepcopy=False,
                                                   states=(TrialState.COMPLETE,))}
    df = pd.read_parquet(run_dir / "trials")
    dup = sorted(df["trial"][df["trial"].duplicated()])
    assert dup == [], f"trials logged twice: {dup}"
    assert len(df) == len(complete)
    assert set(df["trial"]) == complete, (
        f"missing {sorted(complete - set(df['trial']))[:10]}, "
        f"extra {sorted(set(df['trial']) - complete)[:10]}")
    ds = pads.dataset(run_dir / "trials", format="parquet")
    assert ds.count_rows() == len(complete)
    assert set(ds.to_table(columns=["trial"]).column("trial").to_pylist()) == complete
    return df


# ----------------------------------------------------------------------------- kill -9


KILL_ROUNDS = 12


def created_trials(journal: Path) -> int:
    """Trials created so far: Optuna journal lines of operation 4 (create trial)."""
    return journal.read_bytes().count(b'{"op_code":4,')


def test_kill_9_at_random_moments_then_resume(tmp_path: Path, procs: Procs) -> None:
    """12 times: start the same search, SIGKILL it after 0.3-2.5 s (while importing,
    opening the study, asking, evaluating, telling or writing Parquet), then resume."""
    exp = write_experiment(tmp_path)
    rng = random.Random(1234)
    journal = tmp_path / RUN / "study.log"
    # to the end once: creates the study (and the numba cache, should it be missing)
    procs.run("search", str(exp), "--trials", str(POP), timeout=300)
    kills = 0
    repaired = 0
    mid_search = 0  # kills after the round had added trials
    for _ in range(KILL_ROUNDS):
        created = created_trials(journal)
        proc = procs.start("search", str(exp), "--trials", "400")
        try:
            rc = proc.wait(timeout=rng.uniform(0.3, 2.5))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            rc = proc.wait(timeout=10)
        if rc == -signal.SIGKILL:
            kills += 1
            mid_search += created_trials(journal) > created
            continue
        out, err = procs.output(proc)
        # a kill mid-append may tear the journal: the next start refuses it (exit 2) and the
        # user repairs it, as the message says
        assert rc == 2 and "torn" in err and "doctor" in err, f"exit {rc}\n{out}\n{err}"
        procs.run("doctor", str(RUN), "--repair")
        repaired += 1
    assert kills >= 10
    assert mid_search >= kills // 2, "most kills came before the search started"
    procs.run("resume", str(RUN), "--trials", "16", timeout=60)

    study = run_study(tmp_path / RUN)
    counts = check_trials(study)
    check_log(tmp_path / RUN, study)
    _, out, _ = procs.run("doctor", str(RUN))
    assert "healthy" in out
    print(f"kill -9: {kills} kills ({mid_search} mid-search), {repaired} torn journals "
          f"repaired, {counts}")


# A worker that asks N trials as run_search does (recording itself as their owner), then dies
# (SIGKILL) or lives on: python -c ASKING RUN_DIR N die|live
ASKING = """
import os, signal, sys, time
from codesign import rundir as rd
from codesign import workers as wk
from codesign.space import distributions
run_dir, n, then = sys.argv[1], int(sys.argv[2]), sys.argv[3]
exp, run = rd.load_run(run_dir)
study = rd.open_study(exp, run)
owner = wk.owner_tag()
for i in range(n):
    trial = study.ask(distributions(exp.space))
    if i or then == "live":  # die: the first one killed between ask and recording its owner
        trial.set_user_attr(wk.OWNER_ATTR, owner)
if then == "die":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(120)
"""


def test_trials_of_a_killed_worker_are_rerun_exactly_once(tmp_path: Path, procs: Procs) -> None:
    """A process asks a population (as run_search does) and is killed before telling it: the
    next resume fails those trials and re-runs each once with the same parameters."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP))
    dead = procs.start(str(RUN), str(POP), "die", python=ASKING)
    assert procs.wait(dead, 60) == -signal.SIGKILL, procs.output(dead)
    left = [t.number for t in run_study(tmp_path / RUN).get_trials(deepcopy=False)
            if t.state == TrialState.RUNNING]
    assert len(left) == POP

    procs.run("resume", str(RUN), "--trials", str(2 * POP))
    study = run_study(tmp_path / RUN)
    counts = check_trials(study)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    retries = {t.user_attrs[wk.RETRY_ATTR]: t for t in by_number.values()
               if wk.RETRY_ATTR in t.user_attrs}
    assert sorted(retries) == left
    for n, t in retries.items():
        assert by_number[n].state == TrialState.FAIL
        assert t.state == TrialState.COMPLETE
        assert t.params == by_number[n].params
    assert counts["complete"] == 3 * POP
    check_log(tmp_path / RUN, study)

    procs.run("resume", str(RUN), "--trials", str(POP))  # nothing is re-run a second time
    study = run_study(tmp_path / RUN)
    assert check_trials(study)["retries"] == POP
    check_log(tmp_path / RUN, study)
    procs.run("doctor", str(RUN))


# ----------------------------------------------------------------------------- several workers


def test_four_workers_on_one_journal_file(tmp_path: Path, procs: Procs) -> None:
    """4 ``codesign worker`` processes started at once on one journal, 40 trials each, each
    with its own run directory (its own Parquet log)."""
    exp = write_experiment(tmp_path)
    shared = tmp_path / "shared.log"
    workers = [procs.start("worker", str(exp), "--storage", str(shared), "--study", "S",
                           "--trials", "40", "--out", f"runs/w{k}") for k in range(4)]
    codes = [procs.wait(w, 60) for w in workers]
    errors = [procs.output(w)[1] for w, rc in zip(workers, codes, strict=True) if rc != 0]
    assert errors == []  # (a worker once removed a live one's journal lock: fixed, guarded)

    study = journal_study(shared, "S")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(160))
    assert all(t.state == TrialState.COMPLETE for t in trials), Counter(t.state for t in trials)
    check_trials(study)

    # each worker logs the trials it evaluated in its own run directory; a worker that starts
    # after another one exited may also log that one's trials as "rebuild-" rows
    # (study.sync_parquet), so only rows written by the evaluating worker must be unique
    frames = []
    for k in range(4):
        check_parquet_readable(tmp_path / f"runs/w{k}")
        df = pd.read_parquet(tmp_path / f"runs/w{k}" / "trials")
        assert df["trial"].is_unique, f"w{k} logs a trial twice"
        frames.append(df.assign(dir=k))
    rows = pd.concat(frames, ignore_index=True)
    own = rows[~rows["writer"].str.startswith("rebuild-")]
    assert own["trial"].is_unique, sorted(own["trial"][own["trial"].duplicated()])
    assert set(own["trial"]) == set(range(160))
    evaluated_by = {t.number: t.user_attrs[rd.METRICS_ATTR][rd.WRITER_KEY] for t in trials}
    assert all(evaluated_by[n] == w for n, w in zip(own["trial"], own["writer"], strict=True))
    assert len(own.groupby("dir")) == 4, "some worker evaluated no trial"


def test_search_with_four_worker_processes(tmp_path: Path, procs: Procs) -> None:
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", "96", "--workers", "4", timeout=60)
    study = run_study(tmp_path / RUN)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(96))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    check_trials(study)
    df = check_log(tmp_path / RUN, study)
    assert df["writer"].str.rsplit("-", n=1).str[-1].nunique() == 4, "not 4 workers"
    procs.run("doctor", str(RUN))


# ----------------------------------------------------------------------------- journal damage


def test_torn_journal_line_is_refused_then_repaired(tmp_path: Path, procs: Procs) -> None:
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", "24")
    journal = tmp_path / RUN / "study.log"
    intact = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 4, "wor')  # a writer killed mid-append
    damaged = journal.read_bytes()

    _, _, err = procs.run("resume", str(RUN), "--trials", "8", code=2)
    assert "torn" in err and "doctor" in err, err
    assert journal.read_bytes() == damaged
    assert not list(journal.parent.glob("study.log.bak-*"))
    _, out, _ = procs.run("doctor", str(RUN), code=1)
    assert "torn" in out

    _, out, err = procs.run("doctor", str(RUN), "--repair")
    backups = list(journal.parent.glob("study.log.bak-*"))
    assert len(backups) == 1, (out, err)
    assert backups[0].read_bytes() == damaged
    assert journal.read_bytes() == intact

    procs.run("resume", str(RUN), "--trials", "8")
    study = run_study(tmp_path / RUN)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(32))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    check_log(tmp_path / RUN, study)
    procs.run("doctor", str(RUN))


def test_stale_journal_lock_of_a_dead_process(tmp_path: Path, procs: Procs) -> None:
    """A writer killed while it held Optuna's journal lock leaves the symlink
    ``study.log.lock -> study.log`` (JournalFileSymlinkLock); the next start clears it."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", "8")
    journal = tmp_path / RUN / "study.log"
    lock = Path(f"{journal}.lock")
    os.symlink(str(journal), lock)
    old = time.time() - 120
    os.utime(lock, (old, old), follow_symlinks=False)
    _, out, _ = procs.run("doctor", str(RUN), code=1)
    assert "stale lock" in out

    t0 = time.monotonic()
    procs.run("resume", str(RUN), "--trials", "8", timeout=20)
    assert time.monotonic() - t0 < 20
    assert not os.path.lexists(lock)
    study = run_study(tmp_path / RUN)
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 16
    check_trials(study)
    procs.run("doctor", str(RUN))


def test_fresh_stale_lock_does_not_hang_resume(tmp_path: Path, procs: Procs) -> None:
    """The same lock, just left (younger than Optuna's 30 s grace period)."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", "8")
    journal = tmp_path / RUN / "study.log"
    lock = Path(f"{journal}.lock")
    os.symlink(str(journal), lock)
    procs.run("resume", str(RUN), "--trials", "8", timeout=20)
    assert not os.path.lexists(lock)
    check_trials(run_study(tmp_path / RUN))


# ----------------------------------------------------------------------------- a live worker


def wait_for_trials(journal: Path, pid: int, timeout: float, count: int = 1) -> None:
    """Until the process ``pid`` has ``count`` trials in the study."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            try:
                trials = journal_study(journal).get_trials(deepcopy=False)
            except KeyError:  # the study is not created yet
                trials = []
            if sum(trial_pid(t) == pid for t in trials) >= count:
                return
        time.sleep(0.1)
    pytest.fail(f"process {pid} asked no trial within {timeout} s")


def lock_left_by_dead(journal: Path) -> bool:
    """True if Optuna's journal lock stays the same symlink for a second (appends hold it
    for milliseconds): its holder is gone."""
    lock = Path(f"{journal}.lock")
    try:
        first = os.lstat(lock)
        time.sleep(1.0)
        again = os.lstat(lock)
    except FileNotFoundError:
        return False
    return (first.st_ino, first.st_mtime_ns) == (again.st_ino, again.st_mtime_ns)


A_TRIALS = 1200  # A must outlive B's kill and all of C


def test_killed_worker_next_to_a_live_one(tmp_path: Path, procs: Procs) -> None:
    """A and B run on one run directory; B is killed; C, started while A still runs, re-runs
    B's trials but must not touch A's nor those of H, a live process holding RUNNING trials
    (their owners are alive); A then finishes cleanly, H is killed and recovered last."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP))
    journal = tmp_path / RUN / "study.log"
    a = procs.start("resume", str(RUN), "--trials", str(A_TRIALS))
    b = procs.start("resume", str(RUN), *LONG)
    wait_for_trials(journal, a.pid, 20)
    wait_for_trials(journal, b.pid, 20)
    time.sleep(0.5)
    assert procs.kill(b) == -signal.SIGKILL
    b_running = [t.number for t in journal_study(journal).get_trials(deepcopy=False)
                 if owner_pid(t) == b.pid and t.state == TrialState.RUNNING]

    if lock_left_by_dead(journal):
        # B died holding Optuna's journal lock. A is alive, so no codesign start clears it;
        # Optuna takes such a lock over after 30 s (and never in a relative run directory:
        # test_journal_lock_of_a_relative_run_dir_points_at_the_journal). Do what the user
        # does after those 30 s: doctor --repair removes the stale lock.
        print("B was killed holding the journal lock")
        old = time.time() - 60
        os.utime(f"{journal}.lock", (old, old), follow_symlinks=False)
        procs.run("doctor", str(RUN), "--repair")
    # A commits fresh trials in one write; a live worker holds RUNNING trials while it runs
    # enqueued ones (re-runs, baselines): H asks a population and lives on
    h = procs.start(str(RUN), str(POP), "live", python=ASKING)
    wait_for_trials(journal, h.pid, 20, count=POP)
    t_c = time.monotonic()
    procs.run("resume", str(RUN), "--trials", "16", timeout=60)
    t_c = time.monotonic() - t_c
    assert a.poll() is None, "A finished before C did: the test did not test a live A"
    assert h.poll() is None, procs.output(h)
    study = journal_study(journal)
    h_trials = [t for t in study.get_trials(deepcopy=False) if owner_pid(t) == h.pid]
    assert [t.state for t in h_trials] == [TrialState.RUNNING] * POP, "C failed H's trials"
    a_failed = [t.number for t in study.get_trials(deepcopy=False)
                if trial_pid(t) == a.pid and t.state == TrialState.FAIL]
    assert a_failed == [], f"C failed trials of the live worker A: {a_failed}"
    retried = {t.user_attrs[wk.RETRY_ATTR] for t in study.get_trials(deepcopy=False)
               if wk.RETRY_ATTR in t.user_attrs}
    assert set(b_running) <= retried, "C did not re-run the trials B left RUNNING"

    t_a = time.monotonic()
    assert procs.wait(a, 90) == 0, procs.output(a)
    print(f"C took {t_c:.1f} s; A ran on {time.monotonic() - t_a:.1f} s after C")
    study = run_study(tmp_path / RUN)
    a_trials = [t for t in study.get_trials(deepcopy=False) if trial_pid(t) == a.pid]
    assert len(a_trials) == A_TRIALS
    assert all(t.state == TrialState.COMPLETE for t in a_trials)
    # H dies now; alone, the next resume re-runs its trials (and a trial B asked but had not
    # yet marked as its own, left to the grace period while A lived)
    procs.kill(h)
    procs.run("resume", str(RUN), "--trials", "16")
    study = run_study(tmp_path / RUN)
    check_trials(study)
    retried = {t.user_attrs[wk.RETRY_ATTR] for t in study.get_trials(deepcopy=False)
               if wk.RETRY_ATTR in t.user_attrs}
    assert {t.number for t in h_trials} <= retried
    check_log(tmp_path / RUN, study)
    procs.run("doctor", str(RUN))


# ----------------------------------------------------------------------------- known bugs


def start_writer_a(tmp_path: Path, procs: Procs):
    """Worker A on ``shared.log`` (long budget), once it has written 20 trials:
    (experiment path, journal path, process)."""
    exp = write_experiment(tmp_path)
    shared = tmp_path / "shared.log"
    a = procs.start("worker", str(exp), "--storage", str(shared), "--study", STUDY, *LONG,
                    "--out", "runs/a")
    wait_for_trials(shared, a.pid, 20)
    return exp, shared, a


def test_joining_worker_keeps_the_journal_lock_of_a_live_worker(tmp_path: Path,
                                                                procs: Procs) -> None:
    exp, shared, a = start_writer_a(tmp_path, procs)
    lock = JournalFileSymlinkLock(str(shared))  # what Optuna takes for every append
    lock.acquire()  # held now, as by A in the middle of an append
    lock_file = Path(f"{shared}.lock")
    b = procs.start("worker", str(exp), "--storage", str(shared), "--study", STUDY,
                    "--trials", str(POP), "--out", "runs/b")
    deadline = time.monotonic() + 8.0  # B needs ~1.5 s to reach the journal
    while time.monotonic() < deadline and b.poll() is None and os.path.lexists(lock_file):
        time.sleep(0.05)
    held = os.path.lexists(lock_file) and os.readlink(lock_file) == str(shared)
    if held:
        lock.release()
        assert procs.wait(b, 40) == 0, procs.output(b)
    procs.kill(a)
    assert held, "worker B deleted the journal lock held by a live writer"


def test_joining_worker_leaves_a_fresh_ownerless_trial_alone(tmp_path: Path,
                                                             procs: Procs) -> None:
    exp, shared, a = start_writer_a(tmp_path, procs)
    asked = journal_study(shared).ask()  # a live process between ask and recording its owner
    procs.run("worker", str(exp), "--storage", str(shared), "--study", STUDY,
              "--trials", str(POP), "--out", "runs/b")
    procs.kill(a)
    state = journal_study(shared).trials[asked.number].state
    assert state == TrialState.RUNNING, f"a fresh trial of a live process was set {state.name}"


def test_journal_lock_of_a_relative_run_dir_points_at_the_journal(
        tmp_path: Path, procs: Procs, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP))
    monkeypatch.chdir(tmp_path)
    _, run = rd.load_run(RUN)  # as `codesign resume runs/qs` opens it
    lock = rd.open_storage(run)._backend._lock  # type: ignore[attr-defined]
    lock.acquire()
    try:
        lock_file = tmp_path / RUN / "study.log.lock"
        assert os.path.lexists(lock_file)
        assert os.path.exists(lock_file), f"dangling: -> {os.readlink(lock_file)}"
    finally:
        lock.release()


def test_search_again_after_a_kill_while_creating_the_run_directory(tmp_path: Path,
                                                                    procs: Procs) -> None:
    exp = write_experiment(tmp_path)
    run_dir = tmp_path / RUN
    run_dir.mkdir(parents=True)
    # what write_run_files has written when SIGKILL comes before run.json
    (run_dir / "search_space.toml").write_bytes((tmp_path / "space.toml").read_bytes())
    text = exp.read_bytes()
    (run_dir / "experiment.toml").write_bytes(text[: len(text) // 2])
    procs.run("search", str(exp), "--trials", str(POP))
    study = run_study(run_dir)
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == POP
