"""Serving under traffic: percentile latencies and goodput of one pool or of disaggregated
prefill and decode pools (:func:`serve_eval`).

The steady-state kernel (:mod:`.infer`) serves one prompt length at a fixed concurrency and
reports means. Here requests arrive at a rate ``lambda`` (Poisson), with lognormal prompt and
output lengths (mean ``I_ISL``/``I_OSL``, coefficients of variation ``TR_ISL_CV``,
``TR_OSL_CV``), a prefix-cache hit rate and speculative decoding; latencies are percentiles,
from a queueing model in closed form (fast enough for the search's inner loop):

* **Prefill** is a pool of ``c`` replicas behind one queue (the router sends a prompt to a
  free engine): M/G/c, the wait's tail from Erlang C with the Allen-Cunneen correction for the
  service time's variability, ``P(W > t) = C exp(-2 (c mu - lambda) t / (1 + cs^2))``
  (Allen, *Probability, Statistics and Queueing Theory*, 1990; Whitt, "Approximations for
  the GI/G/m queue", 1993). A prompt's own prefill takes ``t1(L)`` alone and, under load
  ``rho``, shares its pass with other prompts up to the token budget.
* **TTFT at percentile p** = the wait at p + the prefill of a prompt of the p-quantile
  length + (disaggregated) moving its KV cache to a decode chip over the scale-out network,
  or the scale-up network where both pools share a domain (``TR_KV_UP``). A sum of
  percentiles: an upper bound of the sum's percentile.
* **Decode**: ``N = lambda T`` sequences in flight (Little), ``T`` the time to emit a
  request's tokens; the batch of a replica is ``N / replicas`` (a fixed point, as the step
  time grows with the batch), and it fluctuates as a Poisson count: the step time at the
  p-quantile batch gives the ITL at p. Speculative decoding (``k`` draft tokens, each
  accepted with probability ``a``) emits ``(1 - a^(k+1)) / (1 - a)`` tokens a step on
  average (Leviathan et al., ICML 2023, eq. 1) for a verification pass of ``k + 1`` tokens
  per sequence and ``k`` draft steps.
* **Co-located** (one pool, ``TR_N_PREFILL = 0``): prompts are prefilled in the decode steps,
  ``TR_CHUNK`` tokens a step (chunked prefill, Sarathi-Serve) or whole (``0``); a step that
  carries prefill work is longer, so the ITL at p is the mixed step's once more than
  ``1 - p`` of the steps carry it: the interference disaggregation removes.
* **Goodput** (``TR_RATE = 0``): the highest rate at which the latencies at ``TR_PCT`` meet
  the limits (``I_TTFT_SLO``, ``I_ITL_SLO``), found by bisection, at most :data:`MAX_LOAD`
  of the capacity (DistServe's definition, Zhong et al., OSDI 2024).

Mappings: ``mp_p`` (prefill pool, or the one pool) and ``mp_d`` (decode pool) in the MAP
layout: ``P_TP``, ``P_PP``, ``P_EP``, ``P_MB`` (``P_MB``: the most sequences a decode
replica batches; a prefill pass takes up to the token budget). The replicas of a pool are
its chips over ``tp pp``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import head_dims
from codesign.model.kernels.common import energy_per_flop
from codesign.model.kernels.infer import (
    HBM_UTIL,
    PREFILL_TOKEN_BUDGET,
    forward_time,
    memory_per_chip,
    serving_chip_status,
)
from codesign.model.kernels.memory import BUFFER_B
from codesign.model.kernels.queueing import (
    lognormal_quantile,
    norm_ppf,
    spec_low_tokens,
    spec_tokens,
    wait_quantile,
)

MAX_LOAD = 0.95
"""The highest utilisation of either side the goodput search admits: queues at 100 % grow
without bound, and operators keep headroom (an assumption, stated as such)."""
BISECT_STEPS = 20
"""Bisection steps of the goodput search: the goodput within 0.95 x 2^-20 (under 1e-6) of
the capacity, far inside the model's own error (tens of percent on the serving rows); 30
steps (1e-9) cost half again as much for no change a user can see."""
PRIM_LEN = 18
"""Per-mapping primitives :func:`serve_at` reads (see :func:`primitives`)."""


@njit(cache=True)
def _pass(chip, cluster, model, job, mp, tokens, n_seq, ctx, prefill, aux):
    return forward_time(chip, cluster, model, job, mp[L.P_TP], mp[L.P_PP], mp[L.P_EP],
                        tokens, n_seq, ctx, prefill, aux)


@njit(cache=True)
def _mapping_status(chip, cluster, model, job, mp, n_chips):
    """S_OK if ``mp`` can serve on ``n_chips`` chips of ``chip``, else why not."""
    tp, pp, ep, b = mp[L.P_TP], mp[L.P_PP], mp[L.P_EP], mp[L.P_MB]
    if tp < 1 or pp < 1 or ep < 1 or b < 1:
        return L.S_INVALID
    st = serving_chip_status(chip, cluster, job)
    if st != L.S_OK:
        return st
    _, _, nkv, _ = head_dims(model)
    if tp * pp > n_chips or pp > model[L.M_LAYERS] or model[L.M_HEADS] % tp != 0:
        return L.S_INVALID
    if nkv % tp != 0 and tp % nkv != 0:
        return L.S_INVALID
    if model[L.M_EXPERTS] > 0:
        if int(model[L.M_EXPERTS]) % ep != 0 or ep > tp:
            return L.S_INVALID
    elif ep != 1:
        return L.S_INVALID
    domain = chip[L.C_DOMAIN]
    needs_up = (tp > 1 and tp <= domain) or (pp > 1 and tp * pp <= domain)
    needs_out = tp > domain or (pp > 1 and tp * pp > domain)
    if (needs_up and not (chip[L.C_UP_BPS] > 0)) or (needs_out and not (chip[L.C_OUT_BPS] > 0)):
        return L.S_NO_BW
    return L.S_OK


@njit(cache=True)
def prefill_prims(chip, cluster, model, job, traffic, mp, n_chips, disagg, prim):
    """The prefill part of :func:`primitives` for ``mp`` on ``n_chips`` chips of ``chip``
    (entries 0-5, 13, 14, 16); returns S_OK or why it cannot prefill."""
    st = _mapping_status(chip, cluster, model, job, mp, n_chips)
    if st != L.S_OK:
        return st
    isl = max(1.0, job[L.I_ISL] * (1.0 - traffic[L.TR_PREFIX_HIT]))
    aux = np.zeros(5)
    # a full pass of the token budget, and one prompt alone at two lengths
    n_pass = max(1.0, math.floor(PREFILL_TOKEN_BUDGET / isl))
    t_pass = _pass(chip, cluster, model, job, mp, n_pass * isl, n_pass, isl, True, aux)
    stage = aux[4] if mp[L.P_PP] > 1 else t_pass
    e_pre = (energy_per_flop(chip, int(job[L.I_PREC])) * aux[1] + chip[L.C_E_HBM] * aux[2]
             + chip[L.C_E_LINK] * aux[3]) / n_pass
    t_a = _pass(chip, cluster, model, job, mp, isl, 1.0, isl, True, aux)
    t_b = _pass(chip, cluster, model, job, mp, 2.0 * isl, 1.0, 2.0 * isl, True, aux)
    # t1(L) = a L + b L^2 through both points
    t1_b = max(0.0, (t_b - 2.0 * t_a) / (2.0 * isl * isl))
    w, kv_seq = memory_per_chip(model, job, mp[L.P_TP], mp[L.P_PP], mp[L.P_EP])
    if disagg and w + n_pass * kv_seq + BUFFER_B > HBM_UTIL * chip[L.C_HBM_B]:
        return L.S_OOM
    chunk = traffic[L.TR_CHUNK]
    prim[13] = 0.0
    if not disagg and chunk > 0:
        prim[13] = _pass(chip, cluster, model, job, mp, chunk, 1.0, isl, True, aux)
    prim[0] = math.floor(n_chips / (mp[L.P_TP] * mp[L.P_PP]))
    prim[1] = n_pass / stage
    prim[2] = (t_a - t1_b * isl * isl) / isl
    prim[3] = t1_b
    prim[4] = t_pass
    prim[5] = n_pass
    prim[14] = e_pre
    prim[16] = mp[L.P_TP] * mp[L.P_PP]
    return L.S_OK if prim[1] > 0 and math.isfinite(prim[1]) else L.S_BAD_INPUT


@njit(cache=True)
def decode_prims(chip, cluster, model, job, traffic, mp, n_chips, prim):
    """The decode part of :func:`primitives` for ``mp`` on ``n_chips`` chips of ``chip``
    (entries 6-9, 15, 17); returns S_OK or why it cannot decode."""
    st = _mapping_status(chip, cluster, model, job, mp, n_chips)
    if st != L.S_OK:
        return st
    aux = np.zeros(5)
    # one step at batch 1 and at the largest batch (verification of k + 1 tokens a sequence)
    k = traffic[L.TR_SPEC_K]
    ctx = job[L.I_ISL] + job[L.I_OSL] / 2.0
    b_max = mp[L.P_MB]
    t_d1 = _pass(chip, cluster, model, job, mp, 1.0 + k, 1.0, ctx, False, aux)
    t_db = _pass(chip, cluster, model, job, mp, b_max * (1.0 + k), b_max, ctx, False, aux)
    e_step = (energy_per_flop(chip, int(job[L.I_PREC])) * aux[1] + chip[L.C_E_HBM] * aux[2]
              + chip[L.C_E_LINK] * aux[3])
    draft = 1.0 + k * traffic[L.TR_SPEC_COST]
    w, kv_seq = memory_per_chip(model, job, mp[L.P_TP], mp[L.P_PP], mp[L.P_EP])
    if w + b_max * kv_seq + BUFFER_B > HBM_UTIL * chip[L.C_HBM_B]:
        return L.S_OOM
    prim[6] = math.floor(n_chips / (mp[L.P_TP] * mp[L.P_PP]))
    prim[7] = t_d1 * draft
    prim[8] = t_db * draft
    prim[9] = b_max
    prim[15] = e_step
    prim[17] = mp[L.P_TP] * mp[L.P_PP]
    return L.S_OK if prim[8] > 0 and math.isfinite(prim[8]) else L.S_BAD_INPUT


@njit(cache=True)
def primitives(chip_p, chip_d, cluster, model, job, traffic, mp_p, mp_d, prim):
    """Fill ``prim`` with what the latencies at any rate need, from the forward passes of
    the two mappings (one pool: ``chip_d``/``mp_d`` are ``chip_p``/``mp_p``)::

        0 c_p   prefill servers (replicas)       1 mu_p  prompts/s of one at full passes
        2 t1_a, 3 t1_b: a prompt's prefill alone, t1(L) = t1_a L + t1_b L^2 (L prefilled tokens)
        4 t_pass: a full prefill pass           5 n_pass: prompts in it
        6 c_d   decode replicas                 7 t_d1: decode step at batch 1, s
        8 t_dB  step at the largest batch       9 b_max
        10 kv_tok: KV bytes per prompt token (whole model)   11 kv_bps: its transfer, B/s
        12 kv_lat: its latency, s               13 t_chunk: a step's prefill chunk, s
        14 e_pre: J per prompt (one chip's share, dynamic)  15 e_step: J per decode step
        16, 17: chips of a prefill, of a decode replica

    Returns S_OK or why the mappings cannot serve (memory included)."""
    disagg = traffic[L.TR_N_PREFILL] > 0
    n_all = cluster[L.K_N_CHIPS]
    n_p = traffic[L.TR_N_PREFILL] if disagg else n_all
    n_d = n_all - n_p if disagg else n_all
    if not (n_p >= 1 and n_d >= 1):
        return L.S_INVALID
    st = prefill_prims(chip_p, cluster, model, job, traffic, mp_p, n_p, disagg, prim)
    if st != L.S_OK:
        return st
    st = decode_prims(chip_d, cluster, model, job, traffic, mp_d, n_d, prim)
    if st != L.S_OK:
        return st
    # the KV cache of a prompt token, whole model; its move from the prefill chips
    _, kv_one = memory_per_chip(model, job, 1.0, 1.0, 1.0)
    prim[10] = kv_one / (job[L.I_ISL] + job[L.I_OSL])
    senders = min(mp_p[L.P_TP] * mp_p[L.P_PP], mp_d[L.P_TP] * mp_d[L.P_PP])
    if traffic[L.TR_KV_UP] > 0.5:
        prim[11] = senders * min(chip_p[L.C_UP_BPS], chip_d[L.C_UP_BPS]) * chip_p[L.C_NET_EFF]
        prim[12] = cluster[L.K_UP_LAT_S]
    else:
        prim[11] = senders * min(chip_p[L.C_OUT_BPS], chip_d[L.C_OUT_BPS]) * chip_p[L.C_NET_EFF]
        prim[12] = cluster[L.K_OUT_LAT_S]
    if disagg and not (prim[11] > 0):
        return L.S_NO_BW
    if prim[0] < 1 or prim[6] < 1:
        return L.S_INVALID
    return L.S_OK


@njit(cache=True)
def _step(prim, b):
    """Decode step time at batch ``b`` (linear between batch 1 and the largest batch: the
    weights are read once a step, each sequence adds its KV reads and FLOPs)."""
    b_max = prim[9]
    if b_max <= 1.0:
        return prim[8]
    return prim[7] + (prim[8] - prim[7]) * (b - 1.0) / (b_max - 1.0)


PQ_LEN = 5
"""Length of a percentile's rate-independent terms (:func:`_pct_terms`)."""


@njit(cache=True)
def _pct_terms(job, traffic, prim, p, pq):
    """The terms of the latencies at percentile ``p`` that do not depend on the rate, into
    ``pq``: the p-quantile prompt (tokens, after prefix hits), its prefill time alone (s), the
    tokens of a slow speculative step, the normal quantile of ``p`` (0 when p <= 0.5) and the
    p-quantile output length (tokens). Computed once per percentile, not once per rate of the
    goodput's bisection."""
    isl_mean = max(1.0, job[L.I_ISL] * (1.0 - traffic[L.TR_PREFIX_HIT]))
    l_p = lognormal_quantile(isl_mean, traffic[L.TR_ISL_CV], p)
    pq[0] = l_p
    pq[1] = prim[2] * l_p + prim[3] * l_p * l_p
    pq[2] = spec_low_tokens(traffic[L.TR_SPEC_K], traffic[L.TR_SPEC_ACCEPT], p)
    pq[3] = norm_ppf(p) if p > 0.5 else 0.0
    pq[4] = lognormal_quantile(job[L.I_OSL], traffic[L.TR_OSL_CV], p)


@njit(cache=True)
def _latency_at(job, traffic, prim, lam, p, pq, disagg, res):
    """TTFT, ITL and request latency at percentile ``p`` (its rate-independent terms ``pq``,
    :func:`_pct_terms`) and rate ``lam`` into ``res[0..2]`` (inf where a side is over its
    capacity); ``res[3]`` the mean decode batch of a replica, ``res[4]`` the prefill
    utilisation, ``res[5]`` the decode one (batch over the largest), ``res[6]`` decode
    steps/s of a replica."""
    isl_mean = max(1.0, job[L.I_ISL] * (1.0 - traffic[L.TR_PREFIX_HIT]))
    cv_i = traffic[L.TR_ISL_CV]
    osl = job[L.I_OSL]
    k = traffic[L.TR_SPEC_K]
    acc = traffic[L.TR_SPEC_ACCEPT]
    tau = spec_tokens(k, acc)
    chunk = traffic[L.TR_CHUNK]
    c_p = int(prim[0])
    c_d = prim[6]
    b_max = prim[9]
    t_chunk = prim[13]
    t1_mean = prim[2] * isl_mean + prim[3] * isl_mean * isl_mean
    for i in range(7):
        res[i] = 0.0
    lam_r = lam / c_d  # requests/s of one decode (or the one pool's) replica
    # the decode batch of a replica: b = lam_r (osl / tau) x the time between its steps,
    # which (one pool) includes the prefill work riding along. That time is linear in b,
    # eff(b) = e0 + e1 b, so the fixed point is b = A e0 / (1 - A e1) with A = lam_r osl/tau
    g = (prim[8] - prim[7]) / (b_max - 1.0) if b_max > 1.0 else 0.0
    s0, s1 = prim[7] - g, g  # step(b) = s0 + s1 b (b >= 1)
    share = 0.0  # one pool: share of steps carrying a prefill chunk, or of time prefilling
    if disagg:
        e0, e1 = s0, s1
    elif chunk > 0:
        x = lam_r * isl_mean / chunk * t_chunk  # share = x (step + t_chunk) / t_chunk
        e0, e1 = s0 + x * (s0 + t_chunk), s1 * (1.0 + x)
    else:
        share = lam_r * t1_mean
        inv = 1.0 / (1.0 - share) if share < 1.0 else np.inf
        e0, e1 = s0 * inv, s1 * inv
    a = lam_r * osl / tau
    ok = a * e1 < 1.0 and math.isfinite(e0)
    b = a * e0 / (1.0 - a * e1) if ok else np.inf
    if b < 1.0 and ok:  # below one sequence the step is the batch-1 step's
        b = a * (e0 + e1)
    st = _step(prim, max(b, 1.0))
    if not disagg and chunk > 0:
        share = lam_r * isl_mean * (st + t_chunk) / chunk
    eff = st if disagg else (st + min(share, 1.0) * t_chunk if chunk > 0
                             else (st / (1.0 - share) if share < 1.0 else np.inf))
    ok = ok and b < b_max and share < 1.0 and math.isfinite(eff)
    res[3] = b
    res[5] = b / b_max
    res[6] = lam_r * (osl / tau) / max(b, 1e-300) if lam > 0 else 0.0
    if disagg:
        mu = prim[1]
        rho_p = lam / (c_p * mu)
    elif chunk > 0:
        mu = chunk / (isl_mean * (eff + t_chunk))
        rho_p = min(share, 1.0)
    else:
        mu = 1.0 / t1_mean
        rho_p = share
    res[4] = rho_p
    if not ok or rho_p >= 1.0:
        res[0] = np.inf
        res[1] = np.inf
        res[2] = np.inf
        return
    l_p = pq[0]
    t1_p = pq[1]
    low = pq[2]
    b_p = min(b_max, b + pq[3] * math.sqrt(b)) if p > 0.5 else b
    base = _step(prim, max(b_p, 1.0))
    if disagg:
        wait = wait_quantile(c_p, mu, lam, cv_i * cv_i, p)
        # a prompt alone, or sharing its pass with the others the load brings
        service = t1_p + rho_p * max(0.0, prim[4] - t1_mean)
        ttft = wait + service + l_p * prim[10] / prim[11] + prim[12]
        itl = base / low
    else:
        wait = wait_quantile(int(c_d), mu, lam, cv_i * cv_i, p)
        if chunk > 0:
            ttft = wait + math.ceil(l_p / chunk) * (eff + t_chunk)
            stall = t_chunk
            hit = min(share, 1.0)  # steps carrying a chunk
        else:
            ttft = wait + t1_p
            stall = t1_p
            hit = min(1.0, lam_r * eff)  # gaps with a whole prefill in them
        itl = (base + (stall if hit > 1.0 - p else 0.0)) / low
    o_p = pq[4]
    res[0] = ttft
    res[1] = itl
    res[2] = ttft + max(0.0, o_p - 1.0) * eff / tau


@njit(cache=True)
def serve_at(chip_p, chip_d, cluster, job, traffic, prim, lam, out):
    """Fill ``out`` (layout ``SV_*``) at rate ``lam`` from the primitives; returns S_OK, or
    S_SLO when a latency at ``TR_PCT`` is over its limit or a side over its capacity."""
    disagg = traffic[L.TR_N_PREFILL] > 0
    res = np.zeros(7)
    pq = np.empty(PQ_LEN)
    ps = (0.5, 0.9, 0.99)
    for j in range(3):
        _pct_terms(job, traffic, prim, ps[j], pq)
        _latency_at(job, traffic, prim, lam, ps[j], pq, disagg, res)
        out[L.SV_TTFT_P50 + j] = res[0]
        out[L.SV_ITL_P50 + j] = res[1]
    _pct_terms(job, traffic, prim, traffic[L.TR_PCT], pq)
    _latency_at(job, traffic, prim, lam, traffic[L.TR_PCT], pq, disagg, res)
    out[L.SV_TTFT_PCT] = res[0]
    out[L.SV_ITL_PCT] = res[1]
    out[L.SV_E2E_PCT] = res[2]
    out[L.SV_BATCH] = res[3]
    out[L.SV_RHO_PREFILL] = res[4]
    osl = job[L.I_OSL]
    out[L.SV_RATE] = lam
    out[L.SV_TPS] = lam * osl
    out[L.SV_TOKENS_PER_STEP] = spec_tokens(traffic[L.TR_SPEC_K], traffic[L.TR_SPEC_ACCEPT])
    isl_mean = max(1.0, job[L.I_ISL] * (1.0 - traffic[L.TR_PREFIX_HIT]))
    out[L.SV_KV_S] = (isl_mean * prim[10] / prim[11] + prim[12]) if disagg else 0.0
    out[L.SV_N_PREFILL] = traffic[L.TR_N_PREFILL] if disagg else 0.0
    out[L.SV_PREFILL_CAP] = prim[0] * prim[1] if disagg else 0.0
    # power: each pool's chips leak, draw their busy power while they work, and spend the
    # dynamic energy of the passes the rate asks for (e_pre, e_step: one chip's share; every
    # chip of a replica spends it)
    n_all = cluster[L.K_N_CHIPS]
    n_p = traffic[L.TR_N_PREFILL] if disagg else 0.0
    n_d = n_all - n_p
    util_d = min(1.0, res[6] * _step(prim, max(res[3], 1.0))) if lam > 0 else 0.0
    util_p = min(1.0, res[4])
    if not disagg:
        util_d = min(1.0, util_d + util_p)
    w_chips = (n_p * (chip_p[L.C_LEAK_W] + chip_p[L.C_BUSY_W] * util_p)
               + n_d * (chip_d[L.C_LEAK_W] + chip_d[L.C_BUSY_W] * util_d))
    w_dyn = lam * prim[14] * prim[16] + res[6] * prim[6] * prim[15] * prim[17]
    cluster_w = (w_chips + w_dyn + n_all * cluster[L.K_HOST_W]) * cluster[L.K_PUE]
    out[L.SV_CLUSTER_W] = cluster_w
    out[L.SV_TOK_PER_J] = out[L.SV_TPS] / cluster_w if cluster_w > 0 else 0.0
    if not (out[L.SV_TTFT_PCT] < np.inf and out[L.SV_ITL_PCT] < np.inf):
        return L.S_SLO
    if (job[L.I_TTFT_SLO] > 0 and out[L.SV_TTFT_PCT] > job[L.I_TTFT_SLO]) or (
            job[L.I_ITL_SLO] > 0 and out[L.SV_ITL_PCT] > job[L.I_ITL_SLO]):
        return L.S_SLO
    return L.S_OK


@njit(cache=True)
def _meets(job, traffic, prim, lam, pq, disagg, res):
    """Whether the latencies at ``TR_PCT`` (its terms ``pq``, :func:`_pct_terms`) meet the
    limits at rate ``lam`` (what :func:`serve_at` decides, without the rest of its results)."""
    _latency_at(job, traffic, prim, lam, traffic[L.TR_PCT], pq, disagg, res)
    if not (res[0] < np.inf and res[1] < np.inf):
        return False
    return not ((job[L.I_TTFT_SLO] > 0 and res[0] > job[L.I_TTFT_SLO])
                or (job[L.I_ITL_SLO] > 0 and res[1] > job[L.I_ITL_SLO]))


@njit(cache=True)
def decode_capacity(job, traffic, prim):
    """Requests/s the decode side sustains with full batches (one pool: with no prefill)."""
    tau = spec_tokens(traffic[L.TR_SPEC_K], traffic[L.TR_SPEC_ACCEPT])
    return prim[6] * prim[9] * tau / (job[L.I_OSL] * prim[8])


@njit(cache=True)
def serve_eval(chip_p, chip_d, cluster, model, job, traffic, mp_p, mp_d, out):
    """Evaluate serving under traffic (see the module): at the offered rate ``TR_RATE``, or,
    when it is 0, at the goodput (the highest rate within the SLOs at ``TR_PCT``, at most
    :data:`MAX_LOAD` of the capacity; 0 if none). Fills ``out`` (``SV_*``) and returns a
    status code ``S_*`` (S_SLO: the offered rate misses a limit, or no rate meets them)."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    if not (job[L.I_ISL] >= 1 and job[L.I_OSL] >= 1 and job[L.I_W_BYTES] > 0
            and job[L.I_KV_BYTES] > 0 and cluster[L.K_N_CHIPS] >= 1):
        return L.S_BAD_INPUT
    if not (0.0 < traffic[L.TR_PCT] < 1.0 and traffic[L.TR_RATE] >= 0.0
            and traffic[L.TR_ISL_CV] >= 0.0 and traffic[L.TR_OSL_CV] >= 0.0
            and 0.0 <= traffic[L.TR_PREFIX_HIT] < 1.0 and traffic[L.TR_SPEC_K] >= 0.0
            and 0.0 <= traffic[L.TR_SPEC_ACCEPT] <= 1.0 and traffic[L.TR_SPEC_COST] >= 0.0
            and traffic[L.TR_CHUNK] >= -1.0 and traffic[L.TR_N_PREFILL] >= 0.0):
        return L.S_BAD_INPUT
    prim = np.zeros(PRIM_LEN)
    st = primitives(chip_p, chip_d, cluster, model, job, traffic, mp_p, mp_d, prim)
    if st != L.S_OK:
        return st
    cap_d = decode_capacity(job, traffic, prim)
    disagg = traffic[L.TR_N_PREFILL] > 0
    cap = min(cap_d, prim[0] * prim[1]) if disagg else cap_d
    if traffic[L.TR_RATE] > 0:
        st = serve_at(chip_p, chip_d, cluster, job, traffic, prim, traffic[L.TR_RATE], out)
    else:
        lo, hi = 0.0, MAX_LOAD * cap
        res = np.zeros(7)
        pq = np.empty(PQ_LEN)
        _pct_terms(job, traffic, prim, traffic[L.TR_PCT], pq)
        if _meets(job, traffic, prim, hi, pq, disagg, res):
            lo = hi
        else:
            for _ in range(BISECT_STEPS):
                mid = 0.5 * (lo + hi)
                if _meets(job, traffic, prim, mid, pq, disagg, res):
                    lo = mid
                else:
                    hi = mid
        st = serve_at(chip_p, chip_d, cluster, job, traffic, prim, lo, out)
        if not (lo > 0):
            st = L.S_SLO
    out[L.SV_DECODE_CAP] = cap_d
    out[L.SV_PREFILL_CAP] = prim[0] * prim[1] if disagg else 0.0
    w_d, kv_seq = memory_per_chip(model, job, mp_d[L.P_TP], mp_d[L.P_PP], mp_d[L.P_EP])
    out[L.SV_MEM_DECODE_B] = w_d + prim[9] * kv_seq + BUFFER_B
    return st
