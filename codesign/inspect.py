"""Look at a finished (or running) study: trials, fronts, hypervolume, what-if sensitivity.

Presentation-free: everything is a plain :class:`pandas.DataFrame` (or a row of one), in the
units of :data:`codesign.metrics.METRICS`; :mod:`codesign.report` draws on top of it.

Example:
    >>> import codesign
    >>> from codesign.inspect import hypervolume_history, sensitivity
    >>> run = codesign.load_run("runs/quickstart")  # doctest: +SKIP
    >>> best = run.best("tokens_per_joule")  # doctest: +SKIP
    >>> best[["trial", "value_tokens_per_joule", "param_sram_mb"]]  # doctest: +SKIP
    >>> hypervolume_history(run)["hypervolume"].is_monotonic_increasing  # doctest: +SKIP
    True
    >>> what_if = sensitivity(run, int(best["trial"]))  # doctest: +SKIP
    >>> what_if[["param", "from", "to", "rel_tokens_per_joule"]]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from codesign import doctor, parquet_log
from codesign import study as _study
from codesign.config import Experiment, ParamSpec
from codesign.errors import ConfigError

__all__ = [
    "CONTINUOUS_FACTOR",
    "HV_REFERENCE",
    "REPORTED_METRICS",
    "Run",
    "evaluate_params",
    "hypervolume_history",
    "infeasible_reasons",
    "load_run",
    "neighbours",
    "read_trials",
    "sensitivity",
    "violations",
]

REPORTED_METRICS = ("tokens_per_joule", "die_area_mm2", "silicon_mm2", "tdp_w", "chip_power_w")
"""Metrics :func:`sensitivity` reports for every variant besides the objectives (tokens/J,
mm^2 of one compute die, mm^2 of all compute dies, W of TDP, W drawn by one chip at work)."""

HV_REFERENCE = 1.1
"""Hypervolume reference point in every normalised objective (0 = best, 1 = worst feasible)."""

CONTINUOUS_FACTOR = 1.25
"""A continuous (or log-int) parameter is varied by x/÷ this factor in :func:`sensitivity`."""


# --------------------------------------------------------------------------- the Run object


class Run:
    """One run directory, opened for reading (see DESIGN.md, "Run directory").

    Properties are read lazily and cached; :meth:`refresh` drops the cache so a run still
    being written can be looked at again.

    Attributes:
        path: The run directory.
        experiment: The experiment as run (``RUN_DIR/experiment.toml``).
        spec: Study name, storage URL, sampler and seed (:class:`codesign.study.RunSpec`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.experiment: Experiment
        self.spec: _study.RunSpec
        self.experiment, self.spec = _study.load_run(self.path)

    # ---------------------------------------------------------------- what the study is

    @property
    def name(self) -> str:
        """The study name."""
        return self.spec.study_name

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """``[(metric, "maximize" | "minimize"), ...]`` in the study's order."""
        return [(o.metric, o.direction) for o in self.experiment.objectives]

    @cached_property
    def storage(self) -> BaseStorage:
        """The run's Optuna storage (the truth; the Parquet log is derived from it).

        A damaged journal (torn or glued line) is a ConfigError naming ``codesign doctor``."""
        jpath = _study.journal_file(self.spec)
        if jpath is not None:
            if not jpath.is_file():
                raise ConfigError(jpath, "<journal>", "the run's Optuna journal", "no such file")
            health = doctor.check_journal(jpath, run_dir=self.path)
            if health.damaged:
                raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
        return _study.open_storage(self.spec)

    @cached_property
    def study(self) -> optuna.Study:
        """The live :class:`optuna.Study` (read it; searching goes through ``codesign``)."""
        return optuna.load_study(study_name=self.spec.study_name, storage=self.storage)

    # ---------------------------------------------------------------- tables

    @cached_property
    def trials(self) -> pd.DataFrame:
        """Every finished (COMPLETE) trial from the Parquet log ``RUN_DIR/trials/``, one row per
        trial number, sorted by it. Columns: ``trial``, ``is_baseline``, ``baseline``,
        ``feasible`` (the model found a mapping), ``constraints_ok`` (feasible and within every
        ``[constraints]`` bound), ``reason``, ``param_<name>``, ``value_<objective>``, every
        metric of :data:`codesign.metrics.METRICS` and the chosen mapping ``map_*``."""
        return read_trials(self.path, self.experiment)

    @cached_property
    def pareto(self) -> pd.DataFrame:
        """The current constraint-aware Pareto front (the rows of ``codesign pareto``:
        :func:`codesign.study.pareto_rows`), by trial number, with the columns of
        :attr:`trials` plus ``<objective>_vs_<baseline>`` improvement factors."""
        rows = _study.pareto_rows(self.experiment, self.study)
        names = parquet_log.schema(self.experiment).names
        if not rows:
            return _empty_trials(self.experiment)
        df = pd.DataFrame(rows)
        extra = [c for c in df.columns if c not in names and not c.startswith("_")]
        return df[[c for c in names if c in df.columns] + extra].reset_index(drop=True)

    @property
    def baselines(self) -> pd.DataFrame:
        """The reference-chip warm-start trials (``is_baseline``), with the chip id in
        ``baseline``; empty if the experiment lists no ``baselines``."""
        df = self.trials
        return df[df["is_baseline"].fillna(False).astype(bool)].reset_index(drop=True)

    @property
    def feasible(self) -> pd.DataFrame:
        """The trials that meet every constraint (``constraints_ok``)."""
        df = self.trials
        return df[df["constraints_ok"].astype(bool)].reset_index(drop=True)

    def best(self, objective: str) -> pd.Series:
        """The best feasible trial (``constraints_ok``) for one objective, in its direction;
        ties go to the lowest trial number.

        Raises:
            ValueError: ``objective`` is not one of the study's objectives (the message lists
                them), or no trial is feasible yet.
        """
        directions = dict(self.objectives)
        if objective not in directions:
            raise ValueError(f"{objective!r} is not an objective of study {self.name!r}; "
                             f"valid objectives: {', '.join(directions)}")
        ok = self.feasible
        if ok.empty:
            raise ValueError(f"study {self.name!r} has no feasible trial yet "
                             f"({len(self.trials)} complete)")
        col = ok[f"value_{objective}"]
        pick = col.idxmax() if directions[objective] == "maximize" else col.idxmin()
        return ok.loc[pick]

    def refresh(self) -> Run:
        """Forget cached trials, front and study, so the next access reads them again."""
        for key in ("trials", "pareto", "study", "storage"):
            self.__dict__.pop(key, None)
        return self

    def __repr__(self) -> str:
        objectives = ", ".join(f"{d} {m}" for m, d in self.objectives)
        try:
            df = self.trials
            counts = (f"{len(df)} complete trials "
                      f"({int(df['constraints_ok'].astype(bool).sum())} feasible)")
        except Exception as exc:  # a repr never raises
            counts = f"trials unreadable: {exc}"
        front = f", pareto {len(self.__dict__['pareto'])}" if "pareto" in self.__dict__ else ""
        return (f"<codesign.Run {self.name!r} at {str(self.path)!r}: {counts}{front}; "
                f"objectives: {objectives}>")


def load_run(path: str | os.PathLike[str]) -> Run:
    """Open a run directory for reading (notebooks, reports). ConfigError if ``path`` is not
    a run directory.

    Example:
        >>> import codesign
        >>> run = codesign.load_run("runs/quickstart")  # doctest: +SKIP
        >>> run.pareto[["trial", "value_tokens_per_joule"]]  # doctest: +SKIP
    """
    return Run(path)


def _empty_trials(exp: Experiment) -> pd.DataFrame:
    return parquet_log.schema(exp).empty_table().to_pandas()


def read_trials(run_dir: str | os.PathLike[str], exp: Experiment) -> pd.DataFrame:
    """The Parquet trial log of a run as a DataFrame: one row per trial number (the last
    written wins if a crash logged one twice), sorted by trial number. Files are read under
    the experiment's current schema: a column added since older files were written (a new
    metric) is null in their rows."""
    import pyarrow.dataset as pads

    folder = Path(run_dir) / "trials"
    files = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not files:
        return _empty_trials(exp)
    df = pads.dataset([str(f) for f in files], format="parquet",
                      schema=parquet_log.schema(exp)).to_table().to_pandas()
    df = df.drop_duplicates("trial", keep="last").sort_values("trial", kind="stable")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- hypervolume


def _loss_matrix(df: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> np.ndarray:
    """Objective values as losses (maximised ones negated), one row per trial."""
    cols = [df[f"value_{m}"].to_numpy(dtype=float) * (-1.0 if d == "maximize" else 1.0)
            for m, d in objectives]
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def _dominated_by(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each row of ``points``: is some row of ``others`` <= it everywhere (losses)?
    A row equal to one of ``others`` counts as dominated (a duplicate adds nothing)."""
    out = np.zeros(len(points), bool)
    if len(points) == 0 or len(others) == 0:
        return out
    chunk = max(1, 2_000_000 // (len(others) * points.shape[1]))  # bound the temporary
    for s in range(0, len(points), chunk):
        block = points[s:s + chunk]
        out[s:s + chunk] = np.all(others[None, :, :] <= block[:, None, :], axis=2).any(axis=1)
    return out


def _nondominated(points: np.ndarray) -> np.ndarray:
    """The rows of ``points`` (losses) that no other row dominates, duplicates dropped:
    sorted lexicographically, a row can only be dominated by an earlier one."""
    pts = np.unique(points, axis=0)  # unique and lexsorted
    keep = np.zeros(len(pts), bool)
    front = np.zeros((0, pts.shape[1]))
    for s in range(0, len(pts), 256):  # blockwise: compare with the front kept so far
        block = pts[s:s + 256]
        ok = ~_dominated_by(block, front)
        for i in np.flatnonzero(ok):  # within the block, earlier rows only
            if i and np.all(block[:i][ok[:i]] <= block[i], axis=1).any():
                ok[i] = False
        keep[s:s + 256] = ok
        front = pts[:s + len(block)][keep[:s + len(block)]]
    return front


def _merge_front(front: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The non-dominated set of ``front`` (already non-dominated) and the ``new`` rows."""
    cand = _nondominated(new)
    cand = cand[~_dominated_by(cand, front)]
    if len(cand) == 0:
        return front
    return np.vstack([front[~_dominated_by(front, cand)], cand])


def _hypervolume(front: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of a non-dominated set of losses below ``ref``."""
    if len(front) == 0:
        return 0.0
    if front.shape[1] == 1:
        return float(ref[0] - front[:, 0].min())
    if front.shape[1] == 2:  # exact sweep: sort by the first loss, the second then falls
        f = front[np.argsort(front[:, 0])]
        upper = np.concatenate([[ref[1]], f[:-1, 1]])
        return float(np.sum((ref[0] - f[:, 0]) * (upper - f[:, 1])))
    if front.shape[1] == 3:
        return _hypervolume_3d(front, ref)
    from optuna._hypervolume import compute_hypervolume  # exact WFG (Optuna >= 3.x)

    return float(compute_hypervolume(front, ref, assume_pareto=True))


def _hypervolume_3d(front: np.ndarray, ref: np.ndarray) -> float:
    """Exact 3-D hypervolume by a sweep along the third loss: the area dominated in the first
    two grows as points are added (a staircase kept sorted), times each slab's thickness.
    O(n log n) comparisons (plus list moves in C); Optuna's 3-D routine is O(n^2) memory."""
    import bisect

    order = np.lexsort((front[:, 1], front[:, 0], front[:, 2]))
    pts = front[order].tolist()
    rx, ry, rz = (float(r) for r in ref)
    xs: list[float] = []  # staircase: x ascending, y descending
    ys: list[float] = []
    area = 0.0
    volume = 0.0
    for i, (x, y, z) in enumerate(pts):
        pos = bisect.bisect_left(xs, x)
        prev_y = ys[pos - 1] if pos else ry
        if prev_y > y and not (pos < len(xs) and xs[pos] == x and ys[pos] <= y):
            end = pos
            while end < len(xs) and ys[end] >= y:  # the steps (x, y) covers
                end += 1
            x_end = xs[end] if end < len(xs) else rx
            old = 0.0
            left, height = x, prev_y
            for j in range(pos, end):
                old += (xs[j] - left) * (ry - height)
                left, height = xs[j], ys[j]
            old += (x_end - left) * (ry - height)
            area += (x_end - x) * (ry - y) - old
            xs[pos:end] = [x]
            ys[pos:end] = [y]
        z_next = pts[i + 1][2] if i + 1 < len(pts) else rz
        volume += area * (z_next - z)
    return volume


def _hv_history(df: pd.DataFrame, objectives: Sequence[tuple[str, str]],
                max_points: int) -> pd.DataFrame:
    """:func:`hypervolume_history` on a trial table (``trial``, ``constraints_ok``,
    ``value_<metric>`` columns, sorted by trial)."""
    cols = {"trial": "int64", "n_complete": "int64", "n_feasible": "int64",
            "hypervolume": "float64"}
    k = len(objectives)
    if len(df) == 0 or k == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})
    loss = _loss_matrix(df, objectives)
    feasible = df["constraints_ok"].to_numpy(dtype=bool) & np.all(np.isfinite(loss), axis=1)
    ref = np.full(k, HV_REFERENCE)
    bounds: dict[str, tuple[float, float]] = {}
    if feasible.any():
        lo = loss[feasible].min(axis=0)
        hi = loss[feasible].max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        norm = (loss - lo) / span
        for (m, d), a, b in zip(objectives, lo, hi, strict=True):
            bounds[m] = (-b, -a) if d == "maximize" else (a, b)
    else:
        norm = np.zeros_like(loss)
    n = len(df)
    if n <= max_points:
        checkpoints = np.arange(n)
    else:
        checkpoints = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    trial = df["trial"].to_numpy()
    n_feasible = np.cumsum(feasible)
    front = np.zeros((0, k))
    hv = 0.0
    start = 0
    rows = []
    for c in checkpoints:
        new = norm[start:c + 1][feasible[start:c + 1]]
        if len(new):
            merged = _merge_front(front, new)
            if merged is not front:
                front = merged
                hv = _hypervolume(front, ref)
        start = c + 1
        rows.append((int(trial[c]), int(c + 1), int(n_feasible[c]), hv))
    out = pd.DataFrame(rows, columns=list(cols)).astype(cols)
    out.attrs.update({"reference": HV_REFERENCE, "bounds": bounds,
                      "objectives": list(objectives)})
    return out


def hypervolume_history(run: Run, max_points: int = 200) -> pd.DataFrame:
    """Hypervolume of the feasible Pareto front as the study went on, in trial-number order.

    Each objective is normalised to [0, 1] by its range over all feasible trials of the run
    (0 = best, maximised objectives flipped), the reference point is
    :data:`HV_REFERENCE` (1.1) in each, so the values are comparable within one run and the
    curve never falls. At most ``max_points`` checkpoints, evenly spaced over the complete
    trials (the last one always included). Exact for any number of objectives: with two or
    three (every shipped experiment) 20k trials take about a second even when the front
    holds thousands of designs; four or more use Optuna's exact WFG, which takes seconds to
    minutes on fronts of hundreds of designs (lower ``max_points`` there).

    Returns:
        Columns ``trial`` (the last trial number included), ``n_complete``, ``n_feasible``
        (counts of trials so far) and ``hypervolume`` (dimensionless, 0 to 1.1^k); ``attrs``
        hold ``bounds`` {metric: (min, max) over feasible trials, in the metric's unit},
        ``reference`` and ``objectives``.
    """
    if max_points < 1:
        raise ValueError(f"`max_points >= 1` must hold, but got (max_points={max_points})")
    return _hv_history(run.trials, run.objectives, max_points)


# --------------------------------------------------------------------------- infeasibility

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


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


def infeasible_reasons(run: Run, by: str = "reason") -> pd.DataFrame:
    """Why trials are infeasible, most frequent first.

    A trial the model rejects (no mapping fits, the chip cannot be built) counts under the
    model's reason text, as given (``kind`` = ``"model"``); a trial the model accepts but a
    ``[constraints]`` bound rejects counts under the bounds it misses, e.g.
    ``"tdp_w > 1200"`` (``kind`` = ``"constraint"``). Each trial counts once.

    Args:
        run: The run.
        by: ``"reason"`` (exact text) or ``"category"`` (numbers in the text replaced by
            ``#``, so "7 > 6" and "8 > 4" stacks fall together).

    Returns:
        Columns ``reason``, ``category``, ``kind``, ``count`` (trials) and ``share`` (of the
        infeasible trials); with ``by="category"``, ``reason`` is one example text.
    """
    if by not in ("reason", "category"):
        raise ValueError(f"`by` must be 'reason' or 'category', but got (by={by!r})")
    df = run.trials
    bad = df[~df["constraints_ok"].astype(bool)]
    cols = ["reason", "category", "kind", "count", "share"]
    if bad.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "count" else
                                          "float64" if c == "share" else object)
                             for c in cols})
    model = ~bad["feasible"].astype(bool)
    reasons = [
        (str(r) or "(no reason given)") if m
        else violations(run.experiment, row) or "constraint violated"
        for m, r, (_, row) in zip(model, bad["reason"].fillna(""), bad.iterrows(), strict=True)
    ]
    table = pd.DataFrame({
        "reason": reasons,
        "category": [_NUMBER.sub("#", r) for r in reasons],
        "kind": np.where(model, "model", "constraint"),
    })
    other = "category" if by == "reason" else "reason"  # one example of the other column
    counts = (table.groupby([by, "kind"], sort=False)
              .agg(**{other: (other, "first"), "count": ("kind", "size")})
              .reset_index())
    counts["share"] = counts["count"] / len(bad)
    counts = counts.sort_values(["count", "reason"], ascending=[False, True], kind="stable")
    return counts[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- sensitivity


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
    experiment's base design (:func:`codesign.space.design_from_params`), all evaluated in
    one population call of :func:`codesign.perf.evaluate_designs`, as :func:`run_search` does;
    each dict also gets ``constraints_ok`` (the experiment's constraints, <= 0 feasible)."""
    from codesign.perf import evaluate_designs
    from codesign.space import base_design, cluster_extra, design_from_params

    base = base_design(exp)
    designs = [design_from_params(base, p) for p in params]
    metrics = evaluate_designs(designs, exp.job, cluster_extra(exp), exp.prices)
    for m in metrics:
        m["constraints_ok"] = all(v <= 0 for v in _study.constraint_values(exp, m).values())
    return metrics


def sensitivity(run: Run, trial_number: int, params: Sequence[str] | None = None,
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
        :data:`codesign.metrics.METRICS`); ``feasible`` (the model found a mapping and the
        chip can be built), ``constraints_ok`` (also within every ``[constraints]`` bound),
        ``reason`` (the model's text when not feasible), ``violated`` (the bounds missed,
        :func:`violations`); and ``rel_<metric>`` = (variant - design) / |design|
        for each of those metrics (NaN where the design's value is 0 or not finite).
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
    stored = list(t.values or [])
    fresh = _study.objective_values(exp, base)
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
        rows.append(row)
    columns = (["param", "from", "to", "change", *shown, "feasible", "constraints_ok", "reason",
                "violated"] + [f"rel_{k}" for k in shown])
    out = pd.DataFrame(rows, columns=columns)
    for col in ("from", "to"):
        out[col] = out[col].astype(object)
    out.attrs["design"] = {"trial": t.number, "params": design,
                           "metrics": {k: base[k] for k in [*shown, "feasible", "reason"]},
                           "matches_stored": matches}
    return out
