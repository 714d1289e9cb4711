"""The resources and area of a catalog chip from what its datasheet publishes: MACs per unit
worked back from the bf16 peak, units and clock (:func:`macs_per_unit`), SRAM assumed where
unpublished (:func:`with_assumed_sram`), the arguments of the area model
(:func:`chip_resources`), the predicted area (:func:`predict_area`) and the compute silicon
(:func:`silicon_mm2`). Used by the power model (leakage scales with silicon) and by the
hardware table (:mod:`codesign.validate.hardware`), neither of which this module imports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from codesign.model import tech
from codesign.model.chip import area as area_model
from codesign.model.specs import ChipSpec

TYPICAL_CLOCK_GHZ = 1.8
"""Clock assumed for chips whose datasheet gives peak FLOPS but no clock (to estimate MACs per
unit): the typical matrix clock of 4-5 nm accelerators (H100 1.83, MI300X 2.1 GHz)."""

DEFAULT_MACS_PER_UNIT = 2048.0
"""MACs per cycle per unit assumed when a chip's units or clock are unknown (H100's SM)."""

TYPICAL_SRAM_MB_PER_UNIT = 79.4 / 132
"""On-chip SRAM per compute unit assumed for chips whose datasheet gives none (B200): H100's
79.4 MB (50 MB L2 + 132 x 228 KB shared memory, chips.csv) over its 132 SMs, MB."""


CHIPLET_IO_SRAM_MB = {"mi300x": 256.0, "mi325x": 256.0, "mi355x": 256.0}
"""Chips whose compute dies (XCDs) sit on separate I/O dies that hold the HBM PHYs, the
Infinity Fabric links and this much of the catalog's ``sram_mb`` (the 256 MB AMD Infinity
Cache: AMD CDNA 3 white paper for MI300X/MI325X, CDNA 4 white paper for MI355X). Their
predicted compute die is units / dies with the rest of the SRAM and no PHYs, plus the
die-to-die share (:data:`codesign.model.tech.D2D_AREA_FRACTION`)."""

SHARED_PORT_CHIPS = ("gaudi3", "maia100")
"""Chips whose scale-up and scale-out use the same Ethernet ports (data README): their
SerDes is the larger of the two figures, not the sum."""


# --------------------------------------------------------------------------- resources


def with_assumed_sram(chip: ChipSpec) -> tuple[ChipSpec, str]:
    """``(chip, note)``: a chip whose datasheet gives no SRAM gets
    :data:`codesign.TYPICAL_SRAM_MB_PER_UNIT` per compute unit, and the note says so
    ("" and the chip itself when its SRAM is published or its units unknown)."""
    if chip.sram_mb is not None or chip.compute_units is None:
        return chip, ""
    chip = replace(chip, sram_mb=TYPICAL_SRAM_MB_PER_UNIT * chip.compute_units)
    return chip, (f"SRAM {chip.sram_mb:.0f} MB assumed (unpublished: H100's "
                  f"{TYPICAL_SRAM_MB_PER_UNIT:.2f} MB per unit)")


def chip_resources(chip: ChipSpec) -> tuple[dict[str, Any] | None, list[str], str]:
    """``(resources, assumptions, reason)``: the keyword arguments of
    :func:`codesign.model.chip.area.area_breakdown_mm2` for one compute die's worth of a
    catalog chip's published resources (plus ``n_dies``, the published compute-die count or
    None), the assumptions made, and why there are none ("" when there are)."""
    missing = [name for name in ("process_nm", "compute_units", "tflops_bf16")
               if getattr(chip, name) is None]
    if missing:
        return None, [], f"unknown: {', '.join(missing)}"
    chip, note = with_assumed_sram(chip)
    assumptions = [note] if note else []
    if int(chip.process_nm) not in tech.NODES or int(chip.process_nm) != chip.process_nm:
        return None, assumptions, (f"process {chip.process_nm:g} nm not in tech.NODES "
                          f"{sorted(tech.NODES)}")
    if not chip.tflops_bf16 or not chip.compute_units:
        return None, assumptions, "no bf16 peak or compute units"
    clock = chip.clock_ghz
    if clock is None:
        clock = TYPICAL_CLOCK_GHZ
        assumptions.append(f"clock {TYPICAL_CLOCK_GHZ} GHz assumed (unpublished)")
    macs = macs_per_unit(chip)
    vector = None
    if chip.tflops_fp32:
        vector = chip.tflops_fp32 * 1e12 / (chip.compute_units * clock * 1e9)
    else:
        assumptions.append("vector fp32 rate = 1/16 of bf16 (unpublished)")
    io_sram = CHIPLET_IO_SRAM_MB.get(chip.id)
    if io_sram is not None:
        if not chip.n_compute_dies:
            return None, assumptions, "unknown: n_compute_dies"
        n = chip.n_compute_dies
        assumptions.append(f"compute die = 1 of {n} XCDs; {io_sram:g} MB Infinity Cache, HBM "
                           "and link PHYs on the I/O dies")
        res = {"process_nm": chip.process_nm, "compute_units": chip.compute_units / n,
               "macs_per_unit": macs, "sram_mb": (chip.sram_mb - io_sram) / n,
               "hbm_gen": "HBM3", "hbm_stacks": 0, "serdes_gbps_one_way": 0.0,
               "vector_flops_per_cycle_per_unit": vector, "n_dies": n, "chiplet": True}
        return res, assumptions, ""
    gen = chip.hbm_gen
    if chip.hbm_stacks is None or gen is None:
        return None, assumptions, "unknown: " + ", ".join(
            n for n, v in (("hbm_gen", gen), ("hbm_stacks", chip.hbm_stacks)) if v is None)
    if chip.hbm_stacks > 0 and gen not in tech.HBM:
        return None, assumptions, f"HBM generation {gen!r} not in tech.HBM"
    up = (chip.scaleup_gbps or 0.0) * 8 / 2  # bidirectional GB/s -> one-way Gbit/s
    out = chip.scaleout_gbps or 0.0
    if chip.scaleup_gbps is None:
        assumptions.append("no scale-up SerDes (unpublished)")
    serdes = max(up, out) if chip.id in SHARED_PORT_CHIPS else up + out
    res = {"process_nm": chip.process_nm, "compute_units": chip.compute_units,
           "macs_per_unit": macs, "sram_mb": chip.sram_mb,
           "hbm_gen": gen if gen in tech.HBM else "HBM3", "hbm_stacks": chip.hbm_stacks,
           "serdes_gbps_one_way": serdes, "vector_flops_per_cycle_per_unit": vector,
           "n_dies": chip.n_compute_dies, "chiplet": False}
    return res, assumptions, ""


def area_args(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("n_dies", "chiplet")}


def predict_area(chip: ChipSpec) -> dict[str, Any]:
    """Predicted area of a catalog chip: ``predicted_die_area_mm2`` (one compute die, split
    into the published number of dies when it is known, else the model's own split),
    ``predicted_n_dies`` (the model's reticle split), ``total_mm2``, ``max_hbm_stacks``,
    ``assumptions`` and ``reason`` (why there is no prediction)."""
    out: dict[str, Any] = {"predicted_die_area_mm2": None, "predicted_n_dies": None,
                           "total_mm2": None, "max_hbm_stacks": None}
    res, assumptions, reason = chip_resources(chip)
    out["assumptions"] = "; ".join(assumptions)
    out["reason"] = reason
    if res is None:
        return out
    area = area_model.compute_area_mm2(**area_args(res))
    if res["chiplet"]:
        die = area * (1.0 + tech.D2D_AREA_FRACTION)
        out.update(predicted_die_area_mm2=die, predicted_n_dies=res["n_dies"],
                   total_mm2=area * res["n_dies"])
        return out
    n_model, die_model = area_model.split_dies(area)
    n_pub = res["n_dies"]
    if n_pub and n_pub != n_model:
        die = area if n_pub == 1 else area * (1.0 + tech.D2D_AREA_FRACTION) / n_pub
        note = ("kept as the published single die" if n_pub == 1
                else f"split into the published {n_pub} dies")
        out["assumptions"] = "; ".join([*assumptions, f"{note} (model's reticle split: "
                                        f"{n_model})"])
    else:
        die = die_model
    n_used = n_pub or n_model
    out.update(predicted_die_area_mm2=die, predicted_n_dies=n_model, total_mm2=area)
    if res["hbm_stacks"]:
        out["max_hbm_stacks"] = area_model.max_hbm_stacks(die, n_used, res["hbm_gen"])
    return out


def macs_per_unit(chip: ChipSpec) -> float | None:
    """MACs per cycle of one compute unit, from peak bf16, units and clock (typical clock if
    the datasheet gives none); None without units or bf16 peak."""
    if not (chip.compute_units and chip.tflops_bf16):
        return None
    clock = chip.clock_ghz or TYPICAL_CLOCK_GHZ
    return chip.tflops_bf16 * 1e12 / (2.0 * chip.compute_units * clock * 1e9)


def silicon_mm2(chip: ChipSpec) -> float | None:
    """Compute-die silicon of a catalog chip, mm^2: published die area x dies, else the area
    model's estimate from its resources (:func:`predict_area`: chiplet I/O
    dies and shared ports handled there); None if neither is possible."""
    if chip.die_area_mm2 is not None:
        return chip.die_area_mm2 * (chip.n_compute_dies or 1)
    return predict_area(chip)["total_mm2"]
