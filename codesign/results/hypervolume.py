"""Hypervolume of a study's feasible Pareto front as it went on (:func:`hypervolume_history`).

The exact geometry behind it: objective values as losses, non-dominated filtering, and the
hypervolume of a front below a reference point (a sweep in two and three objectives, Optuna's
WFG beyond). Presentation-free, like :mod:`codesign.results.inspect`, which re-exports the public
names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd


class TrialLog(Protocol):
    """What :func:`hypervolume_history` reads of a run (:class:`codesign.results.inspect.Run`)."""

    @property
    def trials(self) -> pd.DataFrame: ...

    @property
    def objectives(self) -> list[tuple[str, str]]: ...

HV_REFERENCE = 1.1
"""Hypervolume reference point in every normalised objective (0 = best, 1 = worst feasible);
reported hypervolumes are divided by the reference box's volume ``HV_REFERENCE ** k``."""


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
        # inside the reference box by construction; clipped so no point (a baseline, a
        # trial logged after the bounds) can ever add volume outside it
        norm = np.clip((loss - lo) / span, 0.0, HV_REFERENCE)
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
    box = HV_REFERENCE ** k  # the volume of the reference box: hypervolumes are fractions of it
    hv = 0.0
    start = 0
    rows = []
    for c in checkpoints:
        new = norm[start:c + 1][feasible[start:c + 1]]
        if len(new):
            merged = _merge_front(front, new)
            if merged is not front:
                front = merged
                hv = min(1.0, _hypervolume(front, ref) / box)
        start = c + 1
        rows.append((int(trial[c]), int(c + 1), int(n_feasible[c]), hv))
    out = pd.DataFrame(rows, columns=list(cols)).astype(cols)
    out.attrs.update({"reference": HV_REFERENCE, "bounds": bounds,
                      "objectives": list(objectives)})
    return out


def hypervolume_history(run: TrialLog, max_points: int = 200) -> pd.DataFrame:
    """Hypervolume of the feasible Pareto front as the study went on, in trial-number order.

    Each objective is normalised to [0, 1] by its range over all feasible trials of the run
    (0 = best, maximised objectives flipped; baselines included), the reference point is
    :data:`HV_REFERENCE` (1.1) in each, and the volume is reported as a fraction of the
    reference box (``1.1**k``), so it lies in [0, 1], is comparable within one run and the
    curve never falls. At most ``max_points`` checkpoints, evenly spaced over the complete
    trials (the last one always included). Exact for any number of objectives: with two or
    three (every shipped experiment) 20k trials take about a second even when the front
    holds thousands of designs; four or more use Optuna's exact WFG, which takes seconds to
    minutes on fronts of hundreds of designs (lower ``max_points`` there).

    Returns:
        Columns ``trial`` (the last trial number included), ``n_complete``, ``n_feasible``
        (counts of trials so far) and ``hypervolume`` (fraction of the reference box, 0 to
        1); ``attrs``
        hold ``bounds`` {metric: (min, max) over feasible trials, in the metric's unit},
        ``reference`` and ``objectives``.
    """
    if max_points < 1:
        raise ValueError(f"`max_points >= 1` must hold, but got (max_points={max_points})")
    return _hv_history(run.trials, run.objectives, max_points)
