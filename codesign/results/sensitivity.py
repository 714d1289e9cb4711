"""What-if sensitivity around one design of a study, and the constraint bounds a design misses.

:func:`sensitivity` moves each search parameter of a trial to its neighbouring values
(:func:`neighbours`) and re-evaluates every variant by the search's own path
(:func:`evaluate_params`); :func:`violations` names the ``[constraints]`` bounds a design's
metrics miss. Presentation-free, like :mod:`codesign.results.inspect`, which re-exports the public
names.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from codesign.search.experiment import Experiment, ParamSpec
from codesign.search.storage.rundir import constraint_values, objective_values
from codesign.search.study import traffic_kw


class StudyRun(Protocol):
    """What :func:`sensitivity` reads of a run (:class:`codesign.results.inspect.Run`)."""

    @property
    def experiment(self) -> Experiment: ...

    @property
    def name(self) -> str: ...

    @property
    def study(self) -> optuna.Study: ...

    @property
    def objectives(self) -> list[tuple[str, str]]: ...


REPORTED_METRICS = ("tokens_per_joule", "die_area_mm2", "silicon_mm2", "tdp_w", "chip_power_w")
"""Metrics :func:`sensitivity` reports for every variant besides the objectives (tokens/J,
mm^2 of one compute die, mm^2 of all compute dies, W of TDP, W drawn by one chip at work)."""

CONTINUOUS_FACTOR = 1.25
"""A continuous (or log-int) parameter is varied by x/÷ this factor in :func:`sensitivity`."""


def violations(exp: Experiment, metrics: Any) -> str:
    """The ``[constraints]`` bounds a design's metrics (a dict or a trial row) miss, e.g.
    ``"n_compute_dies > 1, tdp_w > 1200"``; ``""`` if it meets them all."""
    out = []
    for c in exp.constraints:
        v = metrics.get(c.metric, math.nan)
        v = math.nan if v is None else float(v)
        if c.max is not None and not v <= c.max:
            out.append(f"{c.metric} > {c.max:g}")
        if c.min is not None and not v >= c.min:
            out.append(f"{c.metric} < {c.min:g}")
    return ", ".join(out)


def better_direction(exp: Experiment, metric: str) -> str:
    """Which way ``metric`` is better: the experiment's objective direction when it is an
    objective, else the metric's natural direction (:data:`codesign.model.metrics.METRICS`)."""
    from codesign.model.metrics import METRICS

    for o in exp.objectives:
        if o.metric == metric:
            return o.direction
    return METRICS[metric][1]


def _on_grid(p: ParamSpec, value: float) -> float:
    """``value`` snapped to the parameter's step grid (kills float noise such as 1.9000001)."""
    low, step = float(p.low), float(p.step)
    k = round((value - low) / step)
    digits = max(0, -math.floor(math.log10(step))) + 6 if step > 0 else 12
    return round(low + k * step, digits)


def neighbours(p: ParamSpec, value: Any, factor: float = CONTINUOUS_FACTOR) -> list[Any]:
    """The values next to ``value`` in a search-space parameter: one step down and up on a
    step grid (ints and stepped floats), x/÷ ``factor`` for continuous floats and log-scaled
    ints, every other choice for categoricals. Values outside ``[low, high]`` are dropped
    (continuous ones clamped first), so a parameter at a bound has one neighbour."""
    if p.kind == "categorical":
        return [c for c in (p.choices or ()) if c != value]
    low, high = float(p.low), float(p.high)
    v = float(value)
    if p.kind == "int" and p.log:  # at least one unit each way
        cand = [min(math.floor(v / factor), int(v) - 1), max(math.ceil(v * factor), int(v) + 1)]
    elif p.kind == "int":
        step = int(p.step or 1)
        cand = [int(v) - step, int(v) + step]
    elif p.step:
        cand = [_on_grid(p, v - float(p.step)), _on_grid(p, v + float(p.step))]
    else:
        if v == 0.0:
            cand = [low, low + (high - low) * (1 - 1 / factor)]
        else:
            cand = [min(max(v / factor, low), high), min(max(v * factor, low), high)]
    out = []
    for c in cand:
        c = int(c) if p.kind == "int" else float(c)
        if low <= c <= high and c != value and c not in out:
            out.append(c)
    return out


def _trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    t = next((t for t in trials if t.number == number), None)
    if t is None:
        raise ValueError(f"study {study.study_name!r} has no trial {number} "
                         f"(trials 0..{len(trials) - 1})")
    if t.state != TrialState.COMPLETE:
        raise ValueError(f"trial {number} of study {study.study_name!r} is {t.state.name}, "
                         "not COMPLETE: it has no design to vary")
    return t


def _rel(new: Any, old: Any) -> float:
    """(new - old) / |old|; NaN if either is not a finite number or old is 0."""
    try:
        a, b = float(new), float(old)
    except (TypeError, ValueError):
        return math.nan
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0.0:
        return math.nan
    return (a - b) / abs(b)


def evaluate_params(exp: Experiment, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics of parameter sets, by the search's own path: each set on top of the
    experiment's base design (:func:`codesign.search.space.design_from_params`), all
    evaluated in one population call of :func:`codesign.search.evaluate.evaluate_designs`, as
    :func:`run_search` does;
    each dict also gets ``constraints_ok`` (the experiment's constraints, <= 0 feasible)."""
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.space import base_design, cluster_extra, design_from_params

    base = base_design(exp)
    designs = [design_from_params(base, p) for p in params]
    metrics = evaluate_designs(designs, exp.job, cluster_extra(exp), exp.prices,
                               **traffic_kw(exp))
    for m in metrics:
        m["constraints_ok"] = all(v <= 0 for v in constraint_values(exp, m).values())
    return metrics


def sensitivity(run: StudyRun, trial_number: int, params: Sequence[str] | None = None,
                factor: float = CONTINUOUS_FACTOR) -> pd.DataFrame:
    """What-if around one design: each search parameter moved, one at a time, to its
    neighbouring values (:func:`neighbours`), and every variant re-evaluated by the model on
    the run's workload, exactly as the search evaluates a trial (:func:`evaluate_params`) --
    never interpolated from other trials. One population call: ~2 variants per parameter.

    Args:
        run: The run.
        trial_number: A COMPLETE trial of the run (its parameters are the design).
        params: Parameter names to vary (default: every searched parameter, file order).
        factor: x/÷ step of continuous parameters (> 1).

    Returns:
        One row per variant: ``param``, ``from``, ``to``, ``change`` ("down", "up" or
        "choice"); every objective metric and :data:`REPORTED_METRICS` (units of
        :data:`codesign.model.metrics.METRICS`); ``feasible`` (the model found a mapping and the
        chip can be built), ``constraints_ok`` (also within every ``[constraints]`` bound),
        ``reason`` (the model's text when not feasible), ``violated`` (the bounds missed,
        :func:`violations`); ``rel_<metric>`` = (variant - design) / |design|
        for each of those metrics (NaN where the design's value is 0 or not finite); and
        ``better_<metric>``: the same change signed so that > 0 is better and < 0 worse (the
        objective's direction, else the metric's natural one, :func:`better_direction`).
        ``attrs["directions"]`` maps each metric to "maximize" or "minimize".
        ``attrs["design"]`` holds the design's trial, params, re-evaluated metrics and
        ``matches_stored`` (the re-evaluation reproduces the trial's stored objective
        values; a warning is issued when it does not, e.g. after a model change).

    Raises:
        ValueError: unknown trial or parameter names (the message lists valid ones), a trial
            that is not COMPLETE, or ``factor <= 1``.
    """
    if not factor > 1.0:
        raise ValueError(f"`factor > 1` must hold, but got (factor={factor})")
    exp = run.experiment
    space = {p.name: p for p in exp.space.params}
    chosen = list(space) if params is None else list(params)
    unknown = [n for n in chosen if n not in space]
    if unknown:
        raise ValueError(f"not a searched parameter of study {run.name!r}: "
                         f"{', '.join(map(repr, unknown))}; valid: {', '.join(space)}")
    t = _trial(run.study, int(trial_number))
    design = dict(t.params)
    variants: list[tuple[str, Any, Any, str]] = []
    for name in chosen:
        p = space[name]
        for to in neighbours(p, design[name], factor):
            if p.kind == "categorical":
                change = "choice"
            else:
                change = "up" if to > design[name] else "down"
            variants.append((name, design[name], to, change))
    metrics = evaluate_params(exp, [design] + [{**design, n: to} for n, _, to, _ in variants])
    base, results = metrics[0], metrics[1:]
    shown = list(dict.fromkeys([m for m, _ in run.objectives] + list(REPORTED_METRICS)))
    directions = {k: better_direction(exp, k) for k in shown}
    stored = list(t.values or [])
    fresh = objective_values(exp, base)
    matches = len(stored) == len(fresh) and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) for a, b in zip(fresh, stored, strict=True))
    if not matches:
        warnings.warn(f"trial {t.number}: re-evaluating its design gives objective values "
                      f"{fresh}, the study stored {stored} (the model changed since the run?); "
                      "changes are relative to the re-evaluated design", stacklevel=2)
    rows = []
    for (name, frm, to, change), m in zip(variants, results, strict=True):
        row: dict[str, Any] = {"param": name, "from": frm, "to": to, "change": change}
        row.update({k: m[k] for k in shown})
        row.update({"feasible": bool(m["feasible"]), "constraints_ok": bool(m["constraints_ok"]),
                    "reason": m["reason"], "violated": violations(exp, m)})
        row.update({f"rel_{k}": _rel(m[k], base[k]) for k in shown})
        row.update({f"better_{k}": row[f"rel_{k}"] * (1.0 if directions[k] == "maximize"
                                                       else -1.0) for k in shown})
        rows.append(row)
    columns = (["param", "from", "to", "change", *shown, "feasible", "constraints_ok", "reason",
                "violated"] + [f"rel_{k}" for k in shown] + [f"better_{k}" for k in shown])
    out = pd.DataFrame(rows, columns=columns)
    for col in ("from", "to"):
        out[col] = out[col].astype(object)
    out.attrs["directions"] = directions
    out.attrs["design"] = {"trial": t.number, "params": design,
                           "metrics": {k: base[k] for k in [*shown, "feasible", "reason"]},
                           "matches_stored": matches}
    return out
