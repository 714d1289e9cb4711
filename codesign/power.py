"""First power estimate: a design's TDP from what it can do at full speed.

``TDP = peak bf16 FLOP/s x energy per FLOP + HBM bandwidth x energy per bit
      + link bandwidth x energy per bit + leakage and uncore per mm^2``.
The per-mapping chip power (TDP x activity) lives in the training kernel. Issue 5 replaces this
with a calibrated per-operation energy model; every value here is an estimate and says so.
"""

from __future__ import annotations

PJ_PER_BF16_FLOP = {7: 0.80, 5: 0.56, 4: 0.50, 3: 0.40, 2: 0.32}
"""Energy per dense bf16 FLOP including operand delivery, pJ. Estimate: anchored on A100 (N7,
312 TFLOP/s in a 400 W budget) and H100 (N4, 989 TFLOP/s in 700 W) after HBM, links and leakage,
scaled across nodes by TSMC's published iso-speed power reductions (N7->N5 -30 %,
N5->N3 -25-30 %, N3->N2 -25 %)."""

HBM_PJ_PER_BIT = {"HBM2": 3.9, "HBM2e": 3.7, "HBM3": 3.5, "HBM3e": 3.2, "HBM4": 2.8}
"""HBM access energy incl. PHY, pJ/bit. HBM2 3.9 pJ/bit: O'Connor et al., MICRO 2017
("Fine-Grained DRAM"); later generations: estimate (~5-10 % better per generation)."""

LINK_PJ_PER_BIT = 5.0
"""Long-reach 100G-class SerDes energy, pJ/bit (estimate from published 112G SerDes, 4-6)."""

UNCORE_W_PER_MM2 = 0.10
"""Leakage, clocks and uncore per mm^2 of die, W (estimate: ~80 W on an 814 mm^2 H100)."""


def estimate_tdp_w(
    process_nm: float,
    peak_bf16_tflops: float,
    hbm_gen: str,
    hbm_tbps: float,
    link_gbps_total: float,
    die_area_mm2: float,
) -> float:
    """Thermal design power of a design, W.

    ``link_gbps_total`` is the sum of scale-up (bidirectional GB/s) and scale-out bandwidth in
    GB/s; ``hbm_tbps`` is the HBM bandwidth in TB/s.
    """
    e_flop = PJ_PER_BF16_FLOP[int(process_nm)] * 1e-12
    compute_w = peak_bf16_tflops * 1e12 * e_flop
    hbm_w = hbm_tbps * 1e12 * 8 * HBM_PJ_PER_BIT[hbm_gen] * 1e-12
    link_w = link_gbps_total * 1e9 * 8 * LINK_PJ_PER_BIT * 1e-12
    return compute_w + hbm_w + link_w + UNCORE_W_PER_MM2 * die_area_mm2
