"""Reference chips as warm-start trials: each baseline projected into the search space and
queued once per study (again only when its trial was killed)."""

from __future__ import annotations

import sys
from typing import Any

import optuna
from optuna.trial import TrialState

from codesign.search.experiment import Experiment
from codesign.search.references import reference_params
from codesign.search.storage.rundir import RunSpec
from codesign.search.workers import recovery_lock

BASELINE_ATTR = "baseline"


FAIL_REASON_ATTR = "fail_reason"  # a trial evaluated and failed for good (not killed)


WARM_START_ATTR = "warm_start"  # "<other study>#<trial>" of a design queued by --warm-start


def baselines_settled(study: optuna.Study, attr: str = BASELINE_ATTR) -> set[str]:
    """The reference chips (or, ``attr`` = :data:`WARM_START_ATTR`, warm-start designs) that
    need no new trial: one of their trials is COMPLETE, waiting, running, or evaluated and
    failed for good (``fail_reason``). A trial killed or interrupted (FAIL without a reason)
    does not count, so it is queued again."""
    settled = set()
    for t in study.get_trials(deepcopy=False):
        chip = t.user_attrs.get(attr)
        if chip is None:
            continue
        if t.state != TrialState.FAIL or FAIL_REASON_ATTR in t.user_attrs:
            settled.add(chip)
    return settled


def enqueue_baselines(exp: Experiment, run: RunSpec, study: optuna.Study) -> list[str]:
    """Warm start: put each of the experiment's reference chips, projected into the search
    space (:func:`codesign.search.design.project_chip`,
    :func:`codesign.search.space.project_params`), at
    the head of the queue, once per study (under the run's lock): a baseline is queued again
    while none of its trials is settled (:func:`baselines_settled`), e.g. after a kill. Their
    trials carry the user attribute ``baseline`` = chip id (the Parquet column
    ``is_baseline``). Returns the ids enqueued now; chips the catalog cannot project are
    skipped with a warning."""
    if not exp.baselines:
        return []
    settled = baselines_settled(study)
    todo = []
    for chip_id in exp.baselines:
        if chip_id in settled:
            continue
        try:
            params = reference_params(exp.space, exp.chip_ref(chip_id))
        except ValueError as exc:
            print(f"codesign: warning: baseline skipped: {exc}", file=sys.stderr)
            continue
        todo.append((params, chip_id))
    return _enqueue_once(run, study, BASELINE_ATTR, todo)


def enqueue_warm_start(run: RunSpec, study: optuna.Study,
                       designs: list[tuple[dict[str, Any], str]]) -> list[str]:
    """Queue designs of another study (:func:`codesign.search.warm_start.warm_start_params`:
    ``(params, tag)``) at the head of the queue, once per study as :func:`enqueue_baselines`
    does, with the user attribute ``warm_start`` = tag. Returns the tags enqueued now."""
    settled = baselines_settled(study, WARM_START_ATTR)
    return _enqueue_once(run, study, WARM_START_ATTR,
                         [(p, tag) for p, tag in designs if tag not in settled])


def _enqueue_once(run: RunSpec, study: optuna.Study, attr: str,
                  todo: list[tuple[dict[str, Any], str]]) -> list[str]:
    """Enqueue each ``(params, tag)`` of ``todo`` with the user attribute ``attr`` = tag,
    under the run's lock, skipping tags another process settled meanwhile
    (:func:`baselines_settled`). Returns the tags enqueued."""
    if not todo:
        return []
    enqueued = []
    with recovery_lock(run):
        study._thread_local.cached_all_trials = None
        done = baselines_settled(study, attr)
        for params, tag in todo:
            if tag not in done:
                study.enqueue_trial(params, user_attrs={attr: tag})
                enqueued.append(tag)
    return enqueued
