"""The harness of scripts/soak.py: the codesign processes it starts and kills, the storage it
watches for progress, and what it measures and judges in a run directory afterwards (the
scenarios and the command line are in soak.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("single", "workers2", "worker3", "postgres", "baselines", "export")
BASELINES = ("a100-sxm-80gb", "h100-sxm", "h200", "b200", "mi300x", "gaudi3", "maia100",
             "tpu-v5p")
LONG = "100000"  # a budget no killed process reaches
OWNER = b'"codesign:owner"'
CREATE = b'{"op_code":4,'

# ``python -c CLI ARGS`` runs the codesign CLI; with CODESIGN_SOAK_CRASH="DIR:K" it kills
# itself (SIGKILL) right after its K-th rename or unlink of a file under DIR (export kills)
CLI = r"""
import os, signal, sys
spec = os.environ.pop("CODESIGN_SOAK_CRASH", "")
if spec:
    folder, k = spec.rsplit(":", 1)
    folder, k, seen = os.path.realpath(folder), int(k), [0]
    def hook(real, arg):
        def op(*a, **kw):
            out = real(*a, **kw)
            if os.path.realpath(os.fspath(a[arg])).startswith(folder + os.sep):
                seen[0] += 1
                if seen[0] >= k:
                    os.kill(os.getpid(), signal.SIGKILL)
            return out
        return op
    os.replace, os.unlink = hook(os.replace, 1), hook(os.unlink, 0)
from codesign.cli import main
sys.exit(main(sys.argv[1:]))
"""


class SoakError(RuntimeError):
    """A hang (no progress within the safety timeout) or a broken setup."""


@dataclass
class Result:
    name: str
    status: str = "ok"  # ok | fault | skipped
    kills: int = 0
    complete: int = 0
    parquet_rows: int = 0
    duplicates: int = 0
    lost: int = 0
    reruns: int = 0
    running_left: int = 0
    phantom: int = 0
    unrecovered: int = 0
    unreadable: int = 0
    waiting_left: int = 0
    repeated_designs: int = 0
    repaired: int = 0
    lock_takeovers: int = 0  # a killed writer's journal lock taken over by Optuna after 30 s
    duplicates_by: dict[str, int] = field(default_factory=dict)  # extra rows by writer kind
    baselines_missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0


class Storage:
    """Counts of trial and owner records in a journal file or a PostgreSQL study."""

    def __init__(self, journal: Path | None = None, url: str | None = None,
                 study: str = "") -> None:
        self.journal, self.url, self.study_name = journal, url, study
        self._engine = None

    def counts(self) -> tuple[int, int]:
        if self.journal is not None:
            try:
                data = self.journal.read_bytes()
            except FileNotFoundError:
                return 0, 0
            return data.count(CREATE), data.count(OWNER)
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url,
                                                    poolclass=sqlalchemy.pool.NullPool)
        q = ("SELECT (SELECT count(*) FROM trials t JOIN studies s USING (study_id) "
             " WHERE s.study_name = :n), "
             "(SELECT count(*) FROM trial_user_attributes a JOIN trials t USING (trial_id) "
             " JOIN studies s USING (study_id) WHERE s.study_name = :n AND a.key = :k)")
        try:
            with self._engine.connect() as conn:
                row = conn.execute(sqlalchemy.text(q), {"n": self.study_name,
                                                        "k": "codesign:owner"}).one()
        except sqlalchemy.exc.ProgrammingError:  # tables not created yet
            return 0, 0
        return int(row[0]), int(row[1])

    def study(self) -> Any:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        storage = (JournalStorage(JournalFileBackend(str(self.journal)))
                   if self.journal is not None else self.url)
        return optuna.load_study(study_name=self.study_name, storage=storage)

    def waiting(self) -> int:
        from optuna.trial import TrialState

        try:
            return len(self.study().get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        except (KeyError, FileNotFoundError):  # no study yet
            return 0


class Soak:
    """One scenario's processes, in its own folder."""

    def __init__(self, root: Path, rng: random.Random, pop: int, timeout: float,
                 verbose: bool, env: dict[str, str] | None = None) -> None:
        self.root, self.rng, self.pop, self.timeout = root, rng, pop, timeout
        self.verbose = verbose
        self.env = {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        (root / "logs").mkdir(parents=True, exist_ok=True)

    def say(self, msg: str) -> None:
        if self.verbose:
            print(f"  {msg}", file=sys.stderr, flush=True)

    def start(self, *args: str, crash: str | None = None) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", CLI, *args]
        if args[0] in ("search", "resume", "worker"):
            argv.append("--no-progress")
        env = dict(self.env)
        if crash:
            env["CODESIGN_SOAK_CRASH"] = crash
        log = self.root / "logs" / f"{len(self.procs)}-{args[0]}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, cwd=self.root, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def tail(self, proc: subprocess.Popen[bytes]) -> str:
        lines = self.logs[proc.pid].read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        try:
            return proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise SoakError(f"{' '.join(proc.args[3:])} did not finish within "
                            f"{self.timeout:.0f} s (safety timeout): a hang") from None

    def run(self, *args: str, res: Result, crash: str | None = None) -> int:
        """Run to the end; a non-zero exit (other than a kill we injected) is an error."""
        proc = self.start(*args, crash=crash)
        rc = self.wait(proc)
        if rc not in (0, -signal.SIGKILL) or (rc == -signal.SIGKILL and not crash):
            res.errors.append(f"{args[0]} exit {rc}: {self.tail(proc)}")
        return rc

    def finish(self, *args: str, res: Result, journal: Path | None) -> int:
        """The run after the last kill: as :meth:`run`, but a start refused for a torn journal
        (the last kill came mid-append) is repaired with ``codesign doctor --repair`` and run
        again, exactly as a restart between kills is."""
        proc = self.start(*args)
        rc = self.wait(proc)
        tail = self.tail(proc)
        if rc == 2 and "torn" in tail and "doctor" in tail and journal is not None:
            self.say(f"torn journal refused: {tail}")
            self.run("doctor", str(journal), "--repair", res=res)
            res.repaired += 1
            return self.run(*args, res=res)
        if rc != 0:
            res.errors.append(f"{args[0]} exit {rc}: {tail}")
        return rc

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.wait(timeout=60)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)

    def trigger(self, storage: Storage) -> tuple[str, int]:
        """The next kill moment: after k owner records while queued trials (re-runs,
        baselines) wait, else after k new trial records (k random, up to two populations)."""
        waiting = storage.waiting()
        if waiting:
            return "owner", self.rng.randint(1, min(waiting, self.pop))
        return "trial", self.rng.randint(1, 2 * self.pop)

    def kill_on_progress(self, storage: Storage, kind: str, k: int,
                         victims: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
        """Wait until the storage holds k more records of ``kind``, then SIGKILL one live
        process of ``victims`` (chosen at random) and return it; None if all of them exited
        first (their exits are the caller's to judge)."""
        base = storage.counts()
        idx = 0 if kind == "trial" else 1
        deadline = time.monotonic() + self.timeout
        while True:
            live = [p for p in victims if p.poll() is None]
            if not live:
                return None
            if storage.counts()[idx] - base[idx] >= k:
                victim = self.rng.choice(live)
                rc = self.kill(victim)
                self.say(f"kill -9 {victim.pid} after {k} new {kind} records (exit {rc})")
                return victim
            if time.monotonic() > deadline:
                raise SoakError(f"no {k} new {kind} records within {self.timeout:.0f} s "
                                "(safety timeout): a hang")
            time.sleep(0.02)  # polling the storage, not timing the kill


# ----------------------------------------------------------------------------- experiments


def write_experiment(folder: Path, name: str, pop: int, baselines: bool = False) -> Path:
    """The quickstart experiment with population ``pop`` next to a copy of its space."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.toml").write_text(
        (REPO / "search_spaces" / "quickstart.toml").read_text(encoding="utf-8"),
        encoding="utf-8")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    head = f'name = "{name}"'
    if baselines:
        head += "\nbaselines = [" + ", ".join(f'"{b}"' for b in BASELINES) + "]"
    for old, new in (('name = "quickstart"', head),
                     ('"../search_spaces/quickstart.toml"', '"space.toml"'),
                     ("population = 32", f"population = {pop}")):
        if old not in text:
            raise SoakError(f"experiments/quickstart.toml no longer holds {old!r}")
        text = text.replace(old, new, 1)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- checks


def measure(res: Result, storage: Storage, run_dir: Path) -> None:
    """Fill ``res`` from the storage (the truth) and the run's Parquet trial log."""
    import pyarrow.parquet as pq
    from optuna.trial import TrialState

    trials = storage.study().get_trials(deepcopy=False)
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    numbers: list[int] = []
    writers: list[str] = []
    baseline_rows: set[str] = set()
    folder = run_dir / "trials"
    for f in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        if f.name.startswith((".", "_")):
            continue
        try:
            table = pq.read_table(f, columns=["trial", "is_baseline", "baseline", "writer"])
        except Exception as exc:
            res.unreadable += 1
            res.errors.append(f"{f.name}: {exc}")
            continue
        numbers += table.column("trial").to_pylist()
        writers += table.column("writer").to_pylist()
        baseline_rows |= {b for ok, b in zip(table.column("is_baseline").to_pylist(),
                                             table.column("baseline").to_pylist(), strict=True)
                          if ok and b}
    counts = Counter(numbers)
    res.complete = len(complete)
    res.parquet_rows = len(numbers)
    extra = sum(c - 1 for c in counts.values())
    if extra >= res.duplicates:  # the worst state seen, and who wrote its extra rows
        res.duplicates = extra
        seen_rows: set[int] = set()
        by: Counter[str] = Counter()
        for n, w in zip(numbers, writers, strict=True):
            if n in seen_rows:
                by[(w or "?").split("-", 1)[0] if (w or "").startswith(("rebuild", "export"))
                   else "search"] += 1
            seen_rows.add(n)
        res.duplicates_by = dict(by)
    res.lost = len(complete - set(counts))
    res.phantom = len(set(counts) - complete)
    res.running_left = sum(t.state == TrialState.RUNNING for t in trials)
    res.waiting_left = sum(t.state == TrialState.WAITING for t in trials)
    retry_of = [t.user_attrs["codesign:retry_of"] for t in trials
                if "codesign:retry_of" in t.user_attrs]
    res.reruns = len(retry_of)
    killed = {t.number for t in trials
              if t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs}
    res.unrecovered = len(killed - set(retry_of))
    seen: set[tuple[Any, ...]] = set()
    res.repeated_designs = 0
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and "codesign:retry_of" not in t.user_attrs:
            key = tuple(sorted(t.params.items()))
            res.repeated_designs += key in seen
            seen.add(key)
    asked = {t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs}
    done = {t.user_attrs["baseline"] for t in trials
            if "baseline" in t.user_attrs and t.state == TrialState.COMPLETE}
    if asked:
        res.baselines_missing = sorted((asked - done) | (asked - baseline_rows))


def judge(res: Result) -> None:
    if res.duplicates:
        res.faults.append(f"duplicates={res.duplicates} (extra rows written by "
                          + ", ".join(f"{k}: {v}" for k, v in res.duplicates_by.items()) + ")")
    for key in ("lost", "running_left", "phantom", "unrecovered", "unreadable"):
        if getattr(res, key):
            res.faults.append(f"{key}={getattr(res, key)}")
    if res.baselines_missing:
        res.faults.append("baselines without a COMPLETE trial or Parquet row flagged "
                          f"is_baseline: {', '.join(res.baselines_missing)}")
    if res.errors:
        res.faults.append(f"{len(res.errors)} command(s) failed")
    if res.faults:
        res.status = "fault"


# ----------------------------------------------------------------------------- scenarios
