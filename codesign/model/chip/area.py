"""Silicon area, die split and HBM shoreline of a chip design (mm^2).

Area is built from the resources a design names::

    logic = units x (unit overhead + (MACs + vector-MAC-equivalents) x MAC area) x node scale
    total = (logic + SRAM + HBM PHYs + SerDes) x (1 + misc fraction)

with the MAC area and the per-unit overhead at N7 fitted to datasheet die areas (see
:data:`MAC_MM2_N7`), everything else from :mod:`codesign.model.tech`. A total above the reticle
(:data:`codesign.model.tech.RETICLE_MM2`) is split into the fewest dies that fit, each with
:data:`codesign.model.tech.D2D_AREA_FRACTION` extra for die-to-die PHYs. HBM stacks must fit
along the die edges ("shoreline", :func:`max_hbm_stacks`); a design with more stacks is
infeasible (:func:`shoreline_reason` gives the reason text). What the area costs is
:mod:`codesign.model.chip.cost`.

Example:
    >>> a = estimate_area(4, 132, 2048, 80.0, "HBM3", 5, 4000.0)
    >>> a.n_dies, round(a.die_mm2), a.max_hbm_stacks, a.shoreline_ok
    (1, 807, 6, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from codesign.model import tech

# --------------------------------------------------------------------------- area constants

MAC_MM2_N7 = 2.1314e-3
"""Area of one dense bf16 multiply-accumulate lane (with its share of operand delivery and
accumulators) at N7, mm^2. FITTED together with :data:`UNIT_MM2_N7`, least squares (here an
exact solve: two chips, two unknowns) on the published single-die areas of
A100 (826 mm^2, N7, 108 units x 1024 MAC, 60.25 MB SRAM, 5 HBM2e, NVLink3 600 GB/s + 200 Gb/s)
and H100 SXM (814 mm^2, N4, 132 units x 2048 MAC, 79.4 MB SRAM, 5 HBM3, NVLink4 900 GB/s +
400 Gb/s), chips.csv; residuals 0.0 % and 0.0 %. Out of sample: Maia 100 (820 mm^2 published,
clock assumed 1.8 GHz) and one MI355X XCD (110 mm^2, N3) -- see :mod:`codesign.validate.hardware`,
whose ``fit_area_constants()`` reproduces these two numbers. H200 (same die as H100) is left
out of the fit so the H100 die is not counted twice. Alternative, not used: adding Maia 100
(clock 1.8 GHz assumed) gives a real least squares, MAC 1.680e-3, unit 3.602, residuals
A100 +1.7 %, H100 -4.7 %, Maia +4.0 %, but then no published single die stays out of sample."""

UNIT_MM2_N7 = 2.9065
"""Per compute unit (SM / CU / core) overhead at N7, mm^2: schedulers, register files, L1 /
load-store, control. FITTED with :data:`MAC_MM2_N7` (same fit). The catalog counts *enabled*
units (A100: 108 of 128 built, H100: 132 of 144), so this also carries the harvested spares."""

VECTOR_MAC_EQUIV_PER_FLOP = 2.0
"""Area of one FP32 vector FLOP/cycle in bf16-MAC equivalents (estimate: an FP32 FMA lane,
2 FLOP/cycle, ~4 bf16 MACs: a 24x24-bit mantissa multiplier is ~9x an 8x8 one, but a tensor
MAC carries operand delivery and an adder tree that the vector lane shares with the
register file). For A100 and H100 the vector rate is 1/8 of the MAC rate per cycle, so this
only moves area between the two fitted terms; it matters for chips with unusual ratios."""

DEFAULT_VECTOR_FLOPS_PER_MAC = 1.0 / 8.0
"""Vector FP32 FLOP/cycle per bf16 MAC/cycle when a chip does not say (design.py's convention:
fp32 vector = bf16 matrix / 16, as on H100: 66.9 vs 989 TFLOP/s)."""

MISC_FRACTION = 0.15
"""NoC, PCIe, clocking, control, test and white space as a fraction of everything else
(estimate; not fitted -- two datasheet areas cannot fix three constants)."""

# --------------------------------------------------------------------------- shoreline

RETICLE_ASPECT = 33.0 / 26.0
"""Long / short edge of a die: the reticle's 33 mm x 26 mm (dies near the reticle limit take
its shape; smaller dies are assumed to keep it)."""

HBM_CORNER_OVERHANG = 0.25
"""How far (in stack pitches) each end stack on an edge may overhang the die corner: the PHY
sits in the middle of the stack's footprint. Estimate chosen so that GH100's 814 mm^2 die
carries its 6 HBM3/HBM3e sites (H200 uses all 6) with :data:`codesign.model.tech.HBM` pitches of
11 mm: 32.1 mm long edge / 11 mm = 2.92 stacks -> 3 per edge."""


# --------------------------------------------------------------------------- helpers


def _node(process_nm: float) -> tech.Node:
    node = tech.NODES.get(int(process_nm))
    if node is None or int(process_nm) != process_nm:
        raise ValueError(f"`process_nm` must be one of {sorted(tech.NODES)}, but got "
                         f"{process_nm!r}")
    return node


def _hbm(hbm_gen: str) -> tech.Hbm:
    gen = tech.HBM.get(hbm_gen)
    if gen is None:
        raise ValueError(f"`hbm_gen` must be one of {sorted(tech.HBM)}, but got {hbm_gen!r}")
    return gen


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"`{name} >= 0` must hold (finite), but got ({name}={value!r})")


def _check_positive_area(die_mm2: float) -> None:
    if not (math.isfinite(die_mm2) and die_mm2 > 0):
        raise ValueError(f"`die_mm2 > 0` must hold (finite), but got (die_mm2={die_mm2!r})")


def sram_mm2_per_mb(process_nm: float) -> float:
    """SRAM macro area per MB (2^23 bits) at ``process_nm``, mm^2: bitcell area from
    :data:`codesign.model.tech.NODES` over :data:`codesign.model.tech.SRAM_ARRAY_EFFICIENCY`."""
    return _node(process_nm).sram_bitcell_um2 * 8 * 2**20 * 1e-6 / tech.SRAM_ARRAY_EFFICIENCY


# --------------------------------------------------------------------------- area


def area_breakdown_mm2(
    process_nm: float,
    compute_units: float,
    macs_per_unit: float,
    sram_mb: float,
    hbm_gen: str,
    hbm_stacks: int,
    serdes_gbps_one_way: float,
    vector_flops_per_cycle_per_unit: float | None = None,
    *,
    mac_mm2_n7: float = MAC_MM2_N7,
    unit_mm2_n7: float = UNIT_MM2_N7,
    misc_fraction: float = MISC_FRACTION,
) -> dict[str, float]:
    """Silicon area of a chip's compute logic, SRAM and PHYs by component, mm^2, before any
    split into dies.

    Keys: ``mac``, ``vector``, ``unit`` (logic, scaled from N7 by the node's
    ``logic_area_vs_n7``), ``sram``, ``hbm_phy``, ``serdes``, ``misc``; they sum to
    :func:`compute_area_mm2`. ``macs_per_unit``: dense bf16 MAC/cycle per unit;
    ``vector_flops_per_cycle_per_unit``: FP32 vector FLOP/cycle per unit (None: 1/8 of the
    MACs); ``serdes_gbps_one_way``: total Gbit/s of off-package links in one direction.
    """
    _check_non_negative(compute_units=compute_units, macs_per_unit=macs_per_unit,
                        sram_mb=sram_mb, hbm_stacks=hbm_stacks,
                        serdes_gbps_one_way=serdes_gbps_one_way)
    node = _node(process_nm)
    if vector_flops_per_cycle_per_unit is None:
        vector_flops_per_cycle_per_unit = macs_per_unit * DEFAULT_VECTOR_FLOPS_PER_MAC
    _check_non_negative(vector_flops_per_cycle_per_unit=vector_flops_per_cycle_per_unit)
    scale = node.logic_area_vs_n7
    parts = {
        "mac": compute_units * macs_per_unit * mac_mm2_n7 * scale,
        "vector": compute_units * vector_flops_per_cycle_per_unit * VECTOR_MAC_EQUIV_PER_FLOP
        * mac_mm2_n7 * scale,
        "unit": compute_units * unit_mm2_n7 * scale,
        "sram": sram_mb * sram_mm2_per_mb(process_nm),
        "hbm_phy": hbm_stacks * _hbm(hbm_gen).phy_mm2 if hbm_stacks else 0.0,
        "serdes": serdes_gbps_one_way / 100.0 * tech.SERDES_MM2_PER_100G,
    }
    parts["misc"] = misc_fraction * sum(parts.values())
    return parts


def compute_area_mm2(*args: Any, **kwargs: Any) -> float:
    """Total silicon of compute logic + SRAM + HBM PHYs + SerDes + NoC/misc, mm^2, before the
    split into dies: the sum of :func:`area_breakdown_mm2` (same arguments).

    Example:
        >>> round(compute_area_mm2(7, 108, 1024, 60.25, "HBM2e", 5, 2600.0, 128))
        826
    """
    return sum(area_breakdown_mm2(*args, **kwargs).values())


def split_dies(total_mm2: float) -> tuple[int, float]:
    """``(n_dies, die_mm2)``: one die if ``total_mm2`` fits the reticle
    (:data:`codesign.model.tech.RETICLE_MM2`), else the fewest equal dies that each fit with
    :data:`codesign.model.tech.D2D_AREA_FRACTION` extra for die-to-die PHYs and duplicated uncore.

    Example:
        >>> split_dies(800.0)
        (1, 800.0)
        >>> n, die = split_dies(1200.0); n, round(die)
        (2, 660)
    """
    _check_positive_area(total_mm2)
    if total_mm2 <= tech.RETICLE_MM2:
        return 1, float(total_mm2)
    grown = total_mm2 * (1.0 + tech.D2D_AREA_FRACTION)
    n = math.ceil(grown / tech.RETICLE_MM2)
    return n, grown / n


def die_edges_mm(die_mm2: float) -> tuple[float, float]:
    """``(long, short)`` edge of a die of ``die_mm2`` with the reticle's 33:26 aspect, mm."""
    _check_positive_area(die_mm2)
    long = math.sqrt(die_mm2 * RETICLE_ASPECT)
    return long, die_mm2 / long


def _stacks_along(edge_mm: float, pitch_mm: float) -> int:
    return math.floor(edge_mm / pitch_mm + 2 * HBM_CORNER_OVERHANG + 1e-9)


def max_hbm_stacks(die_mm2: float, n_dies: int, hbm_gen: str) -> int:
    """Most HBM stacks the compute dies' edges can carry (the "shoreline").

    One stack per ``tech.HBM[hbm_gen].phy_edge_mm`` of edge (end stacks may overhang a corner
    by :data:`HBM_CORNER_OVERHANG` pitch). One die: stacks along both long edges (the short
    edges keep PCIe / SerDes I/O; the H100 layout). Several dies: each die gives one long edge
    to its die-to-die link and one to SerDes I/O and carries stacks on its two short edges
    (the B200 layout: 4 HBM3e stacks per ~800 mm^2 die). All dies are treated alike.

    Example:
        >>> max_hbm_stacks(814.0, 1, "HBM3"), max_hbm_stacks(800.0, 2, "HBM3e")
        (6, 8)
    """
    if n_dies < 1:
        raise ValueError(f"`n_dies >= 1` must hold, but got (n_dies={n_dies!r})")
    long, short = die_edges_mm(die_mm2)
    pitch = _hbm(hbm_gen).phy_edge_mm
    per_die = 2 * _stacks_along(long if n_dies == 1 else short, pitch)
    return n_dies * per_die


def shoreline_reason(die_mm2: float, n_dies: int, hbm_gen: str, hbm_stacks: int) -> str:
    """Why ``hbm_stacks`` do not fit along the dies' edges, or "" when they fit.

    Example:
        >>> shoreline_reason(400.0, 1, "HBM3", 8)
        'HBM stacks exceed die edge (shoreline): 8 > 4'
    """
    if hbm_stacks <= 0:
        return ""
    limit = max_hbm_stacks(die_mm2, n_dies, hbm_gen)
    if hbm_stacks > limit:
        return f"HBM stacks exceed die edge (shoreline): {hbm_stacks} > {limit}"
    return ""


def shoreline_ok(die_mm2: float, n_dies: int, hbm_gen: str, hbm_stacks: int) -> bool:
    """True when ``hbm_stacks`` fit along the dies' edges (see :func:`max_hbm_stacks`)."""
    return shoreline_reason(die_mm2, n_dies, hbm_gen, hbm_stacks) == ""


@dataclass(frozen=True)
class AreaEstimate:
    """Area of one design: total silicon, its split into compute dies, and the shoreline."""

    total_mm2: float
    """Compute logic + SRAM + PHYs + misc before splitting, mm^2."""
    n_dies: int
    die_mm2: float
    """One compute die (with die-to-die overhead when ``n_dies > 1``), mm^2."""
    hbm_stacks: int
    max_hbm_stacks: int
    breakdown_mm2: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    """"" when feasible, else e.g. "HBM stacks exceed die edge (shoreline): 8 > 6"."""

    @property
    def shoreline_ok(self) -> bool:
        """True when the HBM stacks fit along the die edges."""
        return self.reason == ""

    @property
    def silicon_mm2(self) -> float:
        """All compute-die silicon of the package, mm^2 (``n_dies x die_mm2``)."""
        return self.n_dies * self.die_mm2


def estimate_area(
    process_nm: float,
    compute_units: float,
    macs_per_unit: float,
    sram_mb: float,
    hbm_gen: str,
    hbm_stacks: int,
    serdes_gbps_one_way: float,
    vector_flops_per_cycle_per_unit: float | None = None,
) -> AreaEstimate:
    """Everything about a design's area in one call: :func:`compute_area_mm2`, then
    :func:`split_dies`, then the shoreline check (arguments as in
    :func:`area_breakdown_mm2`)."""
    parts = area_breakdown_mm2(process_nm, compute_units, macs_per_unit, sram_mb, hbm_gen,
                               hbm_stacks, serdes_gbps_one_way, vector_flops_per_cycle_per_unit)
    total = sum(parts.values())
    n, die = split_dies(total)
    limit = max_hbm_stacks(die, n, hbm_gen)
    return AreaEstimate(total, n, die, int(hbm_stacks), limit, parts,
                        shoreline_reason(die, n, hbm_gen, hbm_stacks))


def die_area_mm2(
    process_nm: float,
    compute_units: int,
    macs_per_unit: int,
    sram_mb: float,
    hbm_stacks: int,
    serdes_gbps: float,
    hbm_gen: str = "HBM3",
    vector_flops_per_cycle_per_unit: float | None = None,
) -> float:
    """Area of ONE compute die, mm^2 (after the reticle split; :func:`estimate_area` also
    gives the die count and the shoreline). ``serdes_gbps``: total one-direction Gbit/s of
    links. Kept with its first six arguments for :mod:`codesign.search.design`; pass ``hbm_gen``
    for the right PHY area (default HBM3)."""
    return estimate_area(process_nm, compute_units, macs_per_unit, sram_mb, hbm_gen,
                         hbm_stacks, serdes_gbps, vector_flops_per_cycle_per_unit).die_mm2


# --------------------------------------------------------------------------- yield and cost
