"""The best serving mapping: search over (tp, pp, ep, replicas, batch) of one design
(:func:`infer_search`) and of a population of designs in parallel
(:func:`infer_search_population`); each candidate is scored by :func:`.infer.infer_eval`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from codesign.model.kernels import layout as L
from codesign.model.kernels.common import choices, worst_status
from codesign.model.kernels.infer import MAX_BATCH, MAX_PP, infer_eval, kv_room, memory_per_chip


@njit(cache=True)
def infer_search(chip, cluster, model, job, fixed, best_mp, best_out, counts):
    """Find the serving mapping with the most output tokens/s within the latency limits
    (ties: lower ITL). Searched: tp (powers of 2 up to the scale-up domain), pp (powers of 2),
    ep (powers of 2 dividing the experts, within a stage's tp group), and the batch: with a fixed
    concurrency, ``ceil(concurrency / replicas)`` capped by what fits; otherwise every power of
    2 up to the largest batch that fits, and that largest batch. Replicas use every chip.
    ``fixed`` holds -1 for searched fields. Returns S_OK or the most frequent failure."""
    for i in range(counts.shape[0]):
        counts[i] = 0
    n_chips = int(cluster[L.K_N_CHIPS])
    domain = int(chip[L.C_DOMAIN]) if chip[L.C_DOMAIN] >= 1 else 1
    experts = int(model[L.M_EXPERTS])
    conc = job[L.I_CONC]
    mp = np.zeros(L.MAP_LEN, np.int64)
    out = np.zeros(L.IOUT_LEN)
    best_tps = -1.0
    best_itl = np.inf
    for i in range(L.MAP_LEN):
        if fixed[i] == 0 and i <= L.P_MB:
            counts[L.S_INVALID] += 1
            return L.S_INVALID
    tps_ = choices(fixed[L.P_TP], 1, max(1, min(domain, int(model[L.M_HEADS]))), True)
    pps = choices(fixed[L.P_PP], 1, max(1, min(MAX_PP, int(model[L.M_LAYERS]))), True)
    eps = choices(fixed[L.P_EP], 1, max(1, experts), True)
    for tp in tps_:
        for pp in pps:
            if tp * pp > n_chips:
                continue
            dp = fixed[L.P_DP] if fixed[L.P_DP] > 0 else n_chips // (tp * pp)
            for ep in eps:
                if fixed[L.P_EP] < 0 and (ep > tp or (experts > 0 and experts % ep != 0)):
                    continue
                if fixed[L.P_EP] < 0 and experts == 0 and ep > 1:
                    continue
                w_bytes, kv_seq = memory_per_chip(model, job, tp, pp, ep)
                room = kv_room(chip, w_bytes)
                # pp batches of b in flight (see infer_eval)
                b_max = int(room // (pp * kv_seq)) if kv_seq > 0 and room > 0 else 0
                b_max = min(b_max, MAX_BATCH)
                if fixed[L.P_MB] > 0 or conc > 0:
                    nb = 1
                else:
                    nb = 0
                    v = 1
                    while v <= b_max:
                        nb += 1
                        v *= 2
                    nb += 1  # b_max itself
                nb = max(nb, 1)
                for bi in range(nb):
                    if fixed[L.P_MB] > 0:
                        b = fixed[L.P_MB]
                    elif conc > 0:
                        b = min(math.ceil(conc / (dp * pp)), max(b_max, 1))
                    elif bi == nb - 1:
                        b = max(b_max, 1)
                    else:
                        b = 1 << bi
                    mp[L.P_TP] = tp
                    mp[L.P_PP] = pp
                    mp[L.P_DP] = dp
                    mp[L.P_CP] = 1
                    mp[L.P_EP] = ep
                    mp[L.P_VPP] = 1
                    mp[L.P_MB] = b
                    mp[L.P_RECOMPUTE] = 0
                    mp[L.P_ZERO] = 0
                    mp[L.P_SP] = 0
                    st = infer_eval(chip, cluster, model, job, mp, out)
                    counts[st] += 1
                    if st != L.S_OK:
                        continue
                    tps = out[L.IO_TPS]
                    if tps > best_tps or (tps == best_tps and out[L.IO_ITL] < best_itl):
                        best_tps = tps
                        best_itl = out[L.IO_ITL]
                        best_mp[:] = mp
                        best_out[:] = out
    if best_tps >= 0:
        return L.S_OK
    return worst_status(counts)


@njit(cache=True, parallel=True)
def infer_search_population(chips, clusters, model, job, fixed, best_mps, best_outs, counts,
                            status):
    """:func:`infer_search` for every row of ``chips``/``clusters`` (one design per row)."""
    for i in prange(chips.shape[0]):
        status[i] = infer_search(
            chips[i], clusters[i], model, job, fixed, best_mps[i], best_outs[i], counts[i]
        )
