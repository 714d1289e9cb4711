"""Power from what the chip does: energy per FLOP, per HBM byte and per link byte, plus leakage.

The kernels charge every step (training) or serving cycle with the FLOPs it executes at its
precision, the HBM bytes it moves and the link bytes it sends, and add leakage; that is the
chip's power for that workload (:func:`energy_columns` feeds them). A design's TDP is its
sustained peak: GEMMs at the calibrated sustained rate with HBM and links at a typical duty
(:func:`tdp_w`). A workload over a design's TDP is infeasible (status S_POWER); a shipping
chip (``ChipSpec.throttles``) lowers its clock until it fits instead (DVFS, in the kernels;
:func:`clock_at_power` applies the same law to the sustained peak).

Energy per FLOP (16-bit) at node ``n`` for a compute unit of ``M`` MACs per cycle:
``E = energy_vs_n7(n) x (E_MAC_N7 + E_OPERAND_N7 x sqrt(1024 / M))``: the arithmetic, plus
operand delivery from register files and SRAM, which larger MAC arrays amortise over more
MACs per operand fetched (systolic/outer-product reuse grows with the array side). The two
constants are fitted to published TDPs (``scripts/calibrate_power.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from codesign.model import tech
from codesign.model.chip.datasheet import DEFAULT_MACS_PER_UNIT, macs_per_unit, silicon_mm2
from codesign.model.specs import ChipSpec

E_MAC_N7_PJ = 0.20
E_OPERAND_N7_PJ = 0.167
"""pJ per 16-bit FLOP at N7: arithmetic, and operand delivery for a 1,024-MAC unit (0.37 pJ
per FLOP for an A100-class unit at N7; the clocks and control that run with them are
:data:`BUSY_FRACTION`). Fitted jointly with BUSY_FRACTION by scripts/calibrate_power.py on
(a) the steady-state serving power of H100 in calibration.csv (every MLE3-*-chipw row, batch
8 to 1024: +10, -8, -14, -13 % for Llama 3.1 8B; +14, +2, -11, -17 % for 70B; +18, -9, -25 %
for 405B-FP8; -36 % for Qwen3-235B-A22B-FP8) and (b) the published TDPs of the 9 catalog
chips with the resources to predict one (B200's SRAM is assumed, TPUs' nodes are unknown):
A100 +5/+4 %, H100 0 %, H200 +2 %, Gaudi 3 +7 %, MI325X +12 %, MI355X -14 %, Maia 100 -16 %,
MI300X +52 %, B200 +40 % (joint mean absolute log error 0.150). The model's power rises too
little with the batch: a compute-heavy large batch draws more than busy power plus 0.2-0.4 pJ
per FLOP, which the TDPs do not allow. MI300X and MI325X share silicon and peak FLOPS but are
rated 750 W and 1000 W: a TDP is partly the vendor's power limit, which no resource-based
model reproduces."""

PRECISION_ENERGY = {"fp32": 3.0, "fp16": 1.0, "bf16": 1.0, "fp8": 0.55, "fp4": 0.35}
"""Energy per FLOP relative to 16-bit. fp32: ~3x (Horowitz, ISSCC 2014: 32-bit FP multiply
3.7 pJ vs 16-bit 1.1 pJ at 45 nm); fp8 and fp4: estimates (narrower multipliers, half or a
quarter of the operand bytes, same accumulators)."""

BUSY_FRACTION = 2.75
"""Clock tree, control and uncore power while kernels run, whatever they compute, as a
multiple of the chip's sustained-GEMM arithmetic power (the same clocks drive the matrix
units it feeds). Calibrated with the energy constants by scripts/calibrate_power.py (see
:data:`E_OPERAND_N7_PJ`): decode at batch 8 does few FLOPs, so the power beyond weight
streaming and leakage is this term."""

TDP_GEMM_FRACTION = 0.764
"""Fraction of dense bf16 peak the GEMMs of the sustained peak that sets a TDP run at (the
calibrated large-GEMM efficiency when the energy constants were fitted; kept fixed so that a
refit of the software stack, codesign.model.efficiency, does not move the power model)."""

TDP_MEMORY_DUTY = 0.5
"""Share of peak HBM and link bandwidth in use at the sustained peak that sets TDP (a GEMM
burn keeps the matrix units saturated and streams memory at part rate; estimate)."""

PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "fp4")


def energy_per_flop_j(process_nm: float, macs_per_unit: float, precision: str) -> float:
    """Joules per matmul FLOP, operand delivery included."""
    node = tech.NODES[int(process_nm)]
    base = E_MAC_N7_PJ + E_OPERAND_N7_PJ * math.sqrt(1024.0 / max(macs_per_unit, 1.0))
    return node.energy_vs_n7 * base * PRECISION_ENERGY[precision] * 1e-12


def operand_share(macs_per_unit: float) -> float:
    """Share of the energy per FLOP that is operand traffic from SRAM and register files into
    the MAC arrays (the rest is the arithmetic). A sqrt(M) x sqrt(M) array reads 2 sqrt(M)
    operands per M MACs, so SRAM bytes per FLOP = bytes per element / sqrt(M): at M = 1,024
    and 16 bits, 1/16 byte per FLOP, which at the fitted E_OPERAND_N7_PJ (0.2 pJ per FLOP)
    is 3.2 pJ per byte (0.4 pJ/bit) at N7, register files and operand networks included."""
    operand = E_OPERAND_N7_PJ * math.sqrt(1024.0 / max(macs_per_unit, 1.0))
    total = E_MAC_N7_PJ + operand
    return operand / total if total > 0 else 0.0


def power_parts_w(kernel_w: Sequence[float], macs_per_unit: float) -> dict[str, float]:
    """The parts of :data:`codesign.model.specs.POWER_PARTS`, W, from a kernel's five power outputs
    (compute, HBM, links, clocks and control, leakage: ``O_W_*`` / ``IO_W_*``), the compute
    split into arithmetic and SRAM operand traffic by :func:`operand_share`; same sum."""
    compute, hbm, links, clocks, leakage = (float(w) for w in kernel_w)
    share = operand_share(macs_per_unit)
    return {"arithmetic": compute * (1.0 - share), "sram_operands": compute * share,
            "hbm": hbm, "links": links, "clocks_control": clocks, "leakage": leakage}


def hbm_j_per_byte(hbm_gen: str) -> float:
    """Joules per byte to or from HBM (DRAM core + PHY)."""
    return tech.HBM[hbm_gen].pj_per_bit * 8e-12


LINK_J_PER_BYTE = tech.SERDES_PJ_PER_BIT * 8e-12
"""Joules per byte sent over a SerDes link."""


def gemm_power_w(process_nm: float, peak_bf16_tflops: float, macs: float) -> float:
    """Arithmetic power of bf16 GEMMs at the calibrated sustained fraction of peak, W."""
    return (peak_bf16_tflops * 1e12 * TDP_GEMM_FRACTION
            * energy_per_flop_j(process_nm, macs, "bf16"))


def busy_w(process_nm: float, peak_bf16_tflops: float, macs: float) -> float:
    """Clock and control power while kernels run, W (:data:`BUSY_FRACTION`)."""
    return BUSY_FRACTION * gemm_power_w(process_nm, peak_bf16_tflops, macs)


def leakage_w(process_nm: float, silicon_mm2: float) -> float:
    """Static power of ``silicon_mm2`` of compute-die silicon, W."""
    return tech.NODES[int(process_nm)].leakage_w_per_mm2 * silicon_mm2


def tdp_parts_w(process_nm: float, peak_bf16_tflops: float, macs: float, hbm_gen: str,
                hbm_tbps: float, link_gbps_bidir: float, silicon_mm2: float
                ) -> tuple[float, float, float]:
    """(leakage, clock-domain dynamic power, HBM + links) at the sustained peak, W: the parts
    of :func:`tdp_w` that scale differently with the clock (:func:`clock_at_power`)."""
    gemm = gemm_power_w(process_nm, peak_bf16_tflops, macs)
    memory = TDP_MEMORY_DUTY * (hbm_tbps * 1e12 * hbm_j_per_byte(hbm_gen)
                                + link_gbps_bidir * 1e9 * LINK_J_PER_BYTE)
    return leakage_w(process_nm, silicon_mm2), (1.0 + BUSY_FRACTION) * gemm, memory


def tdp_w(process_nm: float, peak_bf16_tflops: float, macs: float, hbm_gen: str,
          hbm_tbps: float, link_gbps_bidir: float, silicon_mm2: float) -> float:
    """Sustained-peak power, W: leakage + busy power + bf16 GEMMs at the calibrated sustained
    fraction of peak + HBM and links at :data:`TDP_MEMORY_DUTY` of their bandwidth.

    ``hbm_tbps`` in TB/s; ``link_gbps_bidir`` the chip's scale-up + scale-out bandwidth in
    GB/s, both directions; ``silicon_mm2`` all compute dies.
    """
    return sum(tdp_parts_w(process_nm, peak_bf16_tflops, macs, hbm_gen, hbm_tbps,
                           link_gbps_bidir, silicon_mm2))


def power_at_clock_w(parts: tuple[float, float, float], s: float) -> float:
    """Sustained-peak power at ``s`` x the peak clock, W, from :func:`tdp_parts_w`'s parts,
    with the kernels' DVFS law (:func:`codesign.model.kernels.train.at_clock`: voltage
    ``v = voltage(s)``, leakage x v, clock-domain power x s v^2)."""
    leak, dynamic, memory = parts
    from codesign.model.kernels.dvfs import voltage  # numba: imported when first used

    v = float(voltage(s))
    return leak * v + dynamic * s * v * v + memory


def clock_at_power(parts: tuple[float, float, float], limit_w: float) -> float | None:
    """Highest clock, as a fraction of peak (at most 1), at which the sustained peak of
    :func:`tdp_parts_w` stays within ``limit_w``; None if even :data:`CLOCK_FLOOR` does not."""
    from codesign.model.kernels.dvfs import CLOCK_FLOOR

    if power_at_clock_w(parts, 1.0) <= limit_w:
        return 1.0
    if power_at_clock_w(parts, CLOCK_FLOOR) > limit_w:
        return None
    lo, hi = CLOCK_FLOOR, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if power_at_clock_w(parts, mid) <= limit_w else (lo, mid)
    return lo


def tdp_parts_from_chip(chip: ChipSpec) -> tuple[float, float, float] | None:
    """:func:`tdp_parts_w` of a catalog chip from its published resources (None if they are
    not enough: node, bf16 peak, units, HBM generation and bandwidth)."""
    macs = macs_per_unit(chip)
    area = silicon_mm2(chip)
    if (macs is None or area is None or chip.hbm_gen not in tech.HBM or chip.hbm_tbps is None
            or chip.process_nm is None or int(chip.process_nm) not in tech.NODES):
        return None
    links = (chip.scaleup_gbps or 0.0) + (chip.scaleout_gbps or 0.0) / 8.0 * 2.0
    return tdp_parts_w(chip.process_nm, chip.tflops_bf16, macs, chip.hbm_gen, chip.hbm_tbps,
                       links, area)


def tdp_w_from_chip(chip: ChipSpec) -> float | None:
    """Predicted TDP (sustained peak at the published clock) of a catalog chip from its
    published resources (None if they are not enough, see :func:`tdp_parts_from_chip`)."""
    parts = tdp_parts_from_chip(chip)
    return None if parts is None else sum(parts)


def energy_columns(chip: ChipSpec) -> tuple[float, ...]:
    """(J/FLOP fp32, bf16, fp8, fp4, J per HBM byte, J per link byte, leakage W, busy W) for
    the kernels.

    Chips whose node, MACs per unit or area are unknown get H100-class values scaled by
    nothing (their power is then only indicative)."""
    node = chip.process_nm if chip.process_nm is not None and int(chip.process_nm) in \
        tech.NODES else 4
    macs = macs_per_unit(chip) or DEFAULT_MACS_PER_UNIT
    area = silicon_mm2(chip) or 814.0
    gen = chip.hbm_gen if chip.hbm_gen in tech.HBM else "HBM3"
    e = [energy_per_flop_j(node, macs, p) for p in ("fp32", "bf16", "fp8", "fp4")]
    peak = chip.tflops_bf16 if chip.tflops_bf16 else 989.4
    return (e[0], e[1], e[2], e[3], hbm_j_per_byte(gen), LINK_J_PER_BYTE,
            leakage_w(node, area), busy_w(node, peak, macs))
