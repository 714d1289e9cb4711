"""Fault injection with real processes (DESIGN.md, "Reliability the users rely on").

Every test runs the ``codesign`` console script as separate processes from ``tmp_path`` on a
small copy of the quickstart experiment (population 8), kills them with SIGKILL, runs several
on one journal at once, tears the journal or leaves a stale lock, then checks the contract:
no finished trial lost, none run twice, no trial left RUNNING, every re-run recorded once
(``codesign:retry_of``), Parquet readable and equal to the COMPLETE trials of the storage,
``codesign doctor`` healthy. No test depends on timing: every wait is on a condition (an
exit, journal records, a file, a stopped process), every kill comes at a moment chosen by
progress, and the timeouts (:data:`SAFETY_S`) only turn a hang into a failure.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from codesign.search import workers as wk
from codesign.search.storage import rundir as rd

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("codesign")
POP = 8
STUDY = "qs"
RUN = Path("runs") / STUDY  # relative to tmp_path, the cwd of every process
ENV = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
LONG = ("--trials", "100000")  # a search that is still running when it is killed
SAFETY_S = 600.0
"""Every wait is on a condition (an exit, journal records, a file); this limit only turns a
hang into a failure with a clear message, it is never what a test expects."""


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

    def wait(self, proc: subprocess.Popen[bytes], timeout: float = SAFETY_S) -> int:
        """The exit code; fails the test (after killing the process) on a timeout."""
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            out, err = self.output(proc)
            pytest.fail(f"safety timeout: {proc.args} did not finish within {timeout} s"
                        f"\n{out}\n{err}")

    def run(self, *args: str, timeout: float = SAFETY_S,
            code: int | None = 0) -> tuple[int, str, str]:
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
        return proc.wait(timeout=60)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.kill(proc)


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


KILLS = 12


def created_trials(journal: Path) -> int:
    """Trials created so far: Optuna journal lines of operation 4 (create trial)."""
    try:
        return journal.read_bytes().count(b'{"op_code":4,')
    except FileNotFoundError:
        return 0


def worker_lock(journal: Path, pid: int) -> Path:
    """The lock file a search process holds while it lives (``workers.hold_worker_lock``):
    it exists once the process has written its run files and is about to open the study."""
    return journal.with_name(journal.name + ".workers") / f"{socket.gethostname()}-{pid}-w0.lock"


def own_parquet_files(run_dir: Path, pid: int) -> int:
    return len(list((run_dir / "trials").glob(f"part-*-{pid}-w0-*.parquet")))


def kill_moment(kind: str, run_dir: Path, pid: int, records: int) -> Callable[[], bool]:
    """The condition to kill search ``pid`` on: at once (``start``), once it holds its worker
    lock (``lock``), once the journal holds ``records`` trial records (``records``), once it
    wrote a Parquet file (``parquet``)."""
    journal = run_dir / "study.log"
    return {"start": lambda: True,
            "lock": lambda: worker_lock(journal, pid).exists(),
            "records": lambda: created_trials(journal) >= records,
            "parquet": lambda: own_parquet_files(run_dir, pid) > 0}[kind]


def kill_when(procs: Procs, proc: subprocess.Popen[bytes], ready: Callable[[], bool],
              what: str) -> int:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled); its exit code. Returns early
    with the process's own exit code if it ends first."""
    deadline = time.monotonic() + SAFETY_S
    while proc.poll() is None and not ready():
        if time.monotonic() > deadline:
            procs.kill(proc)
            pytest.fail(f"safety timeout: search {proc.pid} never reached '{what}' in "
                        f"{SAFETY_S:.0f} s\n{procs.output(proc)}")
        time.sleep(0.01)  # polling the condition, not timing the kill
    return procs.kill(proc)


def test_kill_9_at_random_moments_then_resume(tmp_path: Path, procs: Procs) -> None:
    """12 kills of the same search, each at a moment chosen by its progress (seeded): at
    once (interpreter start, imports), when it holds its worker lock (opening the study,
    recovering), after k new trial records (k random in one to two populations: committing,
    before or after the Parquet flush, the next population) or right after it wrote a
    Parquet file; then resume. No moment depends on how fast the machine is."""
    exp = write_experiment(tmp_path)
    rng = random.Random(1234)
    run_dir = tmp_path / RUN
    journal = run_dir / "study.log"
    # to the end once: creates the study (and the numba cache, should it be missing)
    procs.run("search", str(exp), "--trials", str(POP))
    kinds = ["start", "lock", "parquet"] + ["records"] * (KILLS - 3)
    rng.shuffle(kinds)
    kills: Counter[str] = Counter()
    repaired = 0
    while sum(kills.values()) < KILLS:
        kind = kinds[sum(kills.values())]
        created = created_trials(journal)
        k = rng.randint(1, 2 * POP)
        proc = procs.start("search", str(exp), "--trials", "400")
        ready = kill_moment(kind, run_dir, proc.pid, created + k)
        rc = kill_when(procs, proc, ready, kind)
        if rc == -signal.SIGKILL:
            kills[kind] += 1
            if kind == "records":
                assert created_trials(journal) >= created + k
            continue
        out, err = procs.output(proc)
        # a kill mid-append may tear the journal: the next start refuses it (exit 2) and the
        # user repairs it, as the message says
        assert rc == 2 and "torn" in err and "doctor" in err, f"exit {rc}\n{out}\n{err}"
        procs.run("doctor", str(RUN), "--repair")
        repaired += 1
        assert repaired <= sum(kills.values()), "a torn journal no kill could have left"
    assert set(kills) == {"start", "lock", "records", "parquet"}, kills
    procs.run("resume", str(RUN), "--trials", "16")

    study = run_study(run_dir)
    counts = check_trials(study)
    check_log(run_dir, study)
    _, out, _ = procs.run("doctor", str(RUN))
    assert "healthy" in out
    print(f"kill -9: {dict(kills)}, {repaired} torn journals repaired, {counts}")


# A worker that asks N trials as run_search does (recording itself as their owner), then dies
# (SIGKILL) or lives on: python -c ASKING RUN_DIR N die|live
ASKING = """
import os, signal, sys, time
from codesign.search.storage import rundir as rd
from codesign.search import workers as wk
from codesign.search.space import distributions
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
signal.pause()  # alive until the test kills it
"""


def test_trials_of_a_killed_worker_are_rerun_exactly_once(tmp_path: Path, procs: Procs) -> None:
    """A process asks a population (as run_search does) and is killed before telling it: the
    next resume fails those trials and re-runs each once with the same parameters."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP))
    dead = procs.start(str(RUN), str(POP), "die", python=ASKING)
    assert procs.wait(dead) == -signal.SIGKILL, procs.output(dead)
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
    codes = [procs.wait(w) for w in workers]
    errors = [procs.output(w)[1] for w, rc in zip(workers, codes, strict=True) if rc != 0]
    assert errors == []  # (a worker once removed a live one's journal lock: fixed, guarded)

    study = journal_study(shared, "S")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(160))
    assert all(t.state == TrialState.COMPLETE for t in trials), Counter(t.state for t in trials)
    check_trials(study)

    # each worker logs the trials it evaluated in its own run directory; a worker that starts
    # after another one exited may also log that one's trials as "rebuild-" rows
    # (recovery.sync_parquet), so only rows written by the evaluating worker must be unique
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
    procs.run("search", str(exp), "--trials", "96", "--workers", "4")
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


@contextmanager
def optuna_never_takes_over(journal: Path) -> Iterator[None]:
    """While the lock symlink the test planted (``<journal>.lock``) exists, keep the journal's
    mtime moving: Optuna takes a lock over only after the file it points at has not changed
    for 30 s, so a command that does not remove the dead lock itself hangs (and fails at the
    safety timeout) instead of passing after Optuna's grace period, however slow the machine."""
    lock = Path(f"{journal}.lock")
    planted = os.lstat(lock).st_ino
    stop = threading.Event()

    def touch() -> None:
        while not stop.wait(0.5):
            try:
                if os.lstat(lock).st_ino != planted:
                    return
            except FileNotFoundError:
                return
            os.utime(journal)

    thread = threading.Thread(target=touch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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

    with optuna_never_takes_over(journal):  # only codesign's own removal lets resume through
        procs.run("resume", str(RUN), "--trials", "8")
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
    with optuna_never_takes_over(journal):
        procs.run("resume", str(RUN), "--trials", "8")
    assert not os.path.lexists(lock)
    check_trials(run_study(tmp_path / RUN))


# ----------------------------------------------------------------------------- a live worker


def wait_for_trials(journal: Path, pid: int, timeout: float = SAFETY_S, count: int = 1) -> None:
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
    pytest.fail(f"safety timeout: process {pid} asked fewer than {count} trials in {timeout} s")


def process_state(pid: int) -> str:
    """The state letter of a process in /proc (R, S, T for stopped, ...)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def freeze_without_journal_lock(procs: Procs, proc: subprocess.Popen[bytes],
                                journal: Path) -> None:
    """SIGSTOP ``proc`` at a moment it does not hold Optuna's journal lock: stop it; if the
    lock exists, let it run until it has written one more trial, and try again. The process
    stays alive (its owner tag and worker lock with it) but does nothing until SIGCONT."""
    lock = Path(f"{journal}.lock")
    deadline = time.monotonic() + SAFETY_S
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        while process_state(proc.pid) != "T":  # the signal is delivered asynchronously
            time.sleep(0.01)
        if not os.path.lexists(lock):
            return
        os.kill(proc.pid, signal.SIGCONT)
        before = created_trials(journal)
        while created_trials(journal) == before:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"process {proc.pid} ended or stalled while the test waited for "
                            f"a moment it holds no journal lock\n{procs.output(proc)}")
            time.sleep(0.01)


A_TRIALS = 400


def test_killed_worker_next_to_a_live_one(tmp_path: Path, procs: Procs) -> None:
    """A and B run on one run directory; B is killed; C, started while A is alive (stopped
    with SIGSTOP at a moment it holds no journal lock, so that it is alive however fast the
    machine runs), re-runs B's trials but must not touch A's nor those of H, a live process
    holding RUNNING trials (their owners are alive); A then goes on and finishes cleanly, H
    is killed and recovered last."""
    exp = write_experiment(tmp_path)
    procs.run("search", str(exp), "--trials", str(POP))
    journal = tmp_path / RUN / "study.log"
    a = procs.start("resume", str(RUN), "--trials", str(A_TRIALS))
    b = procs.start("resume", str(RUN), *LONG)
    wait_for_trials(journal, a.pid)
    wait_for_trials(journal, b.pid, count=POP + 1)  # B is past its first population
    freeze_without_journal_lock(procs, a, journal)
    assert procs.kill(b) == -signal.SIGKILL
    b_running = [t.number for t in journal_study(journal).get_trials(deepcopy=False)
                 if owner_pid(t) == b.pid and t.state == TrialState.RUNNING]
    # should B have died holding Optuna's journal lock, no codesign start clears it while A
    # lives; H and C then take it over after Optuna's grace period (the journal is idle)
    # A commits fresh trials in one write; a live worker holds RUNNING trials while it runs
    # enqueued ones (re-runs, baselines): H asks a population and lives on
    h = procs.start(str(RUN), str(POP), "live", python=ASKING)
    wait_for_trials(journal, h.pid, count=POP)
    procs.run("resume", str(RUN), "--trials", "16")
    assert a.poll() is None, "A died while stopped"
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

    os.kill(a.pid, signal.SIGCONT)
    assert procs.wait(a) == 0, procs.output(a)
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


# The codesign CLI that first creates the file sys.argv[1] when it asks for Optuna's journal
# lock: python -c MARKS_LOCK_WAIT MARKER codesign-args...
MARKS_LOCK_WAIT = """
import sys
from pathlib import Path
from optuna.storages.journal import JournalFileSymlinkLock
marker = Path(sys.argv.pop(1))
real = JournalFileSymlinkLock.acquire
def acquire(self):
    marker.touch()
    return real(self)
JournalFileSymlinkLock.acquire = acquire
from codesign.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_writer_a(tmp_path: Path, procs: Procs):
    """Worker A on ``shared.log`` (long budget), once it has written 20 trials:
    (experiment path, journal path, process)."""
    exp = write_experiment(tmp_path)
    shared = tmp_path / "shared.log"
    a = procs.start("worker", str(exp), "--storage", str(shared), "--study", STUDY, *LONG,
                    "--out", "runs/a")
    wait_for_trials(shared, a.pid, count=20)
    return exp, shared, a


def test_joining_worker_keeps_the_journal_lock_of_a_live_worker(tmp_path: Path,
                                                                procs: Procs) -> None:
    exp, shared, a = start_writer_a(tmp_path, procs)
    lock = JournalFileSymlinkLock(str(shared))  # what Optuna takes for every append
    lock.acquire()  # held now, as by A in the middle of an append
    lock_file = Path(f"{shared}.lock")
    marker = tmp_path / "b-reached-the-journal-lock"
    with optuna_never_takes_over(shared):  # neither A nor B takes our lock over, however long
        b = procs.start(str(marker), "worker", str(exp), "--storage", str(shared), "--study",
                        STUDY, "--trials", str(POP), "--out", "runs/b", "--no-progress",
                        python=MARKS_LOCK_WAIT)
        deadline = time.monotonic() + SAFETY_S
        # B has passed its start (where it would clear a dead writer's lock) once it asks
        # for the journal lock itself
        while b.poll() is None and not marker.exists():
            assert time.monotonic() < deadline, "safety timeout: B never reached the journal"
            time.sleep(0.01)
        held = os.path.lexists(lock_file) and os.readlink(lock_file) == str(shared)
    if held:
        lock.release()
        assert procs.wait(b) == 0, procs.output(b)
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
