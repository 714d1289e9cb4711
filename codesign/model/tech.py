"""Technology data: process nodes, HBM generations, SerDes links, and facility equipment.

Every number says where it comes from. "Estimate" marks a value that no public source states
directly; those are the ones :mod:`codesign.model.chip.cost` and :mod:`codesign.model.chip.power`
calibrate (against
datasheet die areas and TDPs only), and their fitted values live here with the fit named.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """One foundry process class. Areas in mm^2, energies in pJ, leakage in W/mm^2."""

    nm: int
    logic_area_vs_n7: float
    """Logic area relative to N7 for the same design: TSMC quotes 1.8x logic density N5 vs N7,
    ~1.06x N4 vs N5, 1.6x N3 vs N5 (N3E) and ~1.15x N2 vs N3 (TSMC technology symposia
    2019-2023; WikiChip 'TSMC N5/N3' summaries)."""
    sram_bitcell_um2: float
    """High-density 6T SRAM bitcell: 0.027 (N7), 0.021 (N5, N4), 0.0199 (N3B) / 0.021 (N3E),
    0.0175 (N2) um^2 (TSMC IEDM 2016/2019/2022/2024 disclosures)."""
    energy_vs_n7: float
    """Switching energy at iso-performance relative to N7: TSMC quotes -30 % N5 vs N7, -8 % N4
    vs N5 (estimate from N4P claims), -30 % N3E vs N5, -25..30 % N2 vs N3E."""
    leakage_w_per_mm2: float
    """Static power of active logic + SRAM per mm^2 at operating temperature (estimate: 5-10 %
    of a ~0.8-1 W/mm^2 power density, typical of large GPUs)."""
    wafer_usd: float
    """300 mm wafer price. N7 9,346 and N5 16,988 USD: CSET 2020 'AI Chips: What They Are and
    Why They Matter', Table 8. N4 (17,500), N3 (20,000) and N2 (30,000): estimates from press
    reports of TSMC pricing."""
    defect_density_per_cm2: float
    """Defect density of a mature node, D0 ~0.07-0.10 /cm^2 (TSMC N7/N5 yield reports at its
    2020-2021 technology symposia; N3/N2 estimate 0.1)."""


NODES: dict[int, Node] = {
    7: Node(7, 1.00, 0.027, 1.00, 0.060, 9346.0, 0.09),
    5: Node(5, 1 / 1.8, 0.021, 0.70, 0.070, 16988.0, 0.08),
    4: Node(4, 1 / 1.9, 0.021, 0.64, 0.070, 17500.0, 0.08),
    3: Node(3, 1 / 2.9, 0.021, 0.45, 0.080, 20000.0, 0.10),
    2: Node(2, 1 / 3.3, 0.0175, 0.33, 0.090, 30000.0, 0.10),
}

SRAM_ARRAY_EFFICIENCY = 0.30
"""Share of an SRAM macro (and of a last-level cache with tags, ECC, routing) that is
bitcells (estimate; GPU L2 die shots show ~25-35 %)."""


@dataclass(frozen=True)
class Hbm:
    """One HBM generation at its nominal pin rate: per stack."""

    name: str
    gbps_per_stack: float  # GB/s
    gb_per_stack: float
    pj_per_bit: float  # DRAM core + PHY, per bit moved
    usd_per_gb: float
    phy_mm2: float  # compute-die area of the PHY + controller of one stack
    phy_edge_mm: float  # die edge one stack's PHY occupies


HBM: dict[str, Hbm] = {
    # JEDEC JESD235A: 1024 bits x 2.0 Gb/s, 8 GB (8-high). 3.9 pJ/bit: O'Connor et al., MICRO
    # 2017 "Fine-Grained DRAM" (HBM2). Price: estimate.
    "HBM2": Hbm("HBM2", 256.0, 8.0, 3.9, 8.0, 10.0, 10.0),
    # 1024 x 3.6 Gb/s (SK hynix HBM2E), 16 GB. Energy and price: estimates (~5 % better per
    # generation; market-research press reports for price).
    "HBM2e": Hbm("HBM2e", 460.0, 16.0, 3.7, 10.0, 11.0, 10.0),
    # JESD238: 1024 x 6.4 Gb/s, 16 GB (the H100's 8-high stacks); estimates as above.
    "HBM3": Hbm("HBM3", 819.0, 16.0, 3.5, 12.0, 12.0, 11.0),
    # Micron HBM3E: 1024 x 9.6 Gb/s = 1.2 TB/s, 24 GB (8-high); estimates as above.
    "HBM3e": Hbm("HBM3e", 1229.0, 24.0, 3.2, 14.0, 12.0, 11.0),
    # JESD270-4: 2048 bits x 8 Gb/s = 2 TB/s, 36 GB (12-high); estimates as above.
    "HBM4": Hbm("HBM4", 2048.0, 36.0, 2.8, 18.0, 14.0, 12.0),
}
"""HBM generations. PHY area and edge (estimates): an HBM PHY is ~10-15 mm^2 along ~10-12 mm
of die edge (vendor HBM3 PHY briefs); the stacks sit on two opposite die edges."""

SERDES_PJ_PER_BIT = 5.0
"""Long-reach 100G-class SerDes energy (published 112G LR SerDes: 4-6 pJ/bit; estimate)."""
SERDES_MM2_PER_100G = 0.35
"""Die area per 100 Gbit/s SerDes lane at 5 nm (published 112G SerDes macros ~0.3-0.5 mm^2;
estimate)."""
RETICLE_MM2 = 858.0
"""Maximum die size of one lithography exposure (26 mm x 33 mm)."""
D2D_AREA_FRACTION = 0.10
"""Extra area per compute die when a chip is split into dies: die-to-die PHYs and duplicated
uncore (estimate; e.g. ~10 % for NV-HBI / Infinity Fabric AP)."""


@dataclass(frozen=True)
class Facility:
    """Equipment around the accelerators: hosts, NICs, switches, optics, building."""

    host_w_per_chip: float = 110.0
    """Host CPU + DRAM + board share per accelerator. Default host: an Arm server CPU like
    Azure Cobalt 100 (128 Neoverse N2 cores; ~250 W class, estimate) for 4 accelerators,
    plus DRAM and board (estimate)."""
    nic_w_per_400g: float = 25.0
    """NIC power per 400 Gb/s port (ConnectX-7 class adapters ~20-25 W, NVIDIA datasheet)."""
    switch_radix: int = 64
    """Ports per scale-out switch (64 x 800G Spectrum-X / Tomahawk 5 class)."""
    switch_w: float = 1500.0
    """Power of one 51.2 Tb/s switch without optics (Broadcom Tomahawk 5 ~500 W chip; system
    ~1-2 kW; estimate)."""
    optic_w_per_800g: float = 15.0
    """Pluggable 800G transceiver power (OSFP 800G DR8 modules: 14-18 W; vendor datasheets)."""
    pue: float = 1.2
    """Facility power / IT power (hyperscale data centres report 1.1-1.2)."""


FACILITY = Facility()


@dataclass(frozen=True)
class Prices:
    """Capital and energy prices for total cost of ownership (all configurable in an
    experiment's ``[tco]`` table)."""

    energy_usd_per_kwh: float = 0.08
    """Industrial electricity price (US EIA 2024 industrial average ~0.08 USD/kWh)."""
    amortization_years: float = 4.0
    """Depreciation period of the IT equipment (hyperscalers use 5-6 years for servers,
    shorter for accelerators; estimate)."""
    facility_usd_per_w: float = 10.0
    """Data-centre construction per watt of IT load (industry estimates 8-12 USD/W)."""
    facility_years: float = 15.0
    """Depreciation period of the building and power plant (estimate)."""
    host_usd_per_chip: float = 3000.0
    """Host CPU, DRAM, board and chassis share per accelerator (estimate)."""
    nic_usd_per_400g: float = 1500.0
    """NIC per 400 Gb/s port (estimate from list prices)."""
    switch_usd: float = 60000.0
    """One 64-port 800G switch (estimate from list prices)."""
    optic_usd_per_800g: float = 1000.0
    """One 800G transceiver (estimate from list prices)."""
    chip_margin: float = 2.0
    """Price paid / manufacturing cost of an accelerator (1 = cost, vendors' gross margins
    make merchant GPUs 3-5x; estimate for a custom chip)."""


PRICES = Prices()
