"""Replay a journal's operations one by one and say which ones do not apply.

Optuna's replay (:class:`optuna.storages.journal._storage.JournalStorageReplayResult`)
silently skips an operation written by *another* process when it does not apply (a trial id
that does not exist, a finished trial updated, an incompatible distribution), so a corrupted
line can change the study without any error. Here every operation is replayed as if this
process had written it, so such an operation raises, and each is checked further: a known
op code, parameter values inside their distributions, finished trials with finite values of
the study's arity. Used by ``codesign doctor`` (:mod:`codesign.search.journal.doctor`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from optuna.distributions import json_to_distribution
from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult
from optuna.trial import TrialState

_KNOWN_OPS = {int(op) for op in JournalOperation}


class _StrictReplay(JournalStorageReplayResult):
    """Optuna's replay, raising on every operation that does not apply."""

    def _is_issued_by_this_worker(self, log: dict[str, Any]) -> bool:
        return True


def _check_op(r: _StrictReplay, log: dict[str, Any]) -> str | None:
    """What is wrong with ``log`` before it is applied (None: nothing seen)."""
    op = log.get("op_code")
    if type(op) is not int or op not in _KNOWN_OPS:
        return f"unknown op_code {op!r}"
    if not isinstance(log.get("worker_id"), str):
        return "no worker_id"
    if op == JournalOperation.SET_TRIAL_PARAM:
        dist = json_to_distribution(log["distribution"])
        if not dist._contains(log["param_value_internal"]):
            return (f"parameter {log['param_name']!r} = {log['param_value_internal']!r} is "
                    f"outside its distribution")
    if op == JournalOperation.CREATE_TRIAL:
        dists = {k: json_to_distribution(v) for k, v in log.get("distributions", {}).items()}
        for k, v in log.get("params", {}).items():
            if k not in dists or not dists[k]._contains(v):
                return f"parameter {k!r} = {v!r} is outside its distribution"
    if op == JournalOperation.SET_TRIAL_STATE_VALUES:
        state = TrialState(log["state"])
        values = log.get("values")
        if state == TrialState.COMPLETE:
            trial_id = log["trial_id"]
            study_id = r._trial_id_to_study_id.get(trial_id)
            n_dirs = len(r._studies[study_id].directions) if study_id in r._studies else None
            if not isinstance(values, list) or (n_dirs is not None and len(values) != n_dirs):
                return f"a COMPLETE trial with values {values!r}"
            if any(not isinstance(v, int | float) or math.isnan(v) for v in values):
                return f"a COMPLETE trial with a value that is not a number: {values!r}"
    return None


def replay_problems(lines: list[bytes]) -> dict[int, str]:
    """``{index in lines: reason}`` for each line that is not an operation Optuna can apply
    to the study as replayed so far. ``lines`` are the journal's complete lines without their
    newlines; lines that do not parse are reported too."""
    r = _StrictReplay("doctor-")
    out: dict[int, str] = {}
    for i, raw in enumerate(lines):
        try:
            log = json.loads(raw)
        except (ValueError, RecursionError):
            out[i] = "not JSON"
            continue
        if not isinstance(log, dict):
            out[i] = "not a JSON object"
            continue
        try:
            why = _check_op(r, log)
            if why is None:
                r.apply_logs([log])
        except Exception as exc:
            why = f"does not replay ({type(exc).__name__}: {exc})"
        if why is not None:
            out[i] = why
    return out
