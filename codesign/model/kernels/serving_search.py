"""The best serving configuration under traffic (:func:`serve_search`): the mapping of the
one pool and its prefill chunk, or the mappings of disaggregated prefill and decode pools and
the split of the chips between them, by goodput (:mod:`.serving`); and the same for a
population of designs in parallel (:func:`serve_search_population`).

Every decode replica batches as many sequences as its memory holds (up to
:data:`~.infer.MAX_BATCH`): at a given rate the batch is what the load brings (Little's law),
so a larger limit only adds capacity. Disaggregated pools are chosen as DistServe places them
(Zhong et al., OSDI 2024, section 4): the prefill mapping with the most prompts/s per chip
whose own prefill of a prompt at the percentile length fits the TTFT limit, the decode mapping
with the most requests/s per chip at the largest batch whose step fits the ITL limit, then
every split of the chips in whole replicas (up to :data:`MAX_SPLITS`), scored by goodput.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from codesign.model.kernels import layout as L
from codesign.model.kernels.common import choices, worst_status
from codesign.model.kernels.infer import MAX_BATCH, MAX_PP, kv_room, memory_per_chip
from codesign.model.kernels.queueing import lognormal_quantile, spec_low_tokens, spec_tokens
from codesign.model.kernels.serving import (
    MAX_LOAD,
    PRIM_LEN,
    decode_prims,
    prefill_prims,
    serve_eval,
)

CHUNKS = np.array([0.0, 256.0, 512.0, 1024.0, 2048.0])
"""Prefill chunks a co-located pool may use (0: whole prompts), tokens per step."""
MAX_SPLITS = 32
"""Splits of the chips between prefill and decode tried (evenly spaced, whole replicas)."""


@njit(cache=True)
def _largest_batch(chip, model, job, tp, pp, ep):
    """The most sequences a (tp, pp, ep) replica's memory holds (0: not even one)."""
    w_bytes, kv_seq = memory_per_chip(model, job, tp, pp, ep)
    room = kv_room(chip, w_bytes)
    if not (kv_seq > 0 and room > 0):
        return 0
    return min(int(room // kv_seq), MAX_BATCH)


@njit(cache=True)
def _set(mp, tp, pp, ep, b):
    mp[:] = 0
    mp[L.P_TP] = tp
    mp[L.P_PP] = pp
    mp[L.P_EP] = ep
    mp[L.P_DP] = 1
    mp[L.P_CP] = 1
    mp[L.P_VPP] = 1
    mp[L.P_MB] = b


@njit(cache=True)
def _better(out, best_out, found):
    """More goodput, then more tokens per joule."""
    if not found:
        return True
    if out[L.SV_RATE] != best_out[L.SV_RATE]:
        return out[L.SV_RATE] > best_out[L.SV_RATE]
    return out[L.SV_TOK_PER_J] > best_out[L.SV_TOK_PER_J]


@njit(cache=True)
def serve_search(chip_p, chip_d, cluster, model, job, traffic, fixed, best_p, best_d, best_tr,
                 best_out, counts):
    """Search the serving configuration with the most goodput (``traffic[TR_RATE]`` must be
    0) or, at an offered rate, the one that serves it with the most tokens per joule.

    ``traffic[TR_N_PREFILL]``: 0 = one pool of ``chip_p`` (its mapping and prefill chunk
    searched; ``TR_CHUNK`` > 0 fixes the chunk, < 0 whole prompts); -1 = disaggregated,
    split searched; > 0 = disaggregated with that many prefill chips. ``fixed`` (MAP
    layout, -1 = searched) fixes tp, pp or ep of both pools. Fills ``best_p``, ``best_d``
    (mappings), ``best_tr`` (the traffic row with the chunk or split chosen) and
    ``best_out`` (``SV_*``); returns S_OK or the most frequent failure."""
    for i in range(counts.shape[0]):
        counts[i] = 0
    n_all = int(cluster[L.K_N_CHIPS])
    disagg = traffic[L.TR_N_PREFILL] != 0
    tr = traffic.copy()
    out = np.zeros(L.SV_LEN)
    mp_a = np.zeros(L.MAP_LEN, np.int64)
    mp_b = np.zeros(L.MAP_LEN, np.int64)
    found = False
    if not disagg:
        # TR_CHUNK 0: searched; > 0 that chunk; < 0 whole prompts (no chunking)
        chunks = CHUNKS.copy() if traffic[L.TR_CHUNK] == 0 else \
            np.full(1, max(traffic[L.TR_CHUNK], 0.0))
        for tp, pp, ep in _shapes(chip_p, model, fixed, n_all):
            b = _largest_batch(chip_p, model, job, tp, pp, ep)
            if b < 1:
                counts[L.S_OOM] += 1
                continue
            _set(mp_a, tp, pp, ep, b)
            for c in chunks:
                tr[L.TR_CHUNK] = c
                st = serve_eval(chip_p, chip_p, cluster, model, job, tr, mp_a, mp_a, out)
                counts[st] += 1
                if st == L.S_OK and _better(out, best_out, found):
                    found = True
                    best_p[:] = mp_a
                    best_d[:] = mp_a
                    best_tr[:] = tr
                    best_out[:] = out
        return L.S_OK if found else worst_status(counts)
    # disaggregated: the prefill and decode mappings, each at its best per chip
    pct = traffic[L.TR_PCT]
    isl = max(1.0, job[L.I_ISL] * (1.0 - traffic[L.TR_PREFIX_HIT]))
    l_p = lognormal_quantile(isl, traffic[L.TR_ISL_CV], pct)
    low = spec_low_tokens(traffic[L.TR_SPEC_K], traffic[L.TR_SPEC_ACCEPT], pct)
    tau = spec_tokens(traffic[L.TR_SPEC_K], traffic[L.TR_SPEC_ACCEPT])
    prim = np.zeros(PRIM_LEN)
    best_pre = -1.0
    best_dec = -1.0
    for tp, pp, ep in _shapes(chip_p, model, fixed, n_all - 1):
        _set(mp_a, tp, pp, ep, 1)
        st = prefill_prims(chip_p, cluster, model, job, tr, mp_a, n_all - 1, True, prim)
        counts[st] += 1
        if st != L.S_OK:
            continue
        t1 = prim[2] * l_p + prim[3] * l_p * l_p
        per_chip = prim[1] / (tp * pp)
        if (job[L.I_TTFT_SLO] <= 0 or t1 < job[L.I_TTFT_SLO]) and per_chip > best_pre:
            best_pre = per_chip
            best_p[:] = mp_a
    for tp, pp, ep in _shapes(chip_d, model, fixed, n_all - 1):
        b = _largest_batch(chip_d, model, job, tp, pp, ep)
        if b < 1:
            counts[L.S_OOM] += 1
            continue
        _set(mp_b, tp, pp, ep, b)
        st = decode_prims(chip_d, cluster, model, job, tr, mp_b, n_all - 1, prim)
        counts[st] += 1
        if st != L.S_OK:
            continue
        # requests/s per chip at the largest batch whose step meets the ITL limit (the
        # batch is what the load brings; memory only caps it)
        g = (prim[8] - prim[7]) / (b - 1.0) if b > 1 else 0.0
        b_eff = float(b)
        if job[L.I_ITL_SLO] > 0 and prim[8] / low > job[L.I_ITL_SLO]:
            b_eff = 1.0 + (job[L.I_ITL_SLO] * low - prim[7]) / g if g > 0 else 0.0
        if b_eff < 1.0:
            counts[L.S_SLO] += 1
            continue
        step = prim[7] + g * (b_eff - 1.0)
        per_chip = b_eff * tau / (job[L.I_OSL] * step) / (tp * pp)
        if per_chip > best_dec:
            best_dec = per_chip
            best_d[:] = mp_b
    if best_pre < 0 or best_dec < 0:
        counts[L.S_SLO] += 1
        return worst_status(counts)
    r_p = best_p[L.P_TP] * best_p[L.P_PP]
    r_d = best_d[L.P_TP] * best_d[L.P_PP]
    if traffic[L.TR_N_PREFILL] > 0:
        splits = np.array([traffic[L.TR_N_PREFILL]])
    else:
        n_rep = (n_all - r_d) // r_p  # the most prefill replicas that leave one decoder
        if n_rep < 1:
            counts[L.S_INVALID] += 1
            return worst_status(counts)
        step = max(1, -(-n_rep // MAX_SPLITS))
        splits = np.arange(1, n_rep + 1, step).astype(np.float64) * r_p
    for n_p in splits:
        tr[L.TR_N_PREFILL] = n_p
        st = serve_eval(chip_p, chip_d, cluster, model, job, tr, best_p, best_d, out)
        counts[st] += 1
        if st == L.S_OK and _better(out, best_out, found):
            found = True
            best_tr[:] = tr
            best_out[:] = out
    return L.S_OK if found else worst_status(counts)


@njit(cache=True)
def _shapes(chip, model, fixed, n_chips):
    """The (tp, pp, ep) shapes a replica may take: tp powers of 2 up to the scale-up domain
    and the heads, pp powers of 2, ep powers of 2 dividing the experts within tp."""
    domain = int(chip[L.C_DOMAIN]) if chip[L.C_DOMAIN] >= 1 else 1
    experts = int(model[L.M_EXPERTS])
    tps = choices(fixed[L.P_TP], 1, max(1, min(domain, int(model[L.M_HEADS]))), True)
    pps = choices(fixed[L.P_PP], 1, max(1, min(MAX_PP, int(model[L.M_LAYERS]))), True)
    eps = choices(fixed[L.P_EP], 1, max(1, experts), True)
    res = []
    for tp in tps:
        for pp in pps:
            if tp * pp > n_chips:
                continue
            for ep in eps:
                if fixed[L.P_EP] < 0 and (ep > tp or (experts > 0 and experts % ep != 0)):
                    continue
                if experts == 0 and ep > 1:
                    continue
                res.append((tp, pp, ep))
    return res


@njit(cache=True, parallel=True)
def serve_search_population(chips_p, chips_d, clusters, model, job, traffic, fixed, best_ps,
                            best_ds, best_trs, best_outs, counts, status):
    """:func:`serve_search` for every row of ``chips_p``/``chips_d``/``clusters``."""
    for i in prange(chips_p.shape[0]):
        status[i] = serve_search(chips_p[i], chips_d[i], clusters[i], model, job, traffic,
                                 fixed, best_ps[i], best_ds[i], best_trs[i], best_outs[i],
                                 counts[i])


__all__ = ["CHUNKS", "MAX_LOAD", "MAX_SPLITS", "serve_search", "serve_search_population"]
