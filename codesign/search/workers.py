"""Many workers on one study: who owns a trial, who is alive, recovery after a crash.

Each worker marks itself alive with a lock file held while its process lives
(:func:`hold_worker_lock`), and the trials it asks carry its owner tag (:func:`owner_tag`).
Before a worker searches, :func:`preflight_journal` refuses a damaged journal and clears a
dead writer's lock, :func:`recover_stale_trials` re-runs the trials dead workers left RUNNING
(by owner on a journal, by heartbeat on a database), :func:`enqueue_baselines` queues the
reference chips once per study and :func:`sync_parquet` logs the trials a dead writer left
unlogged. The search loop that calls these is :mod:`codesign.search.study`.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.search import parquet_log
from codesign.search.design import project_chip
from codesign.search.experiment import Experiment
from codesign.search.journal.check import check_journal, live_workers, lock_path, workers_dir
from codesign.search.space import project_params
from codesign.search.storage.rundir import (
    METRICS_ATTR,
    WRITER_KEY,
    RunSpec,
    _writer_tag,
    journal_file,
    row_from_trial,
)

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


def other_live_workers(run: RunSpec) -> int:
    """How many other workers on this machine hold their lock on the run's storage (stale
    lock files of dead workers are removed)."""
    return live_workers(_workers_dir(run), lambda p: str(p) in _WORKER_LOCKS) or 0


def preflight_journal(run: RunSpec) -> None:
    """Before any worker opens the storage: refuse a damaged journal (torn or glued line;
    ``codesign doctor --repair`` mends it with a backup) and clear the journal's lock file
    when no other worker of the run is alive on this machine (a killed writer's lock would
    otherwise block every later one)."""
    import fcntl

    jpath = journal_file(run)
    if jpath is None:
        return
    health = check_journal(jpath, run_dir=run.run_dir)
    if health.damaged:
        raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
    with open(_workers_dir(run) / ".recover.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if other_live_workers(run) == 0:
            lock_path(jpath).unlink(missing_ok=True)


BASELINE_ATTR = "baseline"
FAIL_REASON_ATTR = "fail_reason"  # a trial evaluated and failed for good (not killed)


def baselines_settled(study: optuna.Study) -> set[str]:
    """The reference chips that need no new trial: one of their trials is COMPLETE, waiting,
    running, or evaluated and failed for good (``fail_reason``). A baseline trial killed or
    interrupted (FAIL without a reason) does not count, so it is queued again."""
    settled = set()
    for t in study.get_trials(deepcopy=False):
        chip = t.user_attrs.get(BASELINE_ATTR)
        if chip is None:
            continue
        if t.state != TrialState.FAIL or FAIL_REASON_ATTR in t.user_attrs:
            settled.add(chip)
    return settled


def _identity(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """User attributes a re-run of ``t`` keeps: the retry link and its baseline identity."""
    attrs: dict[str, Any] = {RETRY_ATTR: t.number}
    if BASELINE_ATTR in t.user_attrs:
        attrs[BASELINE_ATTR] = t.user_attrs[BASELINE_ATTR]
    return attrs


def enqueue_baselines(exp: Experiment, run: RunSpec, study: optuna.Study) -> list[str]:
    """Warm start: put each of the experiment's reference chips, projected into the search
    space (:func:`codesign.search.design.project_chip`,
    :func:`codesign.search.space.project_params`), at
    the head of the queue, once per study (under the run's lock): a baseline is queued again
    while none of its trials is settled (:func:`baselines_settled`), e.g. after a kill. Their
    trials carry the user attribute ``baseline`` = chip id (the Parquet column
    ``is_baseline``). Returns the ids enqueued now; chips the catalog cannot project are
    skipped with a warning."""
    import fcntl

    if not exp.baselines:
        return []
    todo = [b for b in exp.baselines if b not in baselines_settled(study)]
    if not todo:
        return []
    enqueued = []
    with open(_workers_dir(run) / ".recover.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        study._thread_local.cached_all_trials = None
        done = baselines_settled(study)
        for chip_id in todo:
            if chip_id in done:
                continue
            try:
                design = project_chip(catalog.get_chip(chip_id))
            except ValueError as exc:
                print(f"codesign: warning: baseline skipped: {exc}", file=sys.stderr)
                continue
            study.enqueue_trial(project_params(exp.space, design),
                                user_attrs={BASELINE_ATTR: chip_id})
            enqueued.append(chip_id)
    return enqueued


def _rdb(study: optuna.Study) -> RDBStorage | None:
    """The study's database storage (Optuna wraps it in a cache), None for a journal."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, RDBStorage) else None


def _stale_rdb_trial_ids(study: optuna.Study) -> list[int]:
    """The RUNNING trials of a database study whose worker is gone: a heartbeat older than
    the grace period (a worker on any machine), an owner on this host that is dead (a worker
    restarted here recovers at once, without waiting out the grace period), or no owner at
    all after :data:`ORPHAN_GRACE_S` (killed between ask and recording itself: such a trial
    has no heartbeat either, and Optuna would never find it stale)."""
    stale = set(_rdb(study)._get_stale_trial_ids(study._study_id))
    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get(OWNER_ATTR)
        age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
        if (tag and owner_dead(tag)) or (not tag and age > ORPHAN_GRACE_S):
            stale.add(t._trial_id)
    return sorted(stale)


def _recover_by_heartbeat(study: optuna.Study) -> list[int]:
    """Database storages (many machines): a RUNNING trial whose worker is gone (a stale
    heartbeat or a dead owner, :func:`_stale_rdb_trial_ids`) is failed, and only the process
    whose RUNNING -> FAIL update succeeds re-enqueues its parameters, so a trial is re-run
    once however many workers recover."""
    from optuna.exceptions import UpdateFinishedTrialError

    recovered = []
    storage = study._storage
    for trial_id in _stale_rdb_trial_ids(study):
        t = storage.get_trial(trial_id)
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker recovered it
        study.enqueue_trial(t.params, user_attrs=_identity(t))
        recovered.append(t.number)
    return recovered


def recover_stale_trials(run: RunSpec, study: optuna.Study) -> list[int]:
    """Fail the trials left RUNNING by dead workers and enqueue their parameters once more.

    Under a file lock in the run directory, so that two workers starting together recover a
    trial once. A trial is stale when its owner process is gone; a trial with no owner (its
    worker died between ask and recording itself) is stale when no other worker of a journal
    run is alive on this machine, else once it is older than :data:`ORPHAN_GRACE_S`. Returns
    the numbers of the trials recovered."""
    import fcntl

    if _rdb(study) is not None:
        return _recover_by_heartbeat(study)
    lock_path = _workers_dir(run) / ".recover.lock"
    local_journal = run.storage_url is None or "://" not in run.storage_url
    recovered = []
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        alone = local_journal and other_live_workers(run) == 0
        now = datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            tag = t.user_attrs.get(OWNER_ATTR)
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if (tag and owner_dead(tag)) or (not tag and (alone or age > ORPHAN_GRACE_S)):
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                study.enqueue_trial(t.params, user_attrs=_identity(t))
                recovered.append(t.number)
    return recovered


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(tag: str | None) -> bool:
    """True if the process that evaluated a trial can no longer log it itself: it ran on
    this host and is dead (trials of live or remote writers are theirs to log)."""
    if not tag:
        return True
    host, pid, _ = tag.rsplit("-", 2)
    # this process runs one search loop at a time: its own earlier trials are not in flight
    return pid == str(os.getpid()) or owner_dead(f"{host}|{pid}|")


def sync_parquet(exp: Experiment, run: RunSpec, study: optuna.Study) -> int:
    """Bring the Parquet log level with the storage after a crash: logs the COMPLETE trials
    it lacks whose writer died (returns how many) and removes temp files of dead writers."""
    import fcntl

    folder = _workers_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    # under the run's recovery lock: workers starting together read what is logged one after
    # the other, each after the previous one's file is in place, so each trial is logged once
    with open(folder / ".recover.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        parquet_log.recover_log(run.run_dir)  # a log replacement killed midway: one log again
        parquet_log.remove_stale_temp_files(run.run_dir, pid_alive)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        tag = f"rebuild-{_writer_tag(0)}"
        logged = parquet_log.logged_trials(run.run_dir)
        missing = [t for t in complete if t.number not in logged
                   and _writer_gone(t.user_attrs.get(METRICS_ATTR, {}).get(WRITER_KEY))]
        if missing:
            parquet_log.write_trials(run.run_dir, exp,
                                     [row_from_trial(exp, t, tag) for t in missing], tag)
    return len(missing)
