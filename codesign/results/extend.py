"""Instantiate, then extend: the ladder from a reference chip to a design of a study.

A partner's chip is "first instantiated, then extended". :func:`extension_ladder` starts at
one of the experiment's baseline chips as the search projects it into its space
(:func:`codesign.search.design.project_chip`, :func:`codesign.search.space.project_params`:
the point the search enqueued as that baseline's trial) and applies the searched parameters
in which the target design differs, one per rung, greedily: at each rung the change not yet
applied that is best on the experiment's first objective comes next. Every rung is evaluated
by the search's own path (:func:`codesign.results.sensitivity.evaluate_params`), so the first
rung reproduces the baseline trial and the last the target trial. Each change is also
evaluated alone on the baseline ("one at a time"): where the two gains differ, the changes
interact. Presentation-free; ``codesign extend`` prints it.

Example:
    >>> from codesign.results.extend import extension_ladder
    >>> res = extension_ladder("runs/instantiate_extend")  # doctest: +SKIP
    >>> res.ladder[["param", "from", "to", "tokens_per_joule", "change_pct_tokens_per_joule"]]
    ... # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import ConfigError
from codesign.results.sensitivity import _rel, better_direction, evaluate_params, violations
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.design import SPACE_PARAMETERS
from codesign.search.experiment import Experiment
from codesign.search.front import front_trials
from codesign.search.references import reference_params
from codesign.search.storage.rundir import METRICS_ATTR, objective_values

HEADLINE_METRICS = ("tokens_per_joule", "cost_per_mtoken_usd")
"""Metrics every ladder shows with their change per rung, besides the objectives (tokens/J,
USD per 1e6 tokens; :data:`codesign.model.metrics.METRICS`)."""

CHIP_METRICS = ("tokens_per_s", "die_area_mm2", "n_compute_dies", "tdp_w", "chip_cost_usd")
"""Further metrics each rung reports (tokens/s of the cluster, mm^2 of one compute die, dies,
W of TDP, USD of one chip); the experiment's constraint metrics follow them."""


@dataclass(frozen=True)
class ExtendResult:
    """A ladder from a baseline chip to a design (see :func:`extension_ladder`).

    Attributes:
        study: The study name.
        trial: The target trial (its number).
        baseline: The baseline chip id (catalog).
        baseline_trial: The study's trial of that baseline, or None when it has none with the
            same parameters (the ladder then starts from the projection evaluated now).
        objectives: ``[(metric, direction), ...]`` in the study's order; the first one orders
            the ladder.
        metrics: The metric columns of :attr:`ladder`, in order.
        changed: Metrics with ``change_pct_*`` and ``alone_pct_*`` columns (objectives, then
            :data:`HEADLINE_METRICS`).
        ladder: One row per rung (see :func:`extension_ladder`).
        matches_stored: Rung 0 reproduces the baseline trial's stored objective values and the
            last rung the target trial's (relative 1e-9); False, with a warning, otherwise
            (e.g. the model changed since the run).
    """

    study: str
    trial: int
    baseline: str
    baseline_trial: int | None
    objectives: list[tuple[str, str]]
    metrics: list[str]
    changed: list[str]
    ladder: pd.DataFrame = field(repr=False)
    matches_stored: bool = True

    def rungs(self) -> list[dict[str, Any]]:
        """The ladder as a list of dicts, one per rung, keyed by the column names (rung 0's
        ``param``, ``unit``, ``from``, ``to`` and ``alone_feasible`` are None)."""
        out = []
        for r in self.ladder.to_dict(orient="records"):
            if r["rung"] == 0:
                r.update({k: None for k in ("param", "unit", "from", "to", "alone_feasible")})
            out.append(r)
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def _pct(new: Any, old: Any) -> float:
    """100 x (new - old) / |old|; NaN unless both are finite numbers and old is not 0."""
    return 100.0 * _rel(new, old)


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (``"none"`` when empty)."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and n == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out) or "none"


def _feasible_trial(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in (t.constraints or {}).values())


def target_trial(study: Any, exp: Experiment, trial: int | None) -> FrozenTrial:
    """Trial ``trial`` of ``study`` (it must be COMPLETE), or by default the feasible front
    design best on the experiment's first objective (ties: the lowest trial number).

    Raises:
        ConfigError: no such trial, one that is not COMPLETE (both name the valid numbers),
            or no feasible front design yet.
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    numbers = _ranges([t.number for t in complete])
    valid = f"a COMPLETE trial of study {study.study_name!r} ({numbers})"
    if trial is None:
        front = [t for t in front_trials(study, complete)
                 if _feasible_trial(t) and METRICS_ATTR in t.user_attrs]
        if not front:
            raise ConfigError(None, "--trial", "a study with a feasible design on its front",
                              f"none among {len(complete)} complete trials")
        sign = 1.0 if exp.objectives[0].direction == "maximize" else -1.0
        return max(sorted(front, key=lambda t: t.number), key=lambda t: sign * t.values[0])
    t = next((t for t in trials if t.number == trial), None)
    if t is None:
        raise ConfigError(None, "--trial", valid, trial)
    if t.state != TrialState.COMPLETE or METRICS_ATTR not in t.user_attrs:
        raise ConfigError(None, "--trial", valid, f"{trial} ({t.state.name})")
    return t


def baseline_params(exp: Experiment, chip_id: str | None) -> tuple[str, dict[str, Any]]:
    """``(chip id, searched parameters)`` of a baseline chip of the experiment as the search
    projects it (``chip_id`` None: the experiment's first baseline).

    Raises:
        ConfigError: the experiment lists no baselines, ``chip_id`` is not one of them, or
            the chip cannot be projected (no compute units or bf16 peak).
    """

    if not exp.baselines:
        raise ConfigError(exp.path, "experiment.baselines",
                          "a run whose experiment lists baseline chips (the ladder starts at "
                          "one)", [])
    chip_id = exp.baselines[0] if chip_id is None else chip_id
    if chip_id not in exp.baselines:
        raise ConfigError(None, "--baseline",
                          f"one of the experiment's baselines: {', '.join(exp.baselines)}",
                          chip_id)
    try:
        return chip_id, reference_params(exp.space, exp.chip_ref(chip_id))
    except ValueError as exc:
        raise ConfigError(None, "--baseline", "a chip that projects into the search space",
                          str(exc)) from None


def _baseline_trial(study: Any, chip_id: str, params: dict[str, Any]) -> FrozenTrial | None:
    """The study's COMPLETE trial of baseline ``chip_id`` with exactly ``params``, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (t.user_attrs.get(BASELINE_ATTR) == chip_id and METRICS_ATTR in t.user_attrs
                and set(t.params) == set(params)
                and all(_same(t.params[k], v) for k, v in params.items())):
            return t
    return None


def _tier(m: dict[str, Any]) -> int:
    """0: within every constraint; 1: the model maps it but a ``[constraints]`` bound is
    missed; 2: the model finds no mapping or the chip cannot be built (its objective values
    are placeholders)."""
    return 0 if m["constraints_ok"] else 1 if m["feasible"] else 2


def _why(exp: Experiment, m: dict[str, Any]) -> str:
    if not m["feasible"]:
        return str(m.get("reason") or "infeasible (no reason given)")
    missed = violations(exp, m)
    return f"misses {missed}" if missed else ""


def _greedy(exp: Experiment, start: dict[str, Any], target: dict[str, Any],
            todo: list[str]) -> tuple[list[tuple[str | None, dict[str, Any]]],
                                      dict[str, dict[str, Any]]]:
    """The rungs ``[(param applied or None, metrics), ...]`` and the metrics of each change
    alone on ``start``. At each rung, candidates within every constraint come first, then
    those that only miss a ``[constraints]`` bound, then the infeasible; within each, the
    best on the first objective; ties by name. One population call per rung."""
    first = exp.objectives[0]
    sign = 1.0 if first.direction == "maximize" else -1.0
    current, left = dict(start), sorted(todo)
    metrics = evaluate_params(exp, [current] + [{**current, n: target[n]} for n in left])
    rungs: list[tuple[str | None, dict[str, Any]]] = [(None, metrics[0])]
    candidates = metrics[1:]
    alone = dict(zip(left, candidates, strict=True))

    def key(m: dict[str, Any], name: str) -> tuple[int, float, str]:
        v = float(m[first.metric])
        return (_tier(m), -sign * v if math.isfinite(v) else math.inf, name)

    while left:
        i = min(range(len(left)), key=lambda j: key(candidates[j], left[j]))
        name = left.pop(i)
        current[name] = target[name]
        rungs.append((name, candidates[i]))
        if left:
            candidates = evaluate_params(exp, [{**current, n: target[n]} for n in left])
    return rungs, alone


def extension_ladder(run_dir: str | os.PathLike[str], trial: int | None = None,
                     baseline: str | None = None) -> ExtendResult:
    """From a baseline chip to a design of a study, one searched parameter per rung.

    Args:
        run_dir: A run directory (``codesign search`` wrote it).
        trial: The target: a COMPLETE trial of the run (default: the feasible front design
            best on the experiment's first objective; ties to the lowest trial number).
        baseline: One of the experiment's ``baselines`` (default: the first), as the search
            projects it into its space.

    Returns:
        An :class:`ExtendResult` whose ``ladder`` has one row per rung: rung 0 is the
        baseline (``param`` None), rung k applies the k-th change, chosen among those left
        as the best on the first objective, changes that keep the design within every
        constraint before those that do not (:func:`_greedy`). Columns: ``rung``,
        ``param``, ``unit`` (of :data:`codesign.search.design.SPACE_PARAMETERS`), ``from``,
        ``to``; every metric of ``metrics`` (the objectives, :data:`HEADLINE_METRICS`,
        :data:`CHIP_METRICS`, the constraint metrics; units of
        :data:`codesign.model.metrics.METRICS`); for each metric of ``changed``:
        ``change_pct_<m>`` (vs the previous rung, percent), ``total_pct_<m>`` (vs the
        baseline) and ``alone_pct_<m>`` (this change alone on the baseline); ``gain_pct`` and
        ``alone_gain_pct``: the first objective's change signed so that > 0 is better, in
        the ladder and alone; ``feasible`` (the model maps it and the chip can be built),
        ``constraints_ok`` (also within every ``[constraints]`` bound) and ``why`` (the
        model's reason, or the bounds missed; "" when feasible). A change against or from an
        infeasible rung has NaN percentages (an infeasible design's values are placeholders).
        ``attrs["directions"]`` maps each metric to "maximize" or "minimize".

    Raises:
        ConfigError: not a run directory, an unknown or not COMPLETE trial, a run without
            baselines or an unknown baseline id (each message names the value and the valid
            ones).
    """
    from codesign.results.inspect import load_run

    run = load_run(run_dir)
    exp, study = run.experiment, run.study
    chip_id, start = baseline_params(exp, baseline)
    target_t = target_trial(study, exp, trial)
    base_t = _baseline_trial(study, chip_id, start)
    target = dict(target_t.params)
    todo = [p.name for p in exp.space.params if not _same(start[p.name], target[p.name])]
    rungs, alone = _greedy(exp, start, target, todo)

    objectives = [(o.metric, o.direction) for o in exp.objectives]
    changed = list(dict.fromkeys([m for m, _ in objectives] + list(HEADLINE_METRICS)))
    shown = list(dict.fromkeys(changed + list(CHIP_METRICS)
                               + [c.metric for c in exp.constraints]))
    first, sign = objectives[0][0], (1.0 if objectives[0][1] == "maximize" else -1.0)
    base_m = rungs[0][1]
    rows, prev = [], base_m
    for k, (name, m) in enumerate(rungs):
        one = alone.get(name) if name else None
        row: dict[str, Any] = {
            "rung": k, "param": name,
            "unit": SPACE_PARAMETERS[name].unit if name else None,
            "from": start[name] if name else None, "to": target[name] if name else None}
        row.update({c: m[c] for c in shown})
        ok = m["feasible"] and prev["feasible"] and k > 0
        for c in changed:
            row[f"change_pct_{c}"] = _pct(m[c], prev[c]) if ok else math.nan
            row[f"total_pct_{c}"] = (_pct(m[c], base_m[c]) if m["feasible"] and
                                     base_m["feasible"] and k > 0 else math.nan)
            row[f"alone_pct_{c}"] = (_pct(one[c], base_m[c]) if one is not None and
                                     one["feasible"] and base_m["feasible"] else math.nan)
        row["gain_pct"] = sign * row[f"change_pct_{first}"]
        row["alone_gain_pct"] = sign * row[f"alone_pct_{first}"]
        row.update({"feasible": bool(m["feasible"]), "constraints_ok": bool(m["constraints_ok"]),
                    "why": _why(exp, m)})
        if one is not None:
            row["alone_feasible"] = bool(one["constraints_ok"])
            row["alone_why"] = _why(exp, one)
        else:
            row["alone_feasible"], row["alone_why"] = None, ""
        rows.append(row)
        prev = m
    columns = (["rung", "param", "unit", "from", "to", *shown]
               + [f"{p}_pct_{c}" for p in ("change", "total", "alone") for c in changed]
               + ["gain_pct", "alone_gain_pct", "feasible", "constraints_ok", "why",
                  "alone_feasible", "alone_why"])
    ladder = pd.DataFrame(rows, columns=columns)
    for col in ("param", "unit", "from", "to", "alone_feasible"):
        ladder[col] = ladder[col].astype(object)
    ladder.attrs["directions"] = {c: better_direction(exp, c) for c in shown}

    matches = all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
        for t, m in ((base_t, rungs[0][1]), (target_t, rungs[-1][1])) if t is not None
        for a, b in zip(objective_values(exp, m), t.values or [], strict=True))
    if not matches:
        warnings.warn(f"study {run.name!r}: re-evaluating the ladder's ends does not reproduce "
                      "the stored objective values of the baseline or target trial (the model "
                      "changed since the run?); the ladder shows the values evaluated now",
                      stacklevel=2)
    return ExtendResult(study=run.name, trial=target_t.number, baseline=chip_id,
                        baseline_trial=None if base_t is None else base_t.number,
                        objectives=objectives, metrics=shown, changed=changed, ladder=ladder,
                        matches_stored=matches)
