"""First area and cost estimates of a chip design (issue 5 calibrates them on the catalog).

Area = (compute units x (unit overhead + MACs x MAC area) scaled by node + SRAM + HBM PHYs
+ SerDes) x (1 + misc fraction). Cost = die cost after yield + HBM + package.
"""

from __future__ import annotations

import math

LOGIC_AREA_VS_N7 = {7: 1.0, 5: 1 / 1.8, 4: 1 / 1.9, 3: 1 / 2.9, 2: 1 / 3.3}
"""Logic area relative to N7. TSMC: N5 has 1.8x the logic density of N7, N4 ~6 % over N5,
N3 1.6x over N5, N2 ~1.15x over N3 (TSMC technology symposium announcements)."""

SRAM_MM2_PER_MB = {7: 0.75, 5: 0.59, 4: 0.59, 3: 0.56, 2: 0.49}
"""SRAM macro area incl. periphery, mm^2/MB: high-density bitcell 0.027 (N7), 0.021 (N5/N4),
0.0199 (N3), 0.0175 (N2) um^2 (TSMC/IEDM/ISSCC disclosures) x 8.39e6 bit/MB / ~30 % array
efficiency of large caches (estimate)."""

MAC_AREA_MM2_N7 = 2.83e-3
UNIT_OVERHEAD_MM2_N7 = 2.66
"""Per bf16 MAC and per compute unit (schedulers, register files, vector units), mm^2 at N7.
Fitted to the published die areas of A100 (826 mm^2, N7, 108 x 1024 MAC) and H100 (814 mm^2,
N4, 132 x 2048 MAC) after SRAM, PHYs and misc (chips.csv)."""

HBM_PHY_MM2 = 12.0
"""Die area of one HBM stack's PHY + controller, mm^2 (estimate; vendor HBM3 PHYs 10-15)."""

SERDES_MM2_PER_100G = 0.35
"""Die area per 100 Gbit/s of SerDes lane, mm^2 (estimate for 112G SerDes at 5 nm)."""

MISC_FRACTION = 0.15
"""NoC, IO, PCIe, control as a fraction of the rest (estimate)."""

WAFER_COST_USD = {7: 9346.0, 5: 16988.0, 4: 17500.0, 3: 20000.0, 2: 30000.0}
"""300 mm wafer price. N7/N5: CSET 2020 'AI Chips: What They Are and Why They Matter'
(Table 8); N4, N3, N2: estimates from press reports."""

DEFECT_DENSITY_PER_CM2 = 0.1
"""Mature-node defect density (TSMC reported ~0.1/cm^2 for N7/N5 at volume; estimate)."""

HBM_USD_PER_GB = {"HBM2": 8.0, "HBM2e": 10.0, "HBM3": 12.0, "HBM3e": 14.0, "HBM4": 18.0}
"""HBM price per GB (estimates from market-research press reports)."""

PACKAGE_USD = 300.0
PACKAGE_USD_PER_STACK = 100.0
"""2.5D package, interposer and test: base plus per HBM site (estimates)."""

WAFER_DIAMETER_MM = 300.0


def die_area_mm2(
    process_nm: float,
    compute_units: int,
    macs_per_unit: int,
    sram_mb: float,
    hbm_stacks: int,
    serdes_gbps: float,
) -> float:
    """Estimated compute-die area, mm^2. ``serdes_gbps``: total one-direction Gbit/s of links."""
    node = int(process_nm)
    logic = compute_units * (UNIT_OVERHEAD_MM2_N7 + macs_per_unit * MAC_AREA_MM2_N7)
    logic *= LOGIC_AREA_VS_N7[node]
    sram = sram_mb * SRAM_MM2_PER_MB[node]
    phy = hbm_stacks * HBM_PHY_MM2 + serdes_gbps / 100.0 * SERDES_MM2_PER_100G
    return (logic + sram + phy) * (1.0 + MISC_FRACTION)


def dies_per_wafer(area_mm2: float) -> float:
    """Gross dies per 300 mm wafer (standard edge-loss formula)."""
    d = WAFER_DIAMETER_MM
    return max(0.0, math.pi * (d / 2) ** 2 / area_mm2 - math.pi * d / math.sqrt(2 * area_mm2))


def murphy_yield(area_mm2: float, d0_per_cm2: float = DEFECT_DENSITY_PER_CM2) -> float:
    """Murphy's yield model ``((1 - e^-AD) / AD)^2``."""
    ad = area_mm2 / 100.0 * d0_per_cm2
    return 1.0 if ad == 0 else ((1.0 - math.exp(-ad)) / ad) ** 2


def chip_cost_usd(process_nm: float, area_mm2: float, hbm_gen: str, hbm_gb: float,
                  hbm_stacks: int) -> float:
    """Manufacturing cost of one packaged chip, USD (good die + HBM + package)."""
    dpw = dies_per_wafer(area_mm2)
    good = dpw * murphy_yield(area_mm2)
    die = WAFER_COST_USD[int(process_nm)] / good if good > 0 else math.inf
    hbm = hbm_gb * HBM_USD_PER_GB.get(hbm_gen, 0.0)
    return die + hbm + PACKAGE_USD + PACKAGE_USD_PER_STACK * hbm_stacks
