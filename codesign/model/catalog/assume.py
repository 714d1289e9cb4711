"""Stated assumptions for the numbers a catalog chip leaves unknown (empty cells of chips.csv).

An empty cell of chips.csv means no citable figure was found. To predict a measured run on such
a chip, :func:`explain_unknowns` completes it with the rules below, applied in this order and
only to fields that are still ``None``; every value it fills comes with a one-line reason:

a. same silicon (:data:`SIBLINGS`): copy the sibling chip's published value;
b. ``sram_mb``: the SRAM per compute unit of the closest published chip of the same vendor
   (:data:`SRAM_REFERENCE`) x the chip's compute units;
c. ``scaleout_gbps``: the usual platform NIC per chip (:data:`SCALEOUT_GBPS`, else
   :data:`VENDOR_SCALEOUT_GBPS`), each with its citation;
d. ``tdp_w``: the chip is assumed not power-limited: its TDP is the model's maximum draw for
   it (:func:`max_draw_w`), so it runs at its published peak clock;
e. ``scaleup_gbps`` (and ``scaleup_links``): a third-party figure where the vendor's is not in
   chips.csv (:data:`SCALEUP`), cited; applied before d.

:func:`energy_fallbacks` names what :func:`codesign.model.chip.power.energy_columns` assumes
silently for a chip (node, HBM generation, area ...): callers list them where power is
predicted.

A chip written from a spec sheet (a ``[chip]`` file, :mod:`codesign.search.chip_file`) gives
the datasheet numbers and usually lacks the micro-architecture. :func:`explain_spec_sheet`
completes it so that every number the model uses is stated: rules f-g first (so that b can
use the units), then a-e as for a catalog row, then h-p. They apply to spec-sheet chips only;
catalog rows keep their unknowns (the model then searches or does without them, and the
predictions of ``codesign validate`` stay on published numbers):

f. ``clock_ghz``: :data:`codesign.model.chip.datasheet.TYPICAL_CLOCK_GHZ` (1.8 GHz, the
   matrix clock of 4-5 nm accelerators: H100 1.83, MI300X 2.1 GHz);
g. ``compute_units``: H100-SM-sized units: bf16 peak / (2 x
   :data:`~codesign.model.chip.datasheet.DEFAULT_MACS_PER_UNIT` (2048 MACs/cycle, H100's SM)
   x clock), rounded (H100: 989.4 TFLOP/s at 1.83 GHz -> 132);
h. ``sram_mb``: H100's 0.60 MB per compute unit (79.4 MB over 132 SMs) x units, where the
   units are H100-SM-sized (rule g, applied before b: a TPU's SRAM per TensorCore does not
   fit an SM) or the vendor has no reference chip for rule b;
i. ``scaleout_gbps``: rule c for vendors without a figure: 400 Gb/s, the per-chip NIC of
   NVIDIA's and AMD's 8-GPU platforms (:data:`VENDOR_SCALEOUT_GBPS`);
j. ``scaleup_domain``: 8 chips (an HGX / 8-GPU MI300X node, chips.csv) when the sheet gives a
   scale-up bandwidth; else 1 with ``scaleup_gbps`` 0 (no scale-up fabric stated: every
   collective crosses the NIC);
k. ``scaleup_links``: scale-up GB/s over one link of the NVLink generation of the chip's
   year (:data:`LINK_GBPS_BY_YEAR`), rounded up; the other way round, a sheet that gives
   the links but not the bandwidth gets links x that link's GB/s (applied before j);
l. ``process_nm``: the leading node of the catalog's accelerators of the chip's year
   (:data:`PROCESS_NM_BY_YEAR`); 4 nm without a year (the node
   :func:`~codesign.model.chip.power.energy_columns` assumes);
m. ``hbm_gen``: ``none`` without HBM capacity; with a stack count, the generation whose
   per-stack bandwidth (:data:`codesign.model.tech.HBM`) is closest to the sheet's; else the
   generation of the chip's year (:data:`HBM_GEN_BY_YEAR`); else HBM3 (as
   :func:`energy_fallbacks`);
n. ``hbm_stacks``: as many stacks of that generation as the capacity and the bandwidth need
   (the larger count; H100: 80 GB / 16 GB and 3.35 TB/s / 0.819 TB/s -> 5);
o. ``die_area_mm2`` and ``n_compute_dies``: the area model's estimate of the compute
   silicon from the resources above (:func:`codesign.model.chip.datasheet.predict_area`,
   the estimate ``codesign validate --hardware`` checks against the catalog), split at the
   reticle; with a published die area, as many such dies as that silicon needs;
p. ``price_usd``: the modelled manufacturing cost (good dies, HBM, package:
   :func:`codesign.model.chip.cost.chip_cost_usd`) x
   :attr:`codesign.model.tech.Prices.chip_margin`, what a searched design of that silicon
   costs its buyer (:func:`codesign.model.perf.chip_price_usd`).

Values the model does without stay unknown (``tflops_fp32``, ``tflops_fp8``, ``tflops_fp4``:
the precision is then not offered).

Example:
    >>> from codesign.model.catalog import get_chip
    >>> chip, assumed = fill_unknowns(get_chip("h800"))
    >>> assumed["sram_mb"], chip.scaleup_gbps  # H100's SRAM; its own 400 GB/s NVLink kept
    (79.4, 400.0)
    >>> fill_unknowns(get_chip("h100-sxm"))[1]
    {}
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

from codesign.model import efficiency, tech
from codesign.model.catalog import get_chip
from codesign.model.chip import cost as chip_cost
from codesign.model.chip import datasheet as chip_area
from codesign.model.chip import power
from codesign.model.specs import ChipSpec


class Assumption(NamedTuple):
    """A value assumed for an unknown field and the one-line reason for it."""

    value: object
    reason: str


SIBLINGS: dict[str, tuple[str, str]] = {
    "h800": ("h100-sxm", "same GH100 die (chips.csv: the H800 is the export H100 SXM5)"),
    "gb200": ("b200", "same Blackwell silicon (chips.csv: a GB200 row is one Blackwell GPU)"),
    "h100-sxm-96gb-500w": (
        "h100-sxm", "GH100 with a 500 W limit; its TFLOPS lie between H100 SXM and NVL and are "
        "unknown, so H100 SXM's peak is assumed and the 500 W limit throttles it (DVFS)"),
}
"""Rule a: chip id -> (sibling id, why they are the same silicon). The chip keeps every value
it publishes (the 500 W part its 500 W, the H800 its 400 GB/s NVLink)."""

SIBLING_FIELDS = (
    "compute_units", "clock_ghz", "tflops_fp32", "tflops_bf16", "tflops_fp8", "tflops_fp4",
    "sram_mb", "hbm_stacks", "process_nm", "die_area_mm2", "n_compute_dies", "scaleup_gbps",
    "scaleup_links", "tdp_w",
)
"""Fields rule a copies from the sibling (properties of the die and its package)."""

SRAM_REFERENCE: dict[str, str] = {"NVIDIA": "h100-sxm", "AMD": "mi300x", "Google": "tpu-v5p"}
"""Rule b: vendor -> the published chip whose SRAM per compute unit is assumed. NVIDIA:
H100's 79.4 MB over 132 SMs (:data:`codesign.model.chip.datasheet.TYPICAL_SRAM_MB_PER_UNIT`); AMD:
MI300X
(307 MB over 304 CUs); Google: TPU v5p (128 MB over 2 TensorCores). Other vendors: none."""

SCALEOUT_GBPS: dict[str, tuple[float, str]] = {
    "b200": (400.0, "DGX B200: 8 x ConnectX-7 400 Gb/s cluster NICs for 8 GPUs (NVIDIA DGX "
             "B200 user guide, hardware overview)"),
    "gb200": (400.0, "DGX GB200 compute tray: 4 x ConnectX-7 400G OSFP cluster NICs for "
              "4 GPUs (NVIDIA DGX GB200 user guide, hardware)"),
    "mi300x": (400.0, "8-GPU MI300X platforms: 8 x 400 Gb/s NDR InfiniBand for 8 GPUs (Azure "
               "ND MI300X v5 size page)"),
    "tpu-v6e": (100.0, "Google Cloud TPU7x page, specification table: DCN bandwidth per chip "
                "100 Gb/s for v6e"),
    "tpu-v7": (100.0, "Google Cloud TPU7x page, specification table: DCN bandwidth per chip "
               "100 Gb/s for TPU7x"),
}
"""Rule c: chip id -> (per-chip NIC bandwidth of its usual platform, Gbit/s; citation). All five
figures were confirmed in the cited documents. The NIC of the OCI bare-metal MI300X shape
(BM.GPU.MI300X.8) that ran the OCI-MI300X rows was not found stated; the Azure 8-GPU MI300X
figure is used. TPU v6e and TPU7x have published per-chip DCN figures (100 Gb/s), so the
Google fallback (TPU v5p's 50 Gb/s) is not needed for them."""

VENDOR_SCALEOUT_GBPS: dict[str, tuple[float, str]] = {
    "NVIDIA": (400.0, "NVIDIA HGX/DGX platforms give each GPU one 400 Gb/s ConnectX-7 "
               "(DGX BasePOD reference architecture: DGX H100, H200 and B200)"),
    "AMD": (400.0, "8-GPU AMD Instinct platforms give each GPU one 400 Gb/s NIC (Azure ND "
            "MI300X v5)"),
    "Google": (50.0, "TPU v5p's published DCN bandwidth per chip, 50 Gb/s (chips.csv)"),
}
"""Rule c for chips of a vendor without a row in :data:`SCALEOUT_GBPS`."""

SCALEUP: dict[str, tuple[float, int, str]] = {
    "mi355x": (1075.0, 7, "7 Infinity Fabric (XGMI) links of ~153.6 GB/s bidirectional each "
               "in the 8-GPU all-to-all (humeconsulting.co, 'AMD MI355X: strong node-level "
               "inference', ~153 GB/s per link; 7 links as MI300X's 8-GPU platform)"),
}
"""Rule e: chip id -> (scale-up GB/s bidirectional, links, citation) where chips.csv leaves the
scale-up bandwidth empty."""

FALLBACK_AREA_MM2 = 814.0
"""Compute-die area :func:`codesign.model.chip.power.energy_columns` assumes when it can neither
read nor
predict a chip's area (H100's die, chips.csv)."""
FALLBACK_BF16_TFLOPS = 989.4
"""bf16 peak :func:`codesign.model.chip.power.energy_columns` sizes busy power with when a chip has
none
(H100 SXM, chips.csv)."""

_EFF_BY_PRECISION = {"fp32": "gemm", "bf16": "gemm", "fp8": "gemm_lowp", "fp4": "gemm_lowp"}


def explain_unknowns(chip: ChipSpec) -> tuple[ChipSpec, dict[str, Assumption]]:
    """``(completed chip, {field: Assumption(value, reason)})`` by rules a-e of the module doc,
    for fields that are ``None`` only; a chip with no unknown comes back unchanged with {}.

    Units are those of :class:`codesign.model.specs.ChipSpec` (MB, Gbit/s, W ...)."""
    out: dict[str, Assumption] = {}

    def put(field: str, value: object, reason: str) -> None:
        nonlocal chip
        chip = replace(chip, **{field: value})
        out[field] = Assumption(value, reason)

    sibling = SIBLINGS.get(chip.id)
    if sibling is not None:
        sib = get_chip(sibling[0])
        for name in SIBLING_FIELDS:
            if getattr(chip, name) is None and getattr(sib, name) is not None:
                put(name, getattr(sib, name), f"{sib.id}'s value: {sibling[1]}")
    if chip.sram_mb is None and chip.compute_units:
        per_unit = _sram_per_unit(chip.vendor)
        if per_unit is not None:
            put("sram_mb", round(per_unit[0] * chip.compute_units, 1),
                f"{per_unit[0]:.3f} MB per compute unit ({per_unit[1]}) x "
                f"{chip.compute_units} units")
    if chip.scaleout_gbps is None:
        nic = SCALEOUT_GBPS.get(chip.id) or VENDOR_SCALEOUT_GBPS.get(chip.vendor)
        if nic is not None:
            put("scaleout_gbps", nic[0], f"usual platform NIC per chip: {nic[1]}")
    if chip.scaleup_gbps is None and chip.id in SCALEUP:
        gbps, links, why = SCALEUP[chip.id]
        put("scaleup_gbps", gbps, why)
        if chip.scaleup_links is None:
            put("scaleup_links", links, why)
    if chip.tdp_w is None:
        draw = max_draw_w(chip)
        if draw is not None:
            watts, notes = draw
            extra = f"; with {', '.join(notes)}" if notes else ""
            put("tdp_w", round(watts, 1), "not power-limited: the model's maximum draw "
                "(GEMMs at the sustained rate, HBM and links at full bandwidth, busy and "
                f"leakage power{extra}), so it runs at its published peak clock")
    return chip, out


def fill_unknowns(chip: ChipSpec) -> tuple[ChipSpec, dict[str, object]]:
    """``(completed chip, {field: value assumed})``: :func:`explain_unknowns` without the
    reasons (units of :class:`codesign.model.specs.ChipSpec`)."""
    done, why = explain_unknowns(chip)
    return done, {name: a.value for name, a in why.items()}


PROCESS_NM_BY_YEAR: tuple[tuple[int, int, str], ...] = (
    (0, 7, "A100 (2020) on TSMC N7; MI250X's N6 (2021) is an N7 derivative"),
    (2022, 4, "H100 (2022), H200 (2023) and B200 (2024) on TSMC 4N / 4NP"),
    (2025, 3, "MI355X (2025) on TSMC N3"),
)
"""Rule l: (first year, process nm, catalog chips it is from): the leading node of the
catalog's accelerators from that year on (chips.csv ``year`` and ``process_nm``)."""

HBM_GEN_BY_YEAR: tuple[tuple[int, str, str], ...] = (
    (0, "HBM2e", "A100 80GB (2020) and MI250X (2021)"),
    (2022, "HBM3", "H100 (2022) and MI300X (2023)"),
    (2024, "HBM3e", "B200 (2024), MI355X and TPU7x (2025)"),
    (2026, "HBM4", "JEDEC JESD270-4 (HBM4, April 2025), the generation NVIDIA announced for "
     "its 2026 Rubin GPUs"),
)
"""Rule m: (first year, HBM generation, where it is from): the generation of the catalog's
accelerators from that year on (chips.csv ``year`` and ``hbm_gen``)."""

LINK_GBPS_BY_YEAR: tuple[tuple[int, float, str], ...] = (
    (0, 50.0, "NVLink 3/4: A100 600 GB/s over 12 links, H100 900 GB/s over 18 (chips.csv)"),
    (2024, 100.0, "NVLink 5: B200 1800 GB/s over 18 links (chips.csv)"),
)
"""Rule k: (first year, GB/s bidirectional per scale-up link, where it is from)."""

SPEC_SHEET_DOMAIN = 8
"""Rule j: chips per scale-up domain when a sheet gives a scale-up bandwidth but no domain
(HGX H100/H200/B200 and 8-GPU MI300X nodes, chips.csv ``scaleup_domain``)."""

SPEC_SHEET_SCALEOUT_GBPS = 400.0
"""Rule i: NIC Gbit/s per chip for a vendor without a figure of its own
(:data:`VENDOR_SCALEOUT_GBPS`: NVIDIA's and AMD's 8-GPU platforms both give 400 Gb/s)."""


def _by_year(table: tuple[tuple[int, object, str], ...], year: int | None
             ) -> tuple[object, str] | None:
    """(value, source) of the last row of ``table`` whose first year is <= ``year``; None
    without a year."""
    if year is None:
        return None
    rows = [(v, why) for first, v, why in table if first <= year]
    return rows[-1] if rows else None


def _link_gbps(year: int | None) -> tuple[float, str]:
    """Rule k: (GB/s bidirectional of one scale-up link in ``year``, where it is from); the
    newest link without a year."""
    row = _by_year(LINK_GBPS_BY_YEAR, year)
    if row is None:
        return LINK_GBPS_BY_YEAR[-1][1], LINK_GBPS_BY_YEAR[-1][2] + "; year not on the sheet"
    return float(row[0]), row[1]  # type: ignore[arg-type]


def _sm_sram(units: int) -> tuple[float, str]:
    """Rule h: (MB of SRAM, reason) of ``units`` H100-SM-sized compute units."""
    per_unit = chip_area.TYPICAL_SRAM_MB_PER_UNIT
    return round(per_unit * units, 1), (f"{per_unit:.3f} MB per compute unit (H100 SXM: "
                                        f"79.4 MB over 132 SMs) x {units} units")


def _ceil(x: float) -> int:
    """``ceil`` that forgives float noise (80 / 16 -> 5, not 6)."""
    return math.ceil(x - 1e-9)


def explain_spec_sheet(chip: ChipSpec) -> tuple[ChipSpec, dict[str, Assumption]]:
    """``(completed chip, {field: Assumption(value, reason)})`` of a chip written from a spec
    sheet: rules f-g, a-e (:func:`explain_unknowns`), then h-p of the module doc, each for
    fields that are ``None`` only. The chip needs a bf16 peak (TFLOP/s), HBM capacity (GB)
    and bandwidth (TB/s) and a TDP (W), as :func:`codesign.search.chip_file.load_chip_file`
    requires; other units are those of :class:`codesign.model.specs.ChipSpec`.

    Example:
        >>> from codesign.model.specs import ChipSpec
        >>> sheet = ChipSpec(name="X", process_nm=None, compute_units=None, clock_ghz=None,
        ...                  tflops_fp32=None, tflops_bf16=989.4, tflops_fp8=None,
        ...                  tflops_fp4=None, sram_mb=None, hbm_gen=None, hbm_stacks=None,
        ...                  hbm_gb=80.0, hbm_tbps=3.35, scaleup_gbps=900.0,
        ...                  scaleup_links=None, scaleup_domain=None, scaleout_gbps=None,
        ...                  tdp_w=700.0, n_compute_dies=None, year=2022, id="x")
        >>> done, why = explain_spec_sheet(sheet)
        >>> done.compute_units, done.hbm_gen, done.hbm_stacks, done.scaleup_links
        (134, 'HBM3', 5, 18)
    """
    out: dict[str, Assumption] = {}

    def put(field: str, value: object, reason: str) -> None:
        nonlocal chip
        chip = replace(chip, **{field: value})
        out[field] = Assumption(value, reason)

    bf16 = chip.tflops_bf16
    if chip.clock_ghz is None:  # f
        put("clock_ghz", chip_area.TYPICAL_CLOCK_GHZ, "typical matrix clock of 4-5 nm "
            "accelerators (H100 1.83, MI300X 2.1 GHz; clock not on the sheet)")
    if chip.compute_units is None and bf16:  # g
        macs = chip_area.DEFAULT_MACS_PER_UNIT
        units = max(1, round(bf16 * 1e12 / (2.0 * macs * chip.clock_ghz * 1e9)))
        put("compute_units", units, f"units of H100's SM size: {bf16:g} TFLOP/s bf16 / (2 x "
            f"{macs:g} MACs/cycle x {chip.clock_ghz:g} GHz)")
    if chip.sram_mb is None and "compute_units" in out:  # h: SM-sized units, SM's SRAM
        put("sram_mb", *_sm_sram(chip.compute_units))
    chip, catalog_rules = explain_unknowns(chip)  # a-e
    out.update(catalog_rules)
    if chip.sram_mb is None and chip.compute_units:  # h: no reference chip for the vendor
        put("sram_mb", *_sm_sram(chip.compute_units))
    if chip.scaleout_gbps is None:  # i
        put("scaleout_gbps", SPEC_SHEET_SCALEOUT_GBPS, "usual platform NIC per chip: NVIDIA's "
            "and AMD's 8-GPU platforms give each chip one 400 Gb/s NIC")
    if chip.scaleup_gbps is None and chip.scaleup_links:  # k (the other way round)
        link = _link_gbps(chip.year)
        put("scaleup_gbps", chip.scaleup_links * link[0],
            f"{chip.scaleup_links} links of {link[0]:g} GB/s ({link[1]})")
    if chip.scaleup_domain is None:  # j
        if chip.scaleup_gbps:
            put("scaleup_domain", SPEC_SHEET_DOMAIN, "an 8-chip scale-up node, as HGX "
                "H100/H200/B200 and 8-GPU MI300X platforms (domain not on the sheet)")
        else:
            put("scaleup_domain", 1, "no scale-up fabric on the sheet: each chip alone, "
                "every collective over the NIC")
    if chip.scaleup_gbps is None and chip.scaleup_domain == 1:
        put("scaleup_gbps", 0.0, "no scale-up fabric on the sheet")
    if chip.scaleup_links is None and chip.scaleup_gbps is not None:  # k
        link = _link_gbps(chip.year)
        put("scaleup_links", _ceil(chip.scaleup_gbps / link[0]),
            f"{chip.scaleup_gbps:g} GB/s over links of {link[0]:g} GB/s ({link[1]})")
    if chip.process_nm is None:  # l
        node = _by_year(PROCESS_NM_BY_YEAR, chip.year)
        if node is None:
            put("process_nm", 4, "the 4 nm node of energy_fallbacks (year not on the sheet)")
        else:
            put("process_nm", node[0], f"leading node of {chip.year}'s accelerators: "
                f"{node[1]}")
    if chip.hbm_gen is None:  # m
        if not chip.hbm_gb:
            put("hbm_gen", "none", "no HBM capacity on the sheet")
        elif chip.hbm_stacks:
            per_stack = chip.hbm_tbps * 1000.0 / chip.hbm_stacks
            gen = min(tech.HBM, key=lambda g: abs(math.log(tech.HBM[g].gbps_per_stack
                                                            / max(per_stack, 1e-9))))
            put("hbm_gen", gen, f"{per_stack:.0f} GB/s per stack is closest to {gen}'s "
                f"{tech.HBM[gen].gbps_per_stack:g} GB/s (codesign.model.tech.HBM)")
        else:
            row = _by_year(HBM_GEN_BY_YEAR, chip.year)
            if row is None:
                put("hbm_gen", "HBM3", "HBM3, as energy_fallbacks (year not on the sheet)")
            else:
                put("hbm_gen", row[0], f"HBM generation of {chip.year}'s accelerators: "
                    f"{row[1]}")
    if chip.hbm_stacks is None:  # n
        if not chip.hbm_gb or chip.hbm_gen not in tech.HBM:
            put("hbm_stacks", 0, "no HBM capacity on the sheet")
        else:
            h = tech.HBM[chip.hbm_gen]
            by_gb = _ceil(chip.hbm_gb / h.gb_per_stack)
            by_bw = _ceil(chip.hbm_tbps * 1000.0 / h.gbps_per_stack)
            put("hbm_stacks", max(by_gb, by_bw, 1),
                f"{chip.hbm_gen} stacks of {h.gb_per_stack:g} GB and {h.gbps_per_stack:g} "
                f"GB/s: {chip.hbm_gb:g} GB needs {by_gb}, {chip.hbm_tbps:g} TB/s needs "
                f"{by_bw} (codesign.model.tech.HBM)")
    if chip.die_area_mm2 is None or chip.n_compute_dies is None:  # o
        est = chip_area.predict_area(chip)  # split into the published dies, if any
        total = est["total_mm2"]
        if total is not None and chip.die_area_mm2 is None:
            if chip.n_compute_dies is None:
                put("n_compute_dies", est["predicted_n_dies"], "the area model's split of "
                    f"{total:.0f} mm2 of compute silicon at the {tech.RETICLE_MM2:g} mm2 "
                    "reticle")
            put("die_area_mm2", round(est["predicted_die_area_mm2"], 1), "the area model's "
                "estimate from the chip's resources, as codesign validate --hardware checks "
                f"it against the catalog ({est['assumptions'] or 'nothing more assumed'})")
        elif total is not None:
            put("n_compute_dies", max(1, round(total / chip.die_area_mm2)),
                f"dies of {chip.die_area_mm2:g} mm2 for the area model's {total:.0f} mm2 of "
                "compute silicon")
    if chip.price_usd is None:  # p
        price = _modelled_price(chip)
        if price is not None:
            put("price_usd", round(price, -1), "modelled manufacturing cost (good dies, HBM, "
                f"package) x a {tech.PRICES.chip_margin:g}x margin, as a searched design's "
                "price (merchant GPUs sell at 3-5x their cost: give price_usd for a part on "
                "sale)")
    return chip, out


def _modelled_price(chip: ChipSpec) -> float | None:
    """Rule p: manufacturing cost x margin, USD; None when a part is unknown."""
    if chip.process_nm is None or chip.die_area_mm2 is None or chip.hbm_gb is None:
        return None
    if int(chip.process_nm) not in tech.NODES:
        return None
    gen = chip.hbm_gen if chip.hbm_gen in tech.HBM else "HBM3"
    try:
        usd = chip_cost.chip_cost_usd(int(chip.process_nm), chip.die_area_mm2, gen,
                                      chip.hbm_gb, chip.hbm_stacks or 0,
                                      n_dies=chip.n_compute_dies or 1)
    except (KeyError, ValueError):
        return None
    return usd * tech.PRICES.chip_margin if math.isfinite(usd) and usd > 0 else None


def _sram_per_unit(vendor: str) -> tuple[float, str] | None:
    """(MB of SRAM per compute unit, which chip it is from) for ``vendor``, or None."""
    if vendor == "NVIDIA":
        return chip_area.TYPICAL_SRAM_MB_PER_UNIT, "H100 SXM: 79.4 MB over 132 SMs"
    ref_id = SRAM_REFERENCE.get(vendor)
    if ref_id is None:
        return None
    ref = get_chip(ref_id)
    if not (ref.sram_mb and ref.compute_units):
        return None
    return ref.sram_mb / ref.compute_units, (f"{ref.name}: {ref.sram_mb:g} MB over "
                                             f"{ref.compute_units} units")


def energy_fallbacks(chip: ChipSpec) -> dict[str, Assumption]:
    """What :func:`codesign.model.chip.power.energy_columns` assumes for ``chip`` where it lacks a
    number
    (it does so silently): ``process_nm`` (4 nm), ``hbm_gen`` (HBM3), ``clock_ghz`` (to work
    out MACs per unit), ``macs_per_unit``, ``silicon_mm2`` (mm², the area model's estimate or
    H100's die) and the bf16 peak that sizes busy power. {} for a fully published chip."""
    out: dict[str, Assumption] = {}
    if chip.process_nm is None or int(chip.process_nm) not in tech.NODES:
        out["process_nm"] = Assumption(4, "energy per operation and leakage of the 4 nm node "
                                       "(process node unpublished)")
    if chip.hbm_gen not in tech.HBM:
        out["hbm_gen"] = Assumption("HBM3", "energy per HBM byte of HBM3 (generation "
                                    "unpublished)")
    if chip_area.macs_per_unit(chip) is None:
        out["macs_per_unit"] = Assumption(chip_area.DEFAULT_MACS_PER_UNIT, "MACs per cycle per "
                                          "unit of H100's SM (units or bf16 peak unpublished)")
    elif chip.clock_ghz is None:
        out["clock_ghz"] = Assumption(chip_area.TYPICAL_CLOCK_GHZ, "typical matrix clock, to work "
                                      "out MACs per unit (clock unpublished)")
    if chip.die_area_mm2 is None:
        area = chip_area.silicon_mm2(chip)
        out["silicon_mm2"] = (
            Assumption(FALLBACK_AREA_MM2, "leakage of H100's 814 mm2 die (area unpublished and "
                       "not predictable)") if area is None else
            Assumption(round(area, 1), "leakage of the area model's estimate (area "
                       "unpublished)"))
    if not chip.tflops_bf16:
        out["tflops_bf16"] = Assumption(FALLBACK_BF16_TFLOPS, "busy power sized on H100's bf16 "
                                        "peak (bf16 peak unpublished)")
    return out


def max_draw_w(chip: ChipSpec, eff: efficiency.Efficiency = efficiency.DEFAULT
               ) -> tuple[float, list[str]] | None:
    """``(watts, fallbacks used)``: the most the model can make ``chip`` draw, W: matmuls at
    the sustained rate of its most power-hungry precision, HBM and every link (scale-up and
    scale-out, both directions) at full bandwidth, busy and leakage power, all from the
    energy columns the kernels use (:func:`codesign.model.chip.power.energy_columns`, fallbacks
    included, named in the list). None without any peak FLOPS or HBM bandwidth."""
    e_fp32, e_bf16, e_fp8, e_fp4, e_hbm, e_link, leak, busy = power.energy_columns(chip)
    energy = {"fp32": e_fp32, "bf16": e_bf16, "fp8": e_fp8, "fp4": e_fp4}
    arith = [(chip.tflops(p) or 0.0) * 1e12 * getattr(eff, _EFF_BY_PRECISION[p]) * energy[p]
             for p in energy]
    if max(arith) <= 0.0 or chip.hbm_tbps is None:
        return None
    links_gb_s = (chip.scaleup_gbps or 0.0) + (chip.scaleout_gbps or 0.0) / 8.0 * 2.0
    watts = (max(arith) + chip.hbm_tbps * 1e12 * e_hbm + links_gb_s * 1e9 * e_link
             + leak + busy)
    notes = [f"{name} {a.value}" for name, a in energy_fallbacks(chip).items()]
    return watts, notes
