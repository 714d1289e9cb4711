"""The best training mapping: branch-and-bound search over the parallel mappings of one design
(:func:`search_mappings`) and of a population of designs in parallel
(:func:`search_population`); each candidate is scored by :func:`.train.eval_mapping`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import head_dims, layers_flash_cost, window_share
from codesign.model.kernels.collectives import allreduce_time, level, scaleout_link
from codesign.model.kernels.common import choices, divisors, matmul_peak, worst_status
from codesign.model.kernels.layer import COSTS_LEN, gemm_flops_per_token
from codesign.model.kernels.offload import OFF_OPTIMIZER, OFF_WEIGHTS, offload_ok
from codesign.model.kernels.train import eval_cached, throttled

MAX_MICRO_BATCH = 64
MAX_CP = 16
MIN_TOKENS_PER_CP_RANK = 2048
"""Context parallelism is searched only while each rank keeps >= 2k tokens of the sequence."""
SEED_SLACK = 1e-9
"""The coarse pass's best step, raised by this fraction, bounds the full search: strictly
above every mapping exactly as fast, far below any difference the model resolves."""


@njit(cache=True)
def search_mappings(chip, cluster, model, job, fixed, best_mp, best_out, counts):
    """Find the fastest feasible mapping (ties: least memory); fills ``best_mp``/``best_out``.

    ``fixed`` (int64[MAP_LEN]) holds -1 for searched fields. Searched: tp (powers of 2 up to
    the scale-up domain), cp (powers of 2 while each rank keeps >= 2k tokens), pp (divisors
    of the layer count and powers of 2), dp (divisors of the global batch that fit the cluster,
    largest first), ep (powers of 2 dividing the experts and cp x dp), vpp (powers of 2), the
    micro-batch, recompute and ZeRO stage, and for MoE models with ep > 1 and at least two
    micro-batches the overlap of the all-to-all, and for ZeRO-3 groups that span scale-up
    domains hybrid sharding; sequence parallel is on whenever tp > 1; host-memory offload
    where the chip's memory does not hold a mapping without it (:func:`eval_offloaded`).
    Branch and bound: a (tp, cp, pp, dp) block whose compute lower bound (the GEMMs and the
    fused attention core at their best rates, over the chips it uses), a micro-batch whose
    bound with tensor parallelism's all-reduces and the smallest pipeline bubble it can have
    ((pp - 1) / vpp of m stage times), and full recompute whose bound with its extra forward
    cannot beat the best step so far (or the best of a coarse first pass, used strictly) are
    skipped, so the result equals that of the full enumeration. ``counts[s]``
    counts evaluated candidates by status (``counts[S_OK]`` feasible ones; a longer array
    gets in ``counts[N_STATUS]`` the mappings the bounds ruled out unevaluated). Returns
    S_OK if a feasible mapping was found, else the most frequent failure.
    """
    for i in range(counts.shape[0]):
        counts[i] = 0
    for i in range(L.MAP_LEN):
        if fixed[i] == 0 and i <= L.P_MB:  # a degree or micro-batch fixed at 0 is invalid
            counts[L.S_INVALID] += 1
            return L.S_INVALID
    # a first bound: the best of a coarse subspace (micro-batch 1, no interleaving, ZeRO-1,
    # no hybrid sharding or overlap, where those are free; first also selective recompute
    # and no offload, else with those searched); used strictly (slightly inflated), it never
    # rules out a mapping as fast as itself, so the search below keeps every mapping it
    # would keep without it and finds the same one
    seed = np.inf
    mp = np.zeros(L.MAP_LEN, np.int64)
    out = np.zeros(L.OUT_LEN)
    scratch = np.zeros(L.N_STATUS, np.int64)
    for narrow in (True, False):
        coarse = fixed.copy()
        for i, v in ((L.P_MB, 1), (L.P_VPP, 1), (L.P_ZERO, 1), (L.P_HSDP, 0), (L.P_EPO, 0),
                     (L.P_RECOMPUTE, 1 if narrow else -1), (L.P_OFFLOAD, 0 if narrow else -1)):
            if coarse[i] < 0:
                coarse[i] = v
        if _search(chip, cluster, model, job, coarse, mp, out, scratch, np.inf) == L.S_OK:
            seed = out[L.O_STEP_S] * (1.0 + SEED_SLACK)
            break
    return _search(chip, cluster, model, job, fixed, best_mp, best_out, counts, seed)


@njit(cache=True)
def _search(chip, cluster, model, job, fixed, best_mp, best_out, counts, seed):
    """The branch and bound of :func:`search_mappings` with an outside bound ``seed``: a
    candidate whose lower bound reaches ``seed`` (or the best step found) is ruled out."""
    for i in range(counts.shape[0]):
        counts[i] = 0
    n_chips = int(cluster[L.K_N_CHIPS])
    layers = int(model[L.M_LAYERS])
    gbatch = int(job[L.J_GBATCH])
    seq = int(job[L.J_SEQ])
    experts = int(model[L.M_EXPERTS])
    domain = int(chip[L.C_DOMAIN]) if chip[L.C_DOMAIN] >= 1 else 1
    prec = int(job[L.J_PREC])
    peak, eff = matmul_peak(chip, prec)
    rate = peak * eff
    work = 3.0 * gemm_flops_per_token(model) * seq * gbatch  # fwd + bwd GEMM FLOPs per step
    # full recompute runs every layer's forward GEMMs once more (not the output layer's)
    redo = (gemm_flops_per_token(model) - 2.0 * model[L.M_VOCAB] * model[L.M_HIDDEN]) * (
        seq * gbatch)
    prune = rate > 0 and work > 0
    # seconds one chip would take for all of it: the GEMMs at their best rate, and the fused
    # attention core's forward and backward (split evenly over tp x cp x pp x dp whatever
    # the mapping: its efficiency depends on the sequence and head width alone)
    t_all = work / rate if prune else 0.0
    t_redo = redo / rate if prune else 0.0
    peak_attn = chip[L.C_FLOPS_FP32] if prec == 0 else chip[L.C_FLOPS_BF16]
    if prune and job[L.J_ATTN] < 0.5 and peak_attn > 0 and chip[L.C_ATTN_EFF] > 0:
        dqk, dv, nkv, _kv_lora = head_dims(model)
        t_f, t_b, _f, _b = layers_flash_cost(1.0, seq, seq, model[L.M_HEADS], dqk, dv, nkv,
                                             model[L.M_WINDOW], window_share(model),
                                             peak_attn, chip[L.C_ATTN_EFF], np.inf, 1.0, 2.0)
        t_all += layers * gbatch * (t_f + t_b)
        t_redo += layers * gbatch * t_f
    # tensor parallelism's all-reduces (4 per layer and micro-batch, never hidden) join the
    # bound of each micro-batch
    out_bps, out_lat = scaleout_link(chip, cluster)
    act_h = max(job[L.J_BYTES], 2.0) * model[L.M_HIDDEN] * seq  # a sequence's activations
    mp = np.zeros(L.MAP_LEN, np.int64)
    out = np.zeros(L.OUT_LEN)
    spare = np.zeros(L.OUT_LEN)
    # best step, its memory, candidates ruled out, the outside bound
    best = np.array([np.inf, np.inf, 0.0, seed])
    tps = choices(fixed[L.P_TP], 1, max(1, min(domain, int(model[L.M_HEADS]))), True)
    cp_max = 1
    while cp_max * 2 <= MAX_CP and seq // (cp_max * 2) >= MIN_TOKENS_PER_CP_RANK:
        cp_max *= 2
    cps = choices(fixed[L.P_CP], 1, cp_max, True)
    eps = choices(fixed[L.P_EP], 1, max(1, experts), True)
    rcs = choices(fixed[L.P_RECOMPUTE], 0, 3, False)
    zeros = choices(fixed[L.P_ZERO], 0, 3, False)
    epos = choices(fixed[L.P_EPO], 0, 1 if experts > 0 else 0, False)
    hsdps = choices(fixed[L.P_HSDP], 0, 1, False)
    # per-layer costs depend on (tp, cp, micro-batch, ep, recompute) alone: computed once
    # per tp x cp (a new stamp) for each (micro-batch, ep, recompute) row
    cache = np.empty(((MAX_MICRO_BATCH + 1) * eps.shape[0] * 4, COSTS_LEN + 1))
    cache[:, 0] = -1.0
    stamp = 0.0
    # candidate lists made once: pp (divisors of the layers, powers of 2), dp and the
    # micro-batch (divisors of the global batch; filtered per block, nothing allocated there)
    pps = divisors(fixed[L.P_PP], layers, layers, True)
    dps = divisors(fixed[L.P_DP], gbatch, n_chips, False)
    mbs = divisors(fixed[L.P_MB], gbatch, MAX_MICRO_BATCH, False)
    free_mb = fixed[L.P_MB] < 0
    for tp in tps:
        for cp in cps:
            if tp * cp > n_chips:
                continue
            stamp += 1.0
            tp_bw, tp_lat = level(tp, chip[L.C_DOMAIN], chip[L.C_UP_BPS],
                                  int(cluster[L.K_TOPOLOGY]), chip[L.C_NET_EFF], out_bps,
                                  cluster[L.K_UP_LAT_S], out_lat)
            for pp in pps:
                if tp * cp * pp > n_chips:
                    break
                dp_max = n_chips // (tp * cp * pp)
                vpps = choices(fixed[L.P_VPP], 1, max(1, layers // pp) if pp > 1 else 1, True)
                for di in range(dps.shape[0] - 1, -1, -1):  # largest dp first
                    dp = dps[di]
                    if dp > dp_max and fixed[L.P_DP] < 0:
                        continue
                    per_dp = gbatch // dp if gbatch % dp == 0 else 0
                    lb = t_all / (tp * cp * pp * dp)
                    block_out = prune and lb >= min(best[0], best[3])
                    for b in mbs:
                        if free_mb and (per_dp < b or per_dp % b != 0):
                            continue  # the micro-batches of this dp: divisors of its batch
                        # the pipeline bubble adds at least (pp - 1) / vpp stage times of m
                        bubble = 1.0
                        if per_dp // b >= 1:
                            bubble += (pp - 1.0) / (vpps[vpps.shape[0] - 1] * (per_dp // b))
                        t_tp = 0.0
                        if prune and tp > 1 and tp_bw > 0:
                            t_tp = (per_dp // b) * (layers / pp) * 4.0 * allreduce_time(
                                act_h * b / cp, tp, tp_bw, tp_lat)
                        lb_b = (lb + t_tp) * bubble
                        lb_redo = (t_all + t_redo) / (tp * cp * pp * dp) + t_tp
                        # evaluate, or (bound out) count what is skipped
                        go = not block_out and not (prune and lb_b >= min(best[0], best[3]))
                        if not go and counts.shape[0] <= L.N_STATUS:
                            continue  # nothing to evaluate, no count asked for
                        _tail(go, chip, cluster, model, job, fixed, eps, vpps, rcs, zeros,
                              epos, hsdps, tp, cp, pp, dp, b, per_dp, experts, layers,
                              domain, prune, lb + t_tp, lb_redo, mp, out, spare, counts, best,
                              best_mp, best_out, cache, stamp)
    if counts.shape[0] > L.N_STATUS:
        counts[L.N_STATUS] = best[2]
    if best[0] < np.inf:
        return L.S_OK
    return worst_status(counts)


@njit(cache=True)
def _tail(go, chip, cluster, model, job, fixed, eps, vpps, rcs, zeros, epos, hsdps, tp, cp,
          pp, dp, b, per_dp, experts, layers, domain, prune, lb_one, lb_redo, mp, out, spare,
          counts, best, best_mp, best_out, cache, stamp):
    """The candidates of one (tp, cp, pp, dp, micro-batch): every (ep, vpp, recompute, ZeRO,
    overlap, hybrid sharding) the search allows. With ``go``, each is evaluated unless its
    bound cannot beat ``best[0]`` (or ``best[3]``): ``lb_one`` (``lb_redo`` with full
    recompute) is a lower bound of the step without the pipeline bubble, which adds at least
    (pp - 1) / vpp of m stage times for this vpp. The best is kept in ``best`` (step,
    memory), ``best_mp``, ``best_out``; candidates a bound rules out (all of them without
    ``go``) are counted in ``best[2]``. ``cache`` rows stamped ``stamp`` hold per-layer
    costs (:func:`.train.eval_cached`)."""
    m = per_dp // b
    for ei in range(eps.shape[0]):
        ep = eps[ei]
        if fixed[L.P_EP] < 0 and (experts % ep != 0 or (cp * dp) % ep != 0):
            continue
        for vpp in vpps:
            if fixed[L.P_VPP] < 0 and vpp > 1 and (layers % (pp * vpp) != 0 or m % pp != 0):
                continue
            bubble = 1.0 + ((pp - 1.0) / (vpp * m) if m >= 1 else 0.0)
            for rc in rcs:
                bound_out = not go or (prune and (lb_redo if rc >= 2 else lb_one) * bubble
                                       >= min(best[0], best[3]))
                for zero in zeros:
                    for epo in epos:
                        if fixed[L.P_EPO] < 0 and epo == 1 and (ep == 1 or m < 2):
                            continue
                        for hsdp in hsdps:
                            if fixed[L.P_HSDP] < 0 and hsdp == 1 and (
                                    zero != 3 or tp * dp * cp <= domain):
                                continue
                            if bound_out:
                                best[2] += 1
                                continue
                            mp[L.P_TP] = tp
                            mp[L.P_PP] = pp
                            mp[L.P_DP] = dp
                            mp[L.P_CP] = cp
                            mp[L.P_EP] = ep
                            mp[L.P_VPP] = vpp
                            mp[L.P_MB] = b
                            mp[L.P_RECOMPUTE] = rc
                            mp[L.P_ZERO] = zero
                            mp[L.P_EPO] = epo
                            mp[L.P_HSDP] = hsdp
                            if fixed[L.P_SP] >= 0:
                                mp[L.P_SP] = fixed[L.P_SP]
                            else:
                                mp[L.P_SP] = 1 if tp > 1 else 0
                            key = ((b * eps.shape[0] + ei) * 4 + rc
                                   if b <= MAX_MICRO_BATCH and 0 <= rc <= 3 else -1)
                            st = eval_offloaded(chip, cluster, model, job, fixed[L.P_OFFLOAD],
                                                mp, out, spare, counts, best, cache, key,
                                                stamp)
                            if st != L.S_OK:
                                continue
                            step = out[L.O_STEP_S]
                            mem = out[L.O_MEM_B]
                            if step < best[0] or (step == best[0] and mem < best[1]):
                                best[0] = step
                                best[1] = mem
                                best_mp[:] = mp
                                best_out[:] = out


@njit(cache=True, parallel=True)
def search_population(chips, clusters, model, job, fixed, best_mps, best_outs, counts, status):
    """:func:`search_mappings` for every row of ``chips``/``clusters`` (one design per row)."""
    for i in prange(chips.shape[0]):
        status[i] = search_mappings(
            chips[i], clusters[i], model, job, fixed, best_mps[i], best_outs[i], counts[i]
        )


@njit(cache=True, inline='always')
def eval_offloaded(chip, cluster, model, job, fixed_off, mp, out, spare, counts, best, cache,
                   key, stamp):
    """Evaluate mapping ``mp`` with the offload ``fixed_off`` (>= 0), or (-1) without offload
    and, where that is out of memory, with each offload its ZeRO stage allows, keeping the
    fastest (ties: least HBM): offloading never speeds up a mapping that fits
    (:mod:`.offload`), so nothing faster is missed; an offload whose HBM lower bound (the
    terms it does not move) or host memory does not fit is counted out of memory
    unevaluated. A chip over its TDP whose step at full clock already exceeds ``best[0]``
    (the best step so far) is not throttled: slower at any lower clock, it is ruled out and
    counted in ``best[2]``, and the status is S_POWER. Sets ``mp[P_OFFLOAD]``, fills ``out``
    (``spare`` is scratch of the same length), counts each evaluation in ``counts`` by
    status and returns the status of the mapping kept. ``cache``, ``key``, ``stamp``: the
    per-layer costs' cache (:func:`.train.eval_cached`)."""
    mp[L.P_OFFLOAD] = fixed_off if fixed_off >= 0 else 0
    st = _eval_below(chip, cluster, model, job, mp, out, best, cache, key, stamp)
    if st >= 0:
        counts[st] += 1
    else:
        st = L.S_POWER
    if st != L.S_OOM or fixed_off >= 0:
        return st
    kept = -1
    # ``out`` holds the mapping's memory by term: an offload that cannot bring HBM (or fill
    # host memory) within bounds is decided out of memory without its evaluation (exact)
    rest = out[L.O_MEM_ACT] + out[L.O_MEM_LOGITS] + out[L.O_MEM_BUFFER]
    wg = out[L.O_MEM_WEIGHTS] + out[L.O_MEM_GRADS]
    opt = out[L.O_MEM_OPT]
    host0 = out[L.O_MEM_HOST]
    for off in range(1, 4):
        if not offload_ok(off, mp[L.P_ZERO]):
            continue
        hbm_lb = rest + (0.0 if off & OFF_OPTIMIZER else opt) + (0.0 if off & OFF_WEIGHTS
                                                                  else wg)
        host = host0 + (opt if off & OFF_OPTIMIZER else 0.0) + (
            wg if off & OFF_WEIGHTS else 0.0)
        if hbm_lb > chip[L.C_HBM_B] or host > cluster[L.K_HOST_MEM_B]:
            counts[L.S_OOM] += 1
            continue
        mp[L.P_OFFLOAD] = off
        s = _eval_below(chip, cluster, model, job, mp, spare, best, cache, key, stamp)
        if s < 0:
            continue
        counts[s] += 1
        if s == L.S_OK and (kept < 0 or spare[L.O_STEP_S] < out[L.O_STEP_S] or (
                spare[L.O_STEP_S] == out[L.O_STEP_S] and spare[L.O_MEM_B] < out[L.O_MEM_B])):
            out[:] = spare
            kept = off
    mp[L.P_OFFLOAD] = max(kept, 0)
    return L.S_OK if kept >= 0 else st


@njit(cache=True)
def _eval_below(chip, cluster, model, job, mp, out, best, cache, key, stamp):
    """:func:`.train.eval_mapping`, except that a chip over its TDP whose step at full clock
    exceeds ``best[0]`` is not throttled (a lower clock is never faster): -1, and one more
    in ``best[2]``."""
    st = eval_cached(chip, cluster, model, job, mp, out, cache, key, stamp)
    if st == L.S_POWER and chip[L.C_THROTTLES] > 0.5:
        if out[L.O_STEP_S] > min(best[0], best[3]):
            best[2] += 1
            return -1
        st = throttled(chip, cluster, model, job, mp, out)
    return st
