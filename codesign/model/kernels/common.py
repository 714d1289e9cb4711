"""Helpers every kernel shares: matmul peak and energy by precision, the platform sanity check,
the failure status of a search, and candidate ranges of one mapping field."""

from __future__ import annotations

import numpy as np
from numba import njit

from codesign.model.kernels import layout as L


@njit(cache=True)
def matmul_peak(chip, prec):
    """(dense peak FLOP/s, sustained fraction) of the chip's matmuls at precision index
    ``prec`` (specs.PRECISIONS: fp32, fp16, bf16, fp8, fp4; fp16 runs at the bf16 rate)."""
    if prec == 0:
        return chip[L.C_FLOPS_FP32], chip[L.C_GEMM_EFF]
    if prec <= 2:
        return chip[L.C_FLOPS_BF16], chip[L.C_GEMM_EFF]
    if prec == 3:
        return chip[L.C_FLOPS_FP8], chip[L.C_GEMM_EFF_LOWP]
    return chip[L.C_FLOPS_FP4], chip[L.C_GEMM_EFF_LOWP]


@njit(cache=True)
def energy_per_flop(chip, prec):
    """Joules per matmul FLOP at precision index ``prec`` (fp16 at the bf16 cost)."""
    if prec == 0:
        return chip[L.C_E_FP32]
    if prec <= 2:
        return chip[L.C_E_BF16]
    if prec == 3:
        return chip[L.C_E_FP8]
    return chip[L.C_E_FP4]


@njit(cache=True)
def platform_ok(chip, cluster, prec):
    """The chip and cluster numbers every kernel relies on are sane: positive HBM bandwidth,
    capacity and SRAM; efficiencies in (0, 1] (the GEMM one of precision ``prec``);
    non-negative TDP, kernel time, latencies, host power and energies; PUE and taper >= 1."""
    _, eff_gemm = matmul_peak(chip, prec)
    return (chip[L.C_HBM_BPS] > 0 and chip[L.C_SRAM_B] > 0 and chip[L.C_HBM_B] > 0
            and chip[L.C_TDP_W] >= 0 and chip[L.C_KERNEL_S] >= 0
            and 0 < eff_gemm <= 1 and 0 < chip[L.C_ATTN_EFF] <= 1
            and 0 < chip[L.C_MEM_EFF] <= 1 and 0 < chip[L.C_NET_EFF] <= 1
            and chip[L.C_E_HBM] >= 0 and chip[L.C_E_LINK] >= 0 and chip[L.C_LEAK_W] >= 0
            and chip[L.C_BUSY_W] >= 0 and energy_per_flop(chip, prec) >= 0
            and cluster[L.K_OVERSUB] >= 1 and cluster[L.K_PUE] >= 1
            and cluster[L.K_HOST_W] >= 0 and cluster[L.K_UP_LAT_S] >= 0
            and cluster[L.K_OUT_LAT_S] >= 0)


@njit(cache=True)
def worst_status(counts):
    """Why no candidate was feasible: the limit the closest ones missed (latency, then power:
    they fit everything else), else the most frequent failure (S_NO_CANDIDATE if none)."""
    if counts[L.S_SLO] > 0:
        return L.S_SLO
    if counts[L.S_POWER] > 0:
        return L.S_POWER
    worst = L.S_NO_CANDIDATE
    most = 0
    for s in range(1, L.N_STATUS):
        if counts[s] > most:
            most = counts[s]
            worst = s
    return worst


@njit(cache=True)
def choices(fixed_value, lo, hi, pow2):
    """Candidate values for one mapping field: the fixed value, or a range (powers of 2)."""
    if fixed_value >= 0:
        res = np.empty(1, np.int64)
        res[0] = fixed_value
        return res
    cnt = 0
    v = lo
    while v <= hi:
        cnt += 1
        v = v * 2 if pow2 else v + 1
    res = np.empty(cnt, np.int64)
    v = lo
    for i in range(cnt):
        res[i] = v
        v = v * 2 if pow2 else v + 1
    return res


@njit(cache=True)
def divisors(fixed_value, n, hi, pow2_too):
    """Candidate values for one mapping field that must divide ``n``: the fixed value, or
    the divisors of ``n`` up to ``hi`` ascending (with ``pow2_too``, the powers of 2 up to
    ``hi`` as well, divisors or not). Found in O(sqrt(n)), not by walking every integer."""
    if fixed_value >= 0:
        res = np.empty(1, np.int64)
        res[0] = fixed_value
        return res
    if n < 1 or hi < 1:
        return np.empty(0, np.int64)
    small = np.empty(64, np.int64)  # divisors <= sqrt(n): at most 2 sqrt(n), grown below
    large = np.empty(64, np.int64)
    ns = 0
    nl = 0
    d = 1
    while d * d <= n:
        if n % d == 0:
            if ns == small.shape[0]:
                small = np.concatenate((small, np.empty(ns, np.int64)))
                large = np.concatenate((large, np.empty(ns, np.int64)))
            small[ns] = d
            ns += 1
            if d * d != n:
                large[nl] = n // d
                nl += 1
        d += 1
    cnt = 0
    out = np.empty(ns + nl + 64, np.int64)
    i = 0
    j = nl - 1
    p = 1
    while True:  # merge the divisors ascending (small up, large down) with the powers of 2
        v = small[i] if i < ns else (large[j] if j >= 0 else -1)
        if pow2_too and p <= hi and (v < 0 or p < v):
            out[cnt] = p
            cnt += 1
            p *= 2
            continue
        if v < 0 or v > hi:
            break
        if not (pow2_too and v == p):
            out[cnt] = v
            cnt += 1
        else:
            p *= 2
            out[cnt] = v
            cnt += 1
        if i < ns:
            i += 1
        else:
            j -= 1
    return out[:cnt].copy()
