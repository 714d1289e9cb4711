"""Sources of uncertainty and the paired draws made from them.

Two kinds, each from data the project already has:

* **Model error** (:class:`ErrorModel`), from the residuals of ``codesign validate`` on
  calibration.csv (``catalog/residuals.csv``, written by ``scripts/fit_uncertainty.py``):
  ``log(measured / predicted)`` of speed (throughput rows; time rows inverted) and of power
  (chip power and energy per token rows). The log errors are split, one-way random effects
  by source family (method of moments), into a part shared by every row of a family (how a
  whole publication's setup differs from the model) and a part of each row. In a draw the
  shared part is the same for every design (paired: it cancels in a comparison) and the
  per-design part is each design's own (seeded by the design, so the same design always gets
  the same draws). The fitted constants (the software stack, the energy per FLOP and the busy
  power) carry no range of their own: their error is in these residuals.
* **Constants marked as estimates** that no measurement fits (:data:`SOURCES`): a factor on
  the nominal value, log-uniform over the published or stated range, the same in every
  design of a draw.

Speed error scales the chip array's rates (peak FLOP/s, HBM and link bandwidth; the fixed time
per kernel inversely), power error every energy column, so the kernels turn each
draw into consistent times, power, clocks under the TDP and costs.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from codesign.model.kernels import layout as L

SPEED_COLUMNS = (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4, L.C_HBM_BPS,
                 L.C_UP_BPS, L.C_OUT_BPS)
"""Chip-array columns a speed factor multiplies (:data:`KERNEL_TIME_COLUMN` it divides): the
peak rates themselves, since the kernels require every efficiency <= 1 (a rate x f moves
the same times as its efficiency x f; MFU, a share of the true peak, is multiplied by f
afterwards)."""
KERNEL_TIME_COLUMN = L.C_KERNEL_S
POWER_COLUMNS = (L.C_E_FP32, L.C_E_BF16, L.C_E_FP8, L.C_E_FP4, L.C_E_HBM, L.C_E_LINK,
                 L.C_LEAK_W, L.C_BUSY_W)
"""Chip-array columns a power factor multiplies."""
ASSUMED_COLUMNS = {"tdp_w": L.C_TDP_W, "scaleout_gbps": L.C_OUT_BPS,
                   "scaleup_gbps": L.C_UP_BPS, "sram_mb": L.C_SRAM_B}
"""Chip fields a catalog chip may have assumed (:mod:`codesign.model.catalog.assume`) and
their chip-array columns."""
ASSUMED_RANGE = (0.8, 1.25)
"""Factor range of an assumed catalog value (estimate: no source gives one; +-25 %, the
spread of the sibling and platform figures the assumption rules copy)."""


@dataclass(frozen=True)
class Source:
    """A constant no measurement fits: a factor on its nominal value, log-uniform in
    [``lo``, ``hi``]."""

    name: str
    lo: float
    hi: float
    columns: tuple[int, ...]
    """Chip-array columns the factor multiplies (empty: a cost part)."""
    cost_part: str
    """Part of a design's manufacturing cost it multiplies (:func:`codesign.model.chip.cost.
    cost_breakdown_usd` keys), or ""."""
    why: str


SOURCES: tuple[Source, ...] = (
    Source("hbm_energy", 0.80, 1.25, (L.C_E_HBM,), "",
           "HBM pJ/bit: 3.9 measured for HBM2 (O'Connor et al. MICRO 2017), later generations "
           "estimated ~5 % better each (tech.HBM); +-25 % estimate"),
    Source("link_energy", 0.80, 1.20, (L.C_E_LINK,), "",
           "long-reach SerDes 4-6 pJ/bit published around the 5 used (tech.SERDES_PJ_PER_BIT)"),
    Source("leakage", 0.67, 1.33, (L.C_LEAK_W,), "",
           "leakage 5-10 % of a ~0.8-1 W/mm^2 power density (tech.Node.leakage_w_per_mm2, "
           "estimate)"),
    Source("wafer_price", 0.85, 1.20, (), "dies",
           "wafer prices: N7/N5 from CSET 2020 Table 8, N4/N3/N2 press estimates (tech.NODES); "
           "range estimate"),
    Source("hbm_price", 0.70, 1.40, (), "hbm",
           "HBM USD/GB from market-research press reports (tech.HBM, estimates)"),
    Source("package_price", 0.80, 1.25, (), "package",
           "CoWoS interposer and assembly, press-reported ~720-750 USD per H100 "
           "(chip/cost.py, estimates)"),
)


@dataclass(frozen=True)
class ErrorModel:
    """Standard deviations of the model's log error (natural log): speed and power, each a
    part shared by a source family (``*_between``) and a part of each design
    (``*_within``); ``*_rows``/``*_families``: what they were estimated from."""

    speed_between: float
    speed_within: float
    power_between: float
    power_within: float
    speed_rows: int = 0
    speed_families: int = 0
    power_rows: int = 0
    power_families: int = 0

    def total(self, kind: str) -> float:
        """sqrt(between^2 + within^2) of ``kind`` ("speed" or "power")."""
        b, w = (self.speed_between, self.speed_within) if kind == "speed" else (
            self.power_between, self.power_within)
        return math.hypot(b, w)


def random_effects(log_err: np.ndarray, family: np.ndarray) -> tuple[float, float]:
    """(between, within) standard deviations of ``log_err`` grouped by ``family`` (one-way
    random effects, method of moments; a single family gives between 0 and its whole spread
    as within)."""
    x = np.asarray(log_err, float)
    fam = np.asarray(family)
    ok = np.isfinite(x)
    x, fam = x[ok], fam[ok]
    n = x.size
    if n < 2:
        return 0.0, 0.0
    groups = [x[fam == f] for f in np.unique(fam)]
    k = len(groups)
    if k < 2:
        return 0.0, float(np.sqrt(np.mean((x - x.mean()) ** 2)))
    ss_w = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
    var_w = ss_w / max(n - k, 1)
    mean = x.mean()
    ss_b = sum(g.size * (g.mean() - mean) ** 2 for g in groups)
    n0 = (n - sum(g.size ** 2 for g in groups) / n) / (k - 1)
    var_b = max(0.0, (ss_b / (k - 1) - var_w) / n0)
    return float(np.sqrt(var_b)), float(np.sqrt(var_w))


RESIDUALS_FILE = "residuals.csv"


def load_residuals() -> dict[str, np.ndarray]:
    """The packaged residuals (columns ``case_id``, ``family``, ``kind``, ``log_error``) as
    arrays."""
    import csv

    text = resources.files("codesign.model.catalog").joinpath(RESIDUALS_FILE).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return {"case_id": np.array([r["case_id"] for r in rows]),
            "family": np.array([r["family"] for r in rows]),
            "kind": np.array([r["kind"] for r in rows]),
            "log_error": np.array([float(r["log_error"]) for r in rows])}


def fit_errors(residuals: dict[str, np.ndarray] | None = None,
               without_family: str | None = None) -> ErrorModel:
    """The :class:`ErrorModel` of ``residuals`` (default: the packaged ones), leaving out the
    rows of ``without_family`` (the honest, out-of-sample error for that family)."""
    r = residuals if residuals is not None else load_residuals()
    keep = r["family"] != without_family if without_family else np.ones(r["family"].size, bool)
    out: dict[str, float | int] = {}
    for kind in ("speed", "power"):
        sel = keep & (r["kind"] == kind)
        b, w = random_effects(r["log_error"][sel], r["family"][sel])
        out.update({f"{kind}_between": b, f"{kind}_within": w, f"{kind}_rows": int(sel.sum()),
                    f"{kind}_families": len(set(r["family"][sel]))})
    return ErrorModel(**out)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Draws:
    """``n`` paired draws: the shared normals of the model error (``z_speed``, ``z_power``,
    [n]) and the uniforms of :data:`SOURCES` and of an assumed catalog value (``u``,
    [n, len(SOURCES) + 1]); ``seed`` also seeds each design's own part
    (:meth:`design_normals`)."""

    n: int
    seed: int
    z_speed: np.ndarray
    z_power: np.ndarray
    u: np.ndarray

    def design_normals(self, key: str) -> np.ndarray:
        """A design's own standard normals [n, 2] (speed, power): seeded by ``seed`` and
        ``key``, so a design gets the same ones in every call."""
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return rng.standard_normal((self.n, 2))


def make_draws(n: int, seed: int = 0) -> Draws:
    """``n`` >= 1 paired draws from ``seed``."""
    if n < 1:
        raise ValueError(f"`n >= 1` draws must hold, but got {n}")
    rng = np.random.default_rng(seed)
    return Draws(n, seed, rng.standard_normal(n), rng.standard_normal(n),
                 rng.uniform(size=(n, len(SOURCES) + 1)))


def log_uniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Uniforms ``u`` in [0, 1) as factors log-uniform in [``lo``, ``hi``]."""
    return lo * (hi / lo) ** u
