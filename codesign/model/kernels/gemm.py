"""Matrix products: one GEMM (:func:`gemm_cost`) and a grouped GEMM of equal-shaped groups
(:func:`grouped_gemm_cost`, the experts of a MoE layer in one launch).

Time = ``max(FLOPs / (peak x eff x util), HBM bytes / (bandwidth x mem_eff))``.

* ``util``: output tiles of ``tm x tn`` (``tn = tile_elems / 128``, ``tile_elems = 16 x MACs
  per unit``: 128x128 for A100's 1024-MAC SM, 128x256 for H100's 2048), each ``k /``
  :data:`K_BLOCK` mainloop steps long; GEMM libraries share these (tile, k-block) work units
  out over the compute units (split-K and stream-K kernels, so a skinny product with a long
  ``k`` still fills the chip), and lose the padding of each dimension's last tile and the
  idle units of the last round of work units (tile and wave quantisation): unit count and
  size matter. ``tm`` is the one of 16, 32, 64, 128 (at least the chip's smallest MMA height
  ``min_tm``: 64 on Hopper's wgmma) that pads ``m`` least (ties: the taller), as GEMM
  libraries pick narrower tiles for skinny products such as decode GEMVs and small-M expert
  GEMMs. Checked against published cuBLAS and DeepGEMM sweeps (codesign/catalog/microbench.csv,
  tests/test_gemm.py).
* HBM bytes: output-stationary square tiles of side ``x = sqrt(sram / (6 el_b))`` (A, B, C
  double-buffered); A is re-read ``n/x`` times and B ``m/x`` times. A grouped GEMM reads each
  group's weights once (the small-M expert GEMMs of MoE layers are weight-bandwidth bound).
"""

from __future__ import annotations

import math

from numba import njit

from codesign.model.kernels import layout as L

K_BLOCK = 64.0
"""Reduction-dimension block of one GEMM mainloop step (CUTLASS's K tile for 16-bit types on
Ampere and Hopper)."""
TILE_ELEMS_PER_MAC = 16.0
"""Output-tile elements per MAC/cycle of a unit: 128x128 for A100's 1024 MAC/SM, 128x256 for
H100's 2048 (CUTLASS default tile shapes for these GPUs)."""


@njit(cache=True)
def tile_elems(chip):
    """Output-tile elements of one compute unit (0 when units or clock are unknown): whole
    MACs per unit (989.4 TFLOP/s / (2 x 132 x 1.83 GHz) = 2047.9 -> 2048) x 16."""
    units = chip[L.C_UNITS]
    if not (units >= 1 and chip[L.C_CLOCK_HZ] > 0):
        return 0.0
    macs = math.floor(chip[L.C_FLOPS_BF16] / (2.0 * units * chip[L.C_CLOCK_HZ]) + 0.5)
    return TILE_ELEMS_PER_MAC * macs


@njit(cache=True)
def tile_height(m, min_tm):
    """Tile height for ``m`` rows: the one of 16, 32, 64, 128 (>= ``min_tm``) that pads ``m``
    least, ties to the taller."""
    tm = 128.0
    padded = math.ceil(m / 128.0) * 128.0
    for cand in (64.0, 32.0, 16.0):
        if cand < min_tm:
            break
        p = math.ceil(m / cand) * cand
        if p < padded:
            padded = p
            tm = cand
    return tm


@njit(cache=True)
def grouped_gemm_cost(groups, m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b,
                      units, tile_elems, min_tm):
    """(seconds, HBM bytes) of ``groups`` GEMMs ``(m x k) @ (k x n)`` in one launch (the
    work of all groups is shared out together). ``m`` may be fractional (a mean over groups:
    it is padded per group). ``groups = 1`` is a plain GEMM."""
    flops = 2.0 * groups * m * k * n
    if flops <= 0.0:
        return 0.0, 0.0  # an empty product (e.g. no dense FFN in an all-MoE model)
    util = 1.0
    if units >= 1.0 and tile_elems >= 128.0:
        tm = tile_height(m, min_tm)
        tn = tile_elems / 128.0
        tiles = groups * math.ceil(m / tm) * math.ceil(n / tn)
        work = tiles * math.ceil(k / K_BLOCK)  # (tile, k-block) work units
        rounds = math.ceil(work / units)
        util = (groups * m * n) / (tiles * tm * tn) * work / (rounds * units)
        if util > 1.0:
            util = 1.0
    t_c = flops / (peak_flops * eff * util)
    x = math.sqrt(sram_b / (6.0 * el_b))
    if x < 1.0:
        x = 1.0
    traffic = groups * el_b * (m * k * max(1.0, n / x) + k * n * max(1.0, m / x) + m * n)
    t_m = traffic / (hbm_bps * mem_eff)
    return max(t_c, t_m), traffic


@njit(cache=True)
def gemm_cost(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units, tile_elems,
              min_tm):
    """(seconds, HBM bytes) of an (m x k) @ (k x n) GEMM (see the module doc)."""
    return grouped_gemm_cost(1.0, m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b,
                             units, tile_elems, min_tm)


@njit(cache=True)
def gemm_time(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units, tile_elems,
              min_tm):
    """Seconds of :func:`gemm_cost`."""
    return gemm_cost(m, k, n, peak_flops, eff, hbm_bps, mem_eff, sram_b, el_b, units,
                     tile_elems, min_tm)[0]
