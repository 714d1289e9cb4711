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

Example:
    >>> from codesign.model.catalog import get_chip
    >>> chip, assumed = fill_unknowns(get_chip("h800"))
    >>> assumed["sram_mb"], chip.scaleup_gbps  # H100's SRAM; its own 400 GB/s NVLink kept
    (79.4, 400.0)
    >>> fill_unknowns(get_chip("h100-sxm"))[1]
    {}
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from codesign.model import efficiency, tech
from codesign.model.catalog import get_chip
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
