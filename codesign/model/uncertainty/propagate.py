"""One design through the paired draws: its chip array scaled per draw, its best mapping
evaluated again in the compiled kernels (:mod:`codesign.model.kernels.draws`), every metric of
every draw; P10/P50/P90 bands and paired win probabilities.

The mapping is the one the point evaluation chose, held fixed across draws (a draw that would
favour another mapping could only do better: the bands of throughput are conservative by at
most that). In a draw the chip runs as a shipping chip does (clock lowered under its TDP,
never infeasible for power): the TDP is a rating, not a law of the draw.

Example:
    >>> from codesign.model.catalog import get_chip, get_model
    >>> from codesign.model.specs import ClusterSpec, TrainJob
    >>> job = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)
    >>> d = design_draws(get_chip("h100-sxm"), ClusterSpec(n_chips=64), job, make_draws(64))
    >>> b = bands(d)["tokens_per_s"]
    >>> b[0] < b[1] < b[2]
    True
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from codesign.model import perf, tech
from codesign.model.chip.cost import cost_breakdown_usd
from codesign.model.kernels import layout as L
from codesign.model.kernels.draws import INFER, TRAIN, run_draws
from codesign.model.pack import infer_result_from_arrays, result_from_arrays
from codesign.model.specs import ChipSpec, ClusterSpec, InferJob, Mapping, TrainJob
from codesign.model.uncertainty.sources import (
    ASSUMED_COLUMNS,
    ASSUMED_RANGE,
    KERNEL_TIME_COLUMN,
    POWER_COLUMNS,
    SOURCES,
    SPEED_COLUMNS,
    Draws,
    ErrorModel,
    fit_errors,
    log_uniform,
    make_draws,
)

PERCENTILES = (10.0, 50.0, 90.0)
"""The band: P10, P50, P90."""

_ERRORS: ErrorModel | None = None


def default_errors() -> ErrorModel:
    """The error model of the packaged residuals (read once)."""
    global _ERRORS
    if _ERRORS is None:
        _ERRORS = fit_errors()
    return _ERRORS


def factor_columns(draws: Draws, errors: ErrorModel, key: str, assumed: tuple[str, ...] = ()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns int64[k], factors float64[n, k], speed factor float64[n]) of one design's
    chip array: the speed and power error (shared part x the design's own part, ``key``),
    the constants of :data:`SOURCES` with chip columns, and ``assumed`` catalog values."""
    own = draws.design_normals(key)
    speed = np.exp(errors.speed_between * draws.z_speed + errors.speed_within * own[:, 0])
    power = np.exp(errors.power_between * draws.z_power + errors.power_within * own[:, 1])
    by_col: dict[int, np.ndarray] = {}

    def scale(col: int, f: np.ndarray) -> None:
        by_col[col] = by_col.get(col, np.ones(draws.n)) * f

    for c in SPEED_COLUMNS:
        scale(c, speed)
    scale(KERNEL_TIME_COLUMN, 1.0 / speed)
    for c in POWER_COLUMNS:
        scale(c, power)
    for j, s in enumerate(SOURCES):
        for c in s.columns:
            scale(c, log_uniform(draws.u[:, j], s.lo, s.hi))
    for name in assumed:
        if name in ASSUMED_COLUMNS:
            scale(ASSUMED_COLUMNS[name], log_uniform(draws.u[:, -1], *ASSUMED_RANGE))
    cols = np.array(sorted(by_col), np.int64)
    return cols, np.ascontiguousarray(np.stack([by_col[c] for c in cols], axis=1)), speed


def price_factors(chip: ChipSpec, draws: Draws) -> np.ndarray:
    """Per draw, a designed chip's price over its nominal price (its manufacturing cost parts
    scaled by the cost constants of :data:`SOURCES`); ones for a catalog chip (its price is
    published) or a chip whose parts are unknown."""
    ones = np.ones(draws.n)
    if chip.id or None in (chip.process_nm, chip.die_area_mm2, chip.hbm_gen, chip.hbm_gb,
                           chip.hbm_stacks) or chip.hbm_gen not in tech.HBM:
        return ones
    try:
        parts = cost_breakdown_usd(chip.process_nm, chip.die_area_mm2, chip.hbm_gen,
                                   chip.hbm_gb, chip.hbm_stacks, n_dies=chip.n_compute_dies or 1)
    except (KeyError, ValueError):
        return ones
    total = sum(parts.values())
    if not total > 0:
        return ones
    scaled = np.zeros(draws.n)
    for part, usd in parts.items():
        f = ones
        for j, s in enumerate(SOURCES):
            if s.cost_part == part:
                f = f * log_uniform(draws.u[:, j], s.lo, s.hi)
        scaled += usd * f
    return scaled / total


def design_draws(chip: ChipSpec, cluster: ClusterSpec, job: TrainJob | InferJob,
                 draws: Draws, *, mapping: Mapping | None = None,
                 errors: ErrorModel | None = None, prices: tech.Prices = tech.PRICES,
                 scaleout_gbps: float | None = None, key: str | None = None,
                 assumed: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every numeric metric of :func:`codesign.model.perf.result_metrics` in each draw
    (arrays [n], NaN where a draw is infeasible), plus ``feasible`` (0/1).

    ``mapping``: the mapping to hold (default: the best one of a point evaluation; infeasible
    at the point: every draw infeasible). ``key`` names the design for its own part of the
    model error (default: the chip's name or id and the chip count); ``assumed``: chip fields
    of a catalog chip that were assumed (:data:`ASSUMED_COLUMNS`)."""
    errors = errors or default_errors()
    if mapping is None:
        point = perf.evaluate(chip, cluster, job, scaleout_gbps=scaleout_gbps)
        if not point.feasible:
            return {"feasible": np.zeros(draws.n)}
        mapping = point.mapping
    p = perf.packed(chip, cluster, job, mapping, scaleout_gbps)
    chip_arr = p.arrays[0].copy()
    chip_arr[L.C_THROTTLES] = 1.0
    cols, factors, speed = factor_columns(draws, errors, key or f"{chip.id or chip.name}"
                                   f"@{cluster.n_chips}", assumed)
    train = isinstance(job, TrainJob)
    unpack = result_from_arrays if train else infer_result_from_arrays
    outs = np.zeros((draws.n, L.OUT_LEN if train else L.IOUT_LEN))
    status = np.zeros(draws.n, np.int64)
    run_draws(TRAIN if train else INFER, chip_arr, cols, factors, *p.arrays[1:], outs, status)
    mp = p.arrays[4].copy()
    counts = np.zeros(L.N_STATUS, np.int64)
    counts[L.S_OK] = 1
    price = price_factors(p.chip, draws)
    rows: list[dict[str, Any]] = []
    for d in range(draws.n):
        res = perf.replicated(unpack(int(status[d]), mp, outs[d], counts, p.cluster.n_chips),
                              p.cluster.n_chips, p.replicas, p.whole.n_chips)
        c = p.chip if price[d] == 1.0 or p.chip.price_usd is None else replace(
            p.chip, price_usd=p.chip.price_usd * price[d])
        rows.append(perf.result_metrics(c, p.whole, res, job, prices, scaleout_gbps))
    out: dict[str, np.ndarray] = {"feasible": np.array([float(r["feasible"]) for r in rows])}
    for name, value in rows[0].items():
        if isinstance(value, bool) or not isinstance(value, int | float) or name == "feasible":
            continue
        arr = np.array([math.nan if r[name] is None else float(r[name]) for r in rows])
        arr[out["feasible"] == 0] = math.nan
        out[name] = arr
    if "mfu" in out:  # the kernels' MFU is a share of the drawn peak, not of the true one
        out["mfu"] = out["mfu"] * speed
    return out


def percentiles(values: np.ndarray, pcts: tuple[float, ...] = PERCENTILES
                ) -> tuple[float, ...]:
    """The ``pcts`` percentiles of the finite ``values`` (NaN each where none is finite)."""
    a = values[np.isfinite(values)]
    if not a.size:
        return (math.nan,) * len(pcts)
    return tuple(float(x) for x in np.percentile(a, pcts))


def bands(metric_draws: dict[str, np.ndarray]) -> dict[str, tuple[float, ...]]:
    """(P10, P50, P90) of every metric over its feasible draws (NaN where none)."""
    return {name: percentiles(arr) for name, arr in metric_draws.items()
            if name != "feasible"}


def win_probability(a: np.ndarray, b: np.ndarray, direction: str) -> float:
    """Share of paired draws in which ``a`` beats ``b`` (``direction`` "maximize" or
    "minimize"; ties count half; draws where either is NaN are left out; NaN if none)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return math.nan
    x, y = a[ok], b[ok]
    better = (x > y) if direction == "maximize" else (x < y)
    return float((better.sum() + 0.5 * (x == y).sum()) / ok.sum())


__all__ = ["PERCENTILES", "bands", "default_errors", "design_draws", "factor_columns",
           "make_draws", "percentiles", "price_factors", "win_probability"]
