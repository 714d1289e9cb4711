"""Manufacturing cost of a chip design (USD): dies, yield, HBM and the 2.5D package.

Cost = good compute dies (wafer price / (dies per wafer x negative-binomial yield))
+ HBM (USD/GB) + 2.5D package (interposer + assembly and test). The areas it prices come
from :mod:`codesign.model.chip.area`.

Example:
    >>> from codesign.model.chip.area import estimate_area
    >>> a = estimate_area(4, 132, 2048, 80.0, "HBM3", 5, 4000.0)
    >>> round(chip_cost_usd(4, a.die_mm2, "HBM3", 80.0, 5))
    2196
"""

from __future__ import annotations

import math

from codesign.model.chip.area import _check_non_negative, _check_positive_area, _hbm, _node

# --------------------------------------------------------------------------- cost constants

WAFER_DIAMETER_MM = 300.0
YIELD_ALPHA = 3.0
"""Clustering parameter of the negative-binomial yield model (Stapper, "Modeling of defects in
integrated circuit photolithographic patterns", IBM J. Res. Dev. 1984; alpha ~ 2-3 is the
usual choice of industry cost models such as IC Knowledge's and SemiAnalysis')."""

INTERPOSER_WAFER_USD = 12000.0
"""One 300 mm CoWoS interposer wafer, processed (estimate from press reports, 2024-25: ~12k
USD per CoWoS wafer, ~28 H100-size interposers per wafer)."""
INTERPOSER_SPACING = 1.2
"""Interposer area / (compute dies + HBM footprints): keep-out, underfill and routing
(estimate; gives ~1,640 mm^2 for H100's 814 mm^2 die + 5 stacks, ~27 per wafer)."""
HBM_STACK_FOOTPRINT_MM2 = 110.0
"""Package footprint of one HBM stack (JEDEC HBM2E 7.75 x 11.87 = 92 mm^2, HBM3 11 x 11 =
121 mm^2; one value, estimate)."""
ASSEMBLY_TEST_USD = 150.0
ASSEMBLY_USD_PER_PART = 25.0
"""Package substrate, assembly and final test: base plus per placed die or stack (estimate;
with the interposer this gives ~740 USD for H100, in line with press-reported CoWoS
packaging estimates of ~720-750 USD per H100)."""


def dies_per_wafer(die_mm2: float, wafer_diameter_mm: float = WAFER_DIAMETER_MM) -> float:
    """Gross dies per wafer: ``pi (d/2)^2 / A - pi d / sqrt(2 A)`` (wafer area over die area
    minus the partial dies along the edge); 0 when not even one fits.

    Example:
        >>> round(dies_per_wafer(100.0))
        640
    """
    _check_positive_area(die_mm2)
    d = wafer_diameter_mm
    return max(0.0, math.pi * (d / 2) ** 2 / die_mm2 - math.pi * d / math.sqrt(2 * die_mm2))


def negative_binomial_yield(die_mm2: float, d0_per_cm2: float,
                            alpha: float = YIELD_ALPHA) -> float:
    """Die yield ``(1 + A D0 / alpha)^-alpha`` (A in cm^2, D0 defects per cm^2; Stapper's
    clustered-defect model, :data:`YIELD_ALPHA`)."""
    _check_non_negative(die_mm2=die_mm2, d0_per_cm2=d0_per_cm2)
    if alpha <= 0:
        raise ValueError(f"`alpha > 0` must hold, but got (alpha={alpha!r})")
    return (1.0 + die_mm2 / 100.0 * d0_per_cm2 / alpha) ** -alpha


def murphy_yield(die_mm2: float, d0_per_cm2: float) -> float:
    """Murphy's yield model ``((1 - e^-AD) / AD)^2`` (A in cm^2), for comparison."""
    _check_non_negative(die_mm2=die_mm2, d0_per_cm2=d0_per_cm2)
    ad = die_mm2 / 100.0 * d0_per_cm2
    return 1.0 if ad == 0 else ((1.0 - math.exp(-ad)) / ad) ** 2


def die_yield(process_nm: float, die_mm2: float) -> float:
    """Negative-binomial yield of a die at the node's defect density
    (``tech.NODES[n].defect_density_per_cm2``). No credit for harvesting partly good dies."""
    return negative_binomial_yield(die_mm2, _node(process_nm).defect_density_per_cm2)


def die_cost_usd(process_nm: float, die_mm2: float) -> float:
    """Cost of one good compute die, USD: wafer price / (gross dies per wafer x yield).

    Raises ValueError when the die does not fit on a 300 mm wafer at all.
    """
    gross = dies_per_wafer(die_mm2)
    if gross < 1.0:
        raise ValueError(f"a {die_mm2:g} mm^2 die does not fit on a {WAFER_DIAMETER_MM:g} mm "
                         "wafer")
    return _node(process_nm).wafer_usd / (gross * die_yield(process_nm, die_mm2))


def hbm_cost_usd(hbm_gen: str, hbm_gb: float) -> float:
    """HBM for one package, USD (``tech.HBM[gen].usd_per_gb`` x GB); 0 for no HBM."""
    _check_non_negative(hbm_gb=hbm_gb)
    return 0.0 if hbm_gb == 0 else hbm_gb * _hbm(hbm_gen).usd_per_gb


def interposer_mm2(die_mm2: float, n_dies: int, hbm_stacks: int) -> float:
    """Silicon interposer under the compute dies and HBM stacks, mm^2; 0 for a single die
    without HBM (plain flip-chip on an organic substrate)."""
    _check_positive_area(die_mm2)
    if n_dies <= 1 and hbm_stacks <= 0:
        return 0.0
    return (n_dies * die_mm2 + hbm_stacks * HBM_STACK_FOOTPRINT_MM2) * INTERPOSER_SPACING


def package_cost_usd(die_mm2: float, n_dies: int, hbm_stacks: int) -> float:
    """2.5D (CoWoS-class) package, USD: interposer (CoWoS wafer price / interposers per wafer,
    no yield loss counted; beyond one per wafer, pro rata) + substrate, assembly and test
    (:data:`ASSEMBLY_TEST_USD` plus :data:`ASSEMBLY_USD_PER_PART` per placed die or stack).
    All estimates."""
    if n_dies < 1:
        raise ValueError(f"`n_dies >= 1` must hold, but got (n_dies={n_dies!r})")
    _check_non_negative(hbm_stacks=hbm_stacks)
    area = interposer_mm2(die_mm2, n_dies, hbm_stacks)
    interposer = 0.0
    if area > 0:
        one_per_wafer = _area_one_per_wafer_mm2()
        if area <= one_per_wafer:
            interposer = INTERPOSER_WAFER_USD / dies_per_wafer(area)
        else:  # larger than a wafer can hold: priced as that many wafers (keeps cost finite)
            interposer = INTERPOSER_WAFER_USD * area / one_per_wafer
    return interposer + ASSEMBLY_TEST_USD + ASSEMBLY_USD_PER_PART * (n_dies + hbm_stacks)


def _area_one_per_wafer_mm2(wafer_diameter_mm: float = WAFER_DIAMETER_MM) -> float:
    """The area at which :func:`dies_per_wafer` is exactly 1 (solve for 1/sqrt(A))."""
    r2 = math.pi * (wafer_diameter_mm / 2) ** 2
    b = math.pi * wafer_diameter_mm / math.sqrt(2)
    x = (b + math.sqrt(b * b + 4 * r2)) / (2 * r2)
    return 1.0 / (x * x)


def cost_breakdown_usd(process_nm: float, area_mm2: float, hbm_gen: str, hbm_gb: float,
                       hbm_stacks: int, *, n_dies: int = 1) -> dict[str, float]:
    """Manufacturing cost of one packaged chip by part, USD: ``dies`` (``n_dies`` good dies of
    ``area_mm2`` each), ``hbm``, ``package``."""
    return {
        "dies": n_dies * die_cost_usd(process_nm, area_mm2),
        "hbm": hbm_cost_usd(hbm_gen, hbm_gb),
        "package": package_cost_usd(area_mm2, n_dies, hbm_stacks),
    }


def chip_cost_usd(process_nm: float, area_mm2: float, hbm_gen: str, hbm_gb: float,
                  hbm_stacks: int, *, n_dies: int = 1) -> float:
    """Manufacturing cost of one packaged chip, USD: good dies + HBM + package.
    ``area_mm2`` is ONE compute die (as :func:`codesign.model.chip.area.die_area_mm2`
    returns); ``n_dies`` of them."""
    return sum(cost_breakdown_usd(process_nm, area_mm2, hbm_gen, hbm_gb, hbm_stacks,
                                  n_dies=n_dies).values())
