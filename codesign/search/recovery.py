"""After a crash: trials a dead worker left RUNNING are failed and queued again once, and the
Parquet log catches up with the trials a dead writer evaluated but never logged.

By owner on a journal (the owner's process is gone), by heartbeat on a database (many
machines); always under the run's recovery lock (:func:`codesign.search.workers.recovery_lock`),
so workers starting together recover each trial once.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from codesign.search import parquet_log
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.experiment import Experiment
from codesign.search.storage.rundir import (
    METRICS_ATTR,
    WRITER_KEY,
    RunSpec,
    _writer_tag,
    row_from_trial,
)
from codesign.search.workers import (
    ORPHAN_GRACE_S,
    OWNER_ATTR,
    RETRY_ATTR,
    other_live_workers,
    owner_dead,
    pid_alive,
    recovery_lock,
)


def _identity(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """User attributes a re-run of ``t`` keeps: the retry link and its baseline identity."""
    attrs: dict[str, Any] = {RETRY_ATTR: t.number}
    if BASELINE_ATTR in t.user_attrs:
        attrs[BASELINE_ATTR] = t.user_attrs[BASELINE_ATTR]
    return attrs


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
    if _rdb(study) is not None:
        return _recover_by_heartbeat(study)
    local_journal = run.storage_url is None or "://" not in run.storage_url
    recovered = []
    with recovery_lock(run):
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
    # under the run's recovery lock: workers starting together read what is logged one after
    # the other, each after the previous one's file is in place, so each trial is logged once
    with recovery_lock(run):
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
