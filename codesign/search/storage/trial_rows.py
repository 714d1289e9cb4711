"""A finished trial as codesign stores it: objective values, constraints (<= 0 feasible) and
its Parquet row, from the metrics the model returned (no storage access here)."""

from __future__ import annotations

import math
import os
import socket
import warnings
from typing import Any

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial

from codesign.search.experiment import Experiment

METRICS_ATTR = "codesign:metrics"
"""User attribute holding a trial's metrics (the model's result)."""
INFEASIBLE_CONSTRAINT = "mapping_feasible"
"""Constraint name: 0 when the mapping search found a feasible mapping, 1 otherwise."""
WRITER_KEY = "_writer"  # inside the metrics attribute: which process evaluated the trial


def objective_values(exp: Experiment, metrics: dict[str, Any]) -> list[float]:
    """Objective values of a trial, in the experiment's order."""
    return [float(metrics[o.metric]) for o in exp.objectives]


def constraint_values(exp: Experiment, metrics: dict[str, Any]) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible): the mapping search succeeded, then each bound."""
    out = {INFEASIBLE_CONSTRAINT: 0.0 if metrics["feasible"] else 1.0}
    for c in exp.constraints:
        v = float(metrics[c.metric])
        if c.max is not None:
            out[f"{c.metric}_max"] = v - c.max if math.isfinite(v) else 1e300
        if c.min is not None:
            out[f"{c.metric}_min"] = c.min - v if math.isfinite(v) else 1e300
    return out


def row_from_trial(exp: Experiment, t: FrozenTrial, writer: str) -> dict[str, Any]:
    """One Parquet row for a finished trial (everything from the storage)."""
    m = dict(t.user_attrs.get(METRICS_ATTR, {}))
    m.pop(WRITER_KEY, None)  # internal (the "writer" column says who wrote the row)
    row: dict[str, Any] = {
        "trial": t.number,
        "is_baseline": "baseline" in t.user_attrs,
        "baseline": t.user_attrs.get("baseline"),
        "feasible": bool(m.get("feasible", False)),
        "constraints_ok": all(v <= 0 for v in t.constraints.values()),
        "reason": m.get("reason", ""),
        "writer": writer,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }
    row.update({f"param_{k}": v for k, v in t.params.items()})
    row.update({f"value_{o.metric}": v for o, v in zip(exp.objectives, t.values or [],
                                                        strict=False)})
    row.update(m)
    return row


def _writer_tag(worker: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-w{worker}"


CONSTRAINTS_KEY = _CONSTRAINTS_KEY
"""System attribute of a trial's constraint values (<= 0 feasible), as a list in the order of
:func:`constraint_names`: Optuna's samplers read it, and optuna-dashboard reads only this form
(``constraints:<name>`` keys, Optuna's newer form, are invisible to it)."""


CONSTRAINT_NAMES_ATTR = "codesign:constraint_names"


def constraint_names(exp: Experiment) -> list[str]:
    """Names of the constraint values of a trial, in their stored order."""
    names = [INFEASIBLE_CONSTRAINT]
    for c in exp.constraints:
        names += [f"{c.metric}_max"] * (c.max is not None) + [f"{c.metric}_min"] * (
            c.min is not None)
    return names


def name_study(exp: Experiment, study: optuna.Study) -> None:
    """Name the objectives (``study.set_metric_names``: optuna-dashboard and Optuna's plots
    show them) and record the constraint names, once per study."""
    metrics = [o.metric for o in exp.objectives]
    if study.metric_names != metrics:
        with warnings.catch_warnings():  # experimental in Optuna 5, stable in use since 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metrics)
    if study.user_attrs.get(CONSTRAINT_NAMES_ATTR) != constraint_names(exp):
        study.set_user_attr(CONSTRAINT_NAMES_ATTR, constraint_names(exp))
