"""Predicted vs published die area and TDP of the catalog chips (``codesign validate
--hardware``), and the least-squares fit of the area constants in :mod:`codesign.cost`.

The area of a catalog chip is predicted from its published resources only: node, compute
units, MACs per unit (worked back from the bf16 peak, units and clock), vector rate, SRAM,
HBM generation and stacks, link bandwidth. Assumptions (an unknown clock, a chiplet layout)
are stated in each row's ``assumptions``; a chip without the resources gets ``None`` and a
``reason``. TDP is the sustained peak of :func:`codesign.power.tdp_parts_from_chip`.

Example:
    >>> rows = {r["id"]: r for r in hardware_table()}
    >>> rows["h100-sxm"]["die_area_mm2"], round(rows["h100-sxm"]["predicted_die_area_mm2"])
    (814.0, 814)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from codesign import catalog, cost, power, tech
from codesign.specs import ChipSpec

GATE_CHIPS = ("h100-sxm", "b200", "mi300x", "tpu-v5p", "maia100", "gaudi3")
"""The chips issue 5 asks to be within :data:`GATE_PCT` of published die area and TDP (where
the catalog has the published value)."""
GATE_PCT = 20.0

FIT_CHIPS = ("a100-sxm-80gb", "h100-sxm")
"""Chips the area constants are fitted on: published single-die area, units, clock and bf16
peak all known. Left out: H200 (the H100 die again), Maia 100 (clock unknown: checked, not
fitted), MI355X (its XCD holds no HBM/link PHYs: checked, not fitted), WSE-3 (wafer-scale,
no clock or peak)."""


CHIPLET_IO_SRAM_MB = {"mi300x": 256.0, "mi325x": 256.0, "mi355x": 256.0}
"""Chips whose compute dies (XCDs) sit on separate I/O dies that hold the HBM PHYs, the
Infinity Fabric links and this much of the catalog's ``sram_mb`` (the 256 MB AMD Infinity
Cache: AMD CDNA 3 white paper for MI300X/MI325X, CDNA 4 white paper for MI355X). Their
predicted compute die is units / dies with the rest of the SRAM and no PHYs, plus the
die-to-die share (:data:`codesign.tech.D2D_AREA_FRACTION`)."""

SHARED_PORT_CHIPS = ("gaudi3", "maia100")
"""Chips whose scale-up and scale-out use the same Ethernet ports (data README): their
SerDes is the larger of the two figures, not the sum."""


# --------------------------------------------------------------------------- resources


def with_assumed_sram(chip: ChipSpec) -> tuple[ChipSpec, str]:
    """``(chip, note)``: a chip whose datasheet gives no SRAM gets
    :data:`codesign.power.TYPICAL_SRAM_MB_PER_UNIT` per compute unit, and the note says so
    ("" and the chip itself when its SRAM is published or its units unknown)."""
    if chip.sram_mb is not None or chip.compute_units is None:
        return chip, ""
    chip = replace(chip, sram_mb=power.TYPICAL_SRAM_MB_PER_UNIT * chip.compute_units)
    return chip, (f"SRAM {chip.sram_mb:.0f} MB assumed (unpublished: H100's "
                  f"{power.TYPICAL_SRAM_MB_PER_UNIT:.2f} MB per unit)")


def chip_resources(chip: ChipSpec) -> tuple[dict[str, Any] | None, list[str], str]:
    """``(resources, assumptions, reason)``: the keyword arguments of
    :func:`codesign.cost.area_breakdown_mm2` for one compute die's worth of a catalog chip's
    published resources (plus ``n_dies``, the published compute-die count or None), the
    assumptions made, and why there are none ("" when there are)."""
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
        clock = power.TYPICAL_CLOCK_GHZ
        assumptions.append(f"clock {power.TYPICAL_CLOCK_GHZ} GHz assumed (unpublished)")
    macs = power.macs_per_unit(chip)
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


def _area_args(res: dict[str, Any]) -> dict[str, Any]:
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
    area = cost.compute_area_mm2(**_area_args(res))
    if res["chiplet"]:
        die = area * (1.0 + tech.D2D_AREA_FRACTION)
        out.update(predicted_die_area_mm2=die, predicted_n_dies=res["n_dies"],
                   total_mm2=area * res["n_dies"])
        return out
    n_model, die_model = cost.split_dies(area)
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
        out["max_hbm_stacks"] = cost.max_hbm_stacks(die, n_used, res["hbm_gen"])
    return out


def _error_pct(predicted: float | None, published: float | None) -> float | None:
    if predicted is None or not published:
        return None
    return 100.0 * (predicted - published) / published


def hardware_table(chips: Iterable[ChipSpec] | None = None) -> list[dict[str, Any]]:
    """One row per catalog chip (default: all of them, in catalog order): published and
    predicted die area (mm^2, one compute die) and TDP (W), error % = 100 (pred - pub) / pub,
    die counts, the HBM shoreline, ``clock_at_tdp`` (the fraction of its peak clock at which
    the chip's predicted sustained peak fits its published TDP, :func:`codesign.power.
    clock_at_power`: 1 when it fits at peak), assumptions and the reason for each missing
    prediction. Unknown values are None."""
    rows = []
    for chip in catalog.chips() if chips is None else chips:
        area = predict_area(chip)
        parts = power.tdp_parts_from_chip(chip)  # (leakage, dynamic, memory) W
        tdp = sum(parts) if parts is not None else None
        reasons = [f"area: {area['reason']}" if area["reason"] else "",
                   "tdp: power model lacks resources" if parts is None else ""]
        rows.append({
            "id": chip.id,
            "process_nm": chip.process_nm,
            "die_area_mm2": chip.die_area_mm2,
            "predicted_die_area_mm2": area["predicted_die_area_mm2"],
            "die_area_error_pct": _error_pct(area["predicted_die_area_mm2"], chip.die_area_mm2),
            "n_compute_dies": chip.n_compute_dies,
            "predicted_n_dies": area["predicted_n_dies"],
            "total_silicon_mm2": area["total_mm2"],
            "hbm_stacks": chip.hbm_stacks,
            "max_hbm_stacks": area["max_hbm_stacks"],
            "tdp_w": chip.tdp_w,
            "predicted_tdp_w": tdp,
            "tdp_error_pct": _error_pct(tdp, chip.tdp_w),
            "clock_at_tdp": (power.clock_at_power(parts, chip.tdp_w)
                             if parts is not None and chip.tdp_w else None),
            "assumptions": area["assumptions"],
            "reason": "; ".join(r for r in reasons if r),
        })
    return rows


def gate_summary(rows: list[dict[str, Any]], ids: Iterable[str] = GATE_CHIPS,
                 pct: float = GATE_PCT) -> dict[str, Any]:
    """Among the chips ``ids``: for area and TDP, how many have both a published and a
    predicted value (``compared``), how many are within ``pct`` % (``within``), and the ids
    with nothing to compare (``not_compared``)."""
    by_id = {r["id"]: r for r in rows}
    out: dict[str, Any] = {"chips": list(ids), "pct": pct}
    for key, err in (("die_area", "die_area_error_pct"), ("tdp", "tdp_error_pct")):
        compared = [i for i in ids if i in by_id and by_id[i][err] is not None]
        out[key] = {
            "compared": len(compared),
            "within": sum(abs(by_id[i][err]) <= pct for i in compared),
            "not_compared": [i for i in ids if i not in compared],
        }
    return out


# --------------------------------------------------------------------------- the fit


def fit_area_constants(chip_ids: Iterable[str] = FIT_CHIPS) -> dict[str, Any]:
    """Least-squares fit of :data:`codesign.cost.MAC_MM2_N7` and
    :data:`codesign.cost.UNIT_MM2_N7` on published die areas (relative errors weighted
    equally). Returns ``{"mac_mm2_n7", "unit_mm2_n7", "chips", "residual_pct"}``.

    The area is linear in the two constants, so the fit is exact: evaluate the model with
    (MAC, unit) = (1, 0) and (0, 1) and (0, 0) to get the design matrix.
    """
    ids = list(chip_ids)
    rows, target = [], []
    for chip_id in ids:
        chip = catalog.get_chip(chip_id)
        res, _, reason = chip_resources(chip)
        if res is None or not chip.die_area_mm2 or chip.n_compute_dies != 1:
            raise ValueError(f"chip {chip_id!r} cannot be fitted: {reason or 'no single die'}")
        args = _area_args(res)
        base = cost.compute_area_mm2(**args, mac_mm2_n7=0.0, unit_mm2_n7=0.0)
        per_mac = cost.compute_area_mm2(**args, mac_mm2_n7=1.0, unit_mm2_n7=0.0) - base
        per_unit = cost.compute_area_mm2(**args, mac_mm2_n7=0.0, unit_mm2_n7=1.0) - base
        rows.append([per_mac / chip.die_area_mm2, per_unit / chip.die_area_mm2])
        target.append((chip.die_area_mm2 - base) / chip.die_area_mm2)
    (mac, unit), *_ = np.linalg.lstsq(np.array(rows), np.array(target), rcond=None)
    residuals = {}
    for chip_id in ids:
        chip = catalog.get_chip(chip_id)
        res, _, _ = chip_resources(chip)
        assert res is not None and chip.die_area_mm2
        pred = cost.compute_area_mm2(**_area_args(res), mac_mm2_n7=float(mac),
                                     unit_mm2_n7=float(unit))
        residuals[chip_id] = 100.0 * (pred - chip.die_area_mm2) / chip.die_area_mm2
    if not (math.isfinite(mac) and math.isfinite(unit)):
        raise RuntimeError("area fit produced a non-finite constant")
    return {"mac_mm2_n7": float(mac), "unit_mm2_n7": float(unit), "chips": ids,
            "residual_pct": residuals}
