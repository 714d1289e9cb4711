"""Many workers on one study: who owns a trial, who is alive, and the run's recovery lock.

Each worker marks itself alive with a lock file held while its process lives
(:func:`hold_worker_lock`), and the trials it asks carry its owner tag (:func:`owner_tag`).
Before a worker searches, :func:`preflight_journal` refuses a damaged journal and clears a
dead writer's lock. What a dead worker left behind is :mod:`codesign.search.recovery`'s; the
reference chips queued once per study, :mod:`codesign.search.baselines`'; the loop that calls
them all, :mod:`codesign.search.study`. Each of them works under :func:`recovery_lock`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.search.journal.check import check_journal, live_workers, lock_path, workers_dir
from codesign.search.storage.rundir import RunSpec, journal_file

RECOVERY_LOCK = ".recover.lock"
"""In the workers folder: held while one process recovers trials, catches the log up,
queues baselines, clears a journal lock or replaces the log, so that no two do it at once."""

OWNER_ATTR = "codesign:owner"  # host-pid-start of the process that asked a trial
RETRY_ATTR = "codesign:retry_of"  # a re-run of the trial a dead worker left RUNNING
ORPHAN_GRACE_S = 60.0
"""A RUNNING trial with no owner (its worker died between ask and recording itself) is
recovered once it is this old; live workers record themselves microseconds after ask."""


def _process_start(pid: int) -> str:
    """Start time of a process (Linux /proc clock ticks; "" where unavailable), so a reused
    pid is not mistaken for the original process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_tag() -> str:
    """This process as the owner of the trials it asks: ``host|pid|start``."""
    return f"{socket.gethostname()}|{os.getpid()}|{_process_start(os.getpid())}"


def owner_dead(tag: str) -> bool:
    """True if the process of an owner tag is gone (same host only: a remote owner is not
    judged here)."""
    host, pid, start = [*tag.split("|"), "", "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if not pid_alive(int(pid)):
        return True
    return bool(start) and _process_start(int(pid)) != start


_WORKER_LOCKS: dict[str, Any] = {}  # open lock files of this process's workers (held till exit)


def _workers_dir(run: RunSpec) -> Path:
    """Where the workers of a storage mark themselves alive: next to its journal file (all
    run directories sharing one journal see each other), else in the run directory."""
    jpath = journal_file(run)
    if jpath is None:
        return run.run_dir / "workers"
    return workers_dir(jpath.resolve())


def hold_worker_lock(run: RunSpec, worker: int) -> Path:
    """Mark this worker alive for as long as the process lives: an exclusive flock on
    ``<journal>.workers/<host>-<pid>-w<worker>.lock`` (the kernel releases it on any exit,
    kill -9 included)."""
    import fcntl

    folder = _workers_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{socket.gethostname()}-{os.getpid()}-w{worker}.lock"
    if str(path) not in _WORKER_LOCKS:
        fh = open(path, "a+b")
        fcntl.flock(fh, fcntl.LOCK_EX)
        _WORKER_LOCKS[str(path)] = fh
    return path


@contextlib.contextmanager
def recovery_lock(run: RunSpec) -> Iterator[None]:
    """Hold the run's recovery lock (an exclusive flock on ``<workers>/.recover.lock``,
    released on any exit of the process) for the body of a ``with``."""
    import fcntl

    folder = _workers_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RECOVERY_LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def other_live_workers(run: RunSpec) -> int:
    """How many other workers on this machine hold their lock on the run's storage (stale
    lock files of dead workers are removed)."""
    return live_workers(_workers_dir(run), lambda p: str(p) in _WORKER_LOCKS) or 0


def preflight_journal(run: RunSpec) -> None:
    """Before any worker opens the storage: refuse a damaged journal (torn or glued line;
    ``codesign doctor --repair`` mends it with a backup) and clear the journal's lock file
    when no other worker of the run is alive on this machine (a killed writer's lock would
    otherwise block every later one)."""
    jpath = journal_file(run)
    if jpath is None:
        return
    health = check_journal(jpath, run_dir=run.run_dir)
    if health.damaged:
        raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
    with recovery_lock(run):
        if other_live_workers(run) == 0:
            lock_path(jpath).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


