"""Training step-time kernel for one mapping (:func:`eval_mapping`; the search over mappings
is :mod:`.train_search`).

Per micro-batch and transformer layer on one chip, each mechanism in its own module:

* Compute (:mod:`.layer`): GEMMs, the attention core, MoE layers, norms and activation
  functions, recompute and offload; the output layer's GEMM and fp32 softmax here.
* Collectives (:mod:`.collectives`): tensor parallel = 2 all-reduces forward + 2 backward per
  layer (reduce-scatter + all-gather with sequence parallelism, same volume), not overlapped;
  context parallel = a ring passing K/V chunks, each step hidden under that step's attention
  block where it is long enough; expert parallel = all-to-all dispatch and combine, forward
  and backward (:mod:`.moe`: exposed in part where frameworks overlap it); data parallel =
  gradient all-reduce over dp x cp (experts over their own replicas), overlapped with the
  backward pass of the last micro-batch on the pacing stage (ZeRO-1: the reduce-scatter
  there, the all-gather of the updated weights under the next step's first forward pass;
  ZeRO-2: a reduce-scatter every micro-batch inside the stages); ZeRO-3 / FSDP = every
  layer's weights gathered before its forward and again before its backward and its
  gradients reduce-scattered, one layer ahead: a layer exposes what its own compute does not
  hide, and the first gather of each pass is exposed; hybrid sharding shards within the
  scale-up domain and all-reduces the shards across domains.
* Pipeline (:mod:`.pipeline`): 1F1B with ``vpp`` interleaved virtual stages; the slowest
  stage (leading dense layers on the first, output layer on the last) sets the pace.
* Adam step: memory-bound over the local optimizer shard.
* Memory (:mod:`.memory`): model states by ZeRO stage, activations of the micro-batches in
  flight, logits, buffers; each term is an output.

Power limit (:mod:`.dvfs`): a chip whose workload would draw more than its TDP either is
infeasible (``C_THROTTLES = 0``: the designs, whose TDP is their sustained peak) or, like a
shipping chip, lowers its clock until it fits (``C_THROTTLES = 1``): the mapping is
re-evaluated on the slower chip, and ``O_CLOCK`` reports the clock it sustains.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import head_dims, projection_params
from codesign.model.kernels.collectives import (
    allreduce_time,
    alltoall_time,
    gradient_sync,
    level,
    ranks_in_domain,
    ring_allgather_time,
    scaleout_link,
)
from codesign.model.kernels.common import (
    energy_per_flop,
    matmul_peak,
    platform_ok,
)
from codesign.model.kernels.dvfs import next_clock
from codesign.model.kernels.gemm import gemm_cost, tile_elems
from codesign.model.kernels.layer import (
    costs_from,
    costs_to,
    gemm_flops_per_token,
    layer_costs,
)
from codesign.model.kernels.memory import WEIGHT_B, train_memory
from codesign.model.kernels.moe import a2a_volume, exposed_a2a
from codesign.model.kernels.offload import (
    OFF_OPTIMIZER,
    OFF_WEIGHTS,
    host_adam_time,
    layer_host_time,
    offload_ok,
)
from codesign.model.kernels.pipeline import pipe_time, stage_layers, stage_time

ADAM_BYTES_PER_PARAM = 30.0
"""Adam step traffic per local parameter: read fp32 master, m, v, grad (16 B), write master,
m, v (12 B) and the 16-bit weight copy (2 B)."""


@njit(cache=True)
def eval_mapping(chip, cluster, model, job, mp, out):
    """Evaluate one mapping; fills ``out`` (layout ``O_*``) and returns a status code ``S_*``.

    A chip with ``C_THROTTLES`` set that would exceed its TDP runs at the highest clock that
    fits, reported in ``O_CLOCK`` (:func:`codesign.model.kernels.dvfs.next_clock`); S_POWER only if
    even the clock floor does not fit."""
    st = eval_at_clock(chip, cluster, model, job, mp, out)
    if st == L.S_POWER and chip[L.C_THROTTLES] > 0.5:
        st = throttled(chip, cluster, model, job, mp, out)
    return st


@njit(cache=True)
def throttled(chip, cluster, model, job, mp, out):
    """The clock search of :func:`eval_mapping` for a chip over its TDP at full clock (the
    evaluation in ``out``): the mapping at the highest clock that fits, or S_POWER. Apart,
    so that the common path allocates nothing."""
    scaled, state = np.empty(chip.shape[0]), np.array([0.0, 1.0, 1.0, 0.0])
    st = L.S_POWER
    while next_clock(chip, out[L.O_CHIP_W], scaled, state, out, L.O_CLOCK):
        st = eval_at_clock(scaled, cluster, model, job, mp, out)
    return st


@njit(cache=True)
def eval_at_clock(chip, cluster, model, job, mp, out):
    """Evaluate one mapping on the chip as given (no throttling: over its TDP is S_POWER);
    fills ``out`` (layout ``O_*``, ``O_CLOCK`` = 1) and returns a status code ``S_*``."""
    # key -1: no cache row is read or written (``out`` viewed as one serves as the array)
    return eval_cached(chip, cluster, model, job, mp, out, out.reshape((1, out.shape[0])), -1,
                       0.0)


@njit(cache=True)
def eval_cached(chip, cluster, model, job, mp, out, cache, key, gen):
    """:func:`eval_at_clock`, taking the per-layer costs (:func:`.layer.layer_costs`) from row
    ``key`` of ``cache`` when its first column holds ``gen``, else computing them and (for
    ``key`` >= 0) storing them there. The costs depend on (tp, cp, ep, micro-batch, sequence
    parallel, recompute) of the chip as given: the caller keys and stamps rows so that one
    row is one such combination (the mapping search: per tp x cp, a row per (micro-batch,
    ep, recompute))."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    tp = mp[L.P_TP]
    pp = mp[L.P_PP]
    dp = mp[L.P_DP]
    cp = mp[L.P_CP]
    ep = mp[L.P_EP]
    vpp = mp[L.P_VPP]
    b = mp[L.P_MB]
    rc = mp[L.P_RECOMPUTE]
    zero = mp[L.P_ZERO]
    sp = mp[L.P_SP]
    epo = mp[L.P_EPO]
    hsdp = mp[L.P_HSDP]
    off = mp[L.P_OFFLOAD]
    if tp < 1 or pp < 1 or dp < 1 or cp < 1 or ep < 1 or vpp < 1 or b < 1:
        return L.S_INVALID
    if rc < 0 or rc > 3 or zero < 0 or zero > 3 or sp < 0 or sp > 1 or epo < 0 or epo > 1:
        return L.S_INVALID
    if hsdp < 0 or hsdp > 1 or not offload_ok(off, zero):
        return L.S_INVALID

    n_chips = cluster[L.K_N_CHIPS]
    layers = model[L.M_LAYERS]
    h = model[L.M_HIDDEN]
    heads = model[L.M_HEADS]
    f = model[L.M_FFN]
    vocab = model[L.M_VOCAB]
    gated = model[L.M_GATED] > 0.5
    experts = model[L.M_EXPERTS]
    topk = model[L.M_TOPK]
    f_moe = model[L.M_MOE_FFN]
    shared = model[L.M_SHARED]
    dense_layers = model[L.M_DENSE_LAYERS]
    window = model[L.M_WINDOW]
    seq = job[L.J_SEQ]
    gbatch = job[L.J_GBATCH]
    el_b = job[L.J_BYTES]
    grad_b = job[L.J_GRAD_B]
    prec = int(job[L.J_PREC])
    peak, eff_gemm = matmul_peak(chip, prec)
    eff_mem = chip[L.C_MEM_EFF]
    eff_net = chip[L.C_NET_EFF]

    # --- input sanity (status, never an exception) ---
    if not (n_chips >= 1 and layers >= 1 and h >= 1 and heads >= 1
            and model[L.M_KV_HEADS] >= 1):
        return L.S_BAD_INPUT
    if not (seq >= 1 and gbatch >= 1 and el_b > 0 and grad_b > 0 and vocab >= 1 and f >= 0):
        return L.S_BAD_INPUT
    if not (model[L.M_HEAD_DIM] >= 0 and model[L.M_V_HEAD_DIM] >= 0 and window >= 0
            and 0 <= model[L.M_WINDOW_LAYERS] <= layers and 0 <= dense_layers <= layers):
        return L.S_BAD_INPUT
    imbalance = job[L.J_MOE_IMB]
    if not (imbalance >= 1.0):
        return L.S_BAD_INPUT
    if not (platform_ok(chip, cluster, prec) and chip[L.C_DOMAIN] >= 1):
        return L.S_BAD_INPUT
    peak_attn = chip[L.C_FLOPS_FP32] if prec == 0 else chip[L.C_FLOPS_BF16]
    if not (peak > 0 and peak_attn > 0):
        return L.S_NO_COMPUTE
    act_b = max(el_b, 2.0)  # activations, gradients and collectives stay 16-bit in fp8 recipes
    fp8_inputs = el_b < 2.0  # ... but fp8 recipes keep the fp8 copy of GEMM inputs
    dqk, dv, nkv, _kv_lora = head_dims(model)

    # --- divisibility ---
    n_used = tp * cp * pp * dp
    if n_used > n_chips:
        return L.S_INVALID
    if heads % tp != 0 or (nkv % tp != 0 and tp % nkv != 0):
        return L.S_INVALID
    if pp > layers or int(seq) % cp != 0 or int(gbatch) % (dp * b) != 0:
        return L.S_INVALID
    m = int(gbatch) // (dp * b)  # micro-batches per pipeline per step
    if vpp > 1 and (pp == 1 or m % pp != 0 or layers < pp * vpp):
        return L.S_INVALID
    is_moe = experts > 0
    if is_moe:  # expert parallelism folds over cp x dp (Megatron-Core parallel folding)
        if int(experts) % ep != 0 or (cp * dp) % ep != 0:
            return L.S_INVALID
    elif ep != 1:
        return L.S_INVALID
    if epo == 1 and not (is_moe and ep > 1 and m >= 2):
        return L.S_INVALID  # nothing to overlap: no expert parallelism or one micro-batch
    if tp == 1:
        sp = 0
    full = rc >= 2  # full recompute (offloaded or not)

    # --- network: per-chip per-direction bandwidth of each level, where each group sits ---
    topo = int(cluster[L.K_TOPOLOGY])
    domain = chip[L.C_DOMAIN]
    up_raw = chip[L.C_UP_BPS]
    out_bps, out_lat = scaleout_link(chip, cluster)
    up_lat = cluster[L.K_UP_LAT_S]
    dpc = dp * cp  # ranks that hold the same (non-expert) weights
    edp = dpc // ep  # ranks that hold the same experts
    if hsdp == 1 and not (zero == 3 and tp * dpc > domain):
        return L.S_INVALID  # hybrid sharding only splits a ZeRO-3 group that spans domains
    # ZeRO shards the states over sh (sh_e for experts) ranks: the whole replica group, or
    # with hybrid sharding the part of it inside one scale-up domain
    sh = ranks_in_domain(dpc, tp, domain) if hsdp == 1 else dpc
    sh_e = ranks_in_domain(edp, tp * ep, domain) if hsdp == 1 else edp
    # every group of more than one rank needs the link it sits on (dp may use both levels)
    needs_up = (tp > 1 and tp <= domain) or (cp > 1 and tp * cp <= domain)
    needs_up = needs_up or (ep > 1 and tp * ep <= domain) or (pp > 1 and n_used <= domain)
    needs_up = needs_up or (dpc > 1 and tp < domain)
    needs_out = (tp > 1 and tp > domain) or (cp > 1 and tp * cp > domain)
    needs_out = needs_out or (ep > 1 and tp * ep > domain) or (pp > 1 and n_used > domain)
    needs_out = needs_out or (dpc > 1 and tp * dpc > domain)
    if (needs_up and not (up_raw > 0)) or (needs_out and not (out_bps > 0)):
        return L.S_NO_BW
    tp_bw, tp_lat = level(tp, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)

    # --- parameters on the busiest chip: non-expert weights (replicated over dp x cp) and
    # expert weights (replicated over dp x cp / ep); the first pipeline stage (the leading
    # dense layers, the most activations in flight) is the busiest for memory ---
    mlp_mats = 2.0 if gated else 1.0  # GEMM width multiple of the first MLP GEMM
    p_split, p_whole = projection_params(model)
    dense_mlp_p = (mlp_mats + 1.0) * h * f
    attn_p = p_split / tp + p_whole
    layer_dense_p = attn_p + dense_mlp_p / tp
    layer_moe_shared_p = attn_p + ((mlp_mats + 1.0) * h * f_moe * shared + h * experts) / tp
    layer_expert_p = (mlp_mats + 1.0) * h * f_moe * experts / ep / tp
    mix = stage_layers(layers, pp, dense_layers if is_moe else layers)
    n_d = mix[1]
    n_m = mix[0] - mix[1]
    p_nonexp = n_d * layer_dense_p + n_m * layer_moe_shared_p + vocab * h / tp
    p_exp = n_m * layer_expert_p
    big_p = layer_dense_p if n_d > 0 else 0.0  # the largest layer on the chip
    if n_m > 0:
        big_p = max(big_p, layer_moe_shared_p + layer_expert_p)
    # --- memory on the busiest (first) stage: exact before any timing, so a mapping that
    # does not fit costs no more than this (:func:`.memory.train_memory`) ---
    mem, host_b = train_memory(model, job, tp, cp, pp, vpp, b, sp, rc, zero, off, m, dpc,
                               p_nonexp, p_exp, sh, sh_e, big_p, n_d, n_m, out)
    if mem > chip[L.C_HBM_B] or host_b > cluster[L.K_HOST_MEM_B]:
        return L.S_OOM
    s_loc = seq / cp
    unfused = job[L.J_ATTN] > 0.5

    # --- per-layer compute of one micro-batch on one chip (:mod:`.layer`) ---
    if key >= 0 and cache[key, 0] == gen:
        costs = costs_from(cache[key])
    else:
        costs = layer_costs(chip, model, job, tp, cp, ep, b, sp, rc, peak, eff_gemm,
                            peak_attn, act_b, fp8_inputs)
        if key >= 0:
            costs_to(cache[key], costs, gen)
    (t_attn, t_attn_bwd, attn_flops, attn_bytes, attn_bwd_x, t_d_fwd, t_d_bwd, t_d_rc,
     x_off, d_flops, d_bytes, t_m_fwd, t_m_bwd, t_m_rc, m_flops, m_bytes, moe_gemm,
     moe_other) = costs
    hbm = chip[L.C_HBM_BPS]
    # host copies of a layer (offloaded layer inputs, offloaded weights) beside its compute
    host_bps = cluster[L.K_HOST_BPS]
    t_d_off, x_host_d = layer_host_time(x_off, layer_dense_p, off, t_d_fwd, t_d_bwd + t_d_rc,
                                        WEIGHT_B, grad_b, host_bps, hbm * eff_mem)
    t_m_off, x_host_m = layer_host_time(x_off, layer_moe_shared_p + layer_expert_p, off,
                                        t_m_fwd, t_m_bwd + t_m_rc, WEIGHT_B, grad_b, host_bps,
                                        hbm * eff_mem)
    tok = b * s_loc  # tokens per micro-batch on this chip's tp group
    kv_c = max(1.0, nkv / tp)

    # --- communication per layer and micro-batch (forward + backward) ---
    t_layer_tp = 0.0
    tp_fwd_share = 0.5  # of the tp collectives, those of the forward pass
    layer_link = 0.0  # bytes this chip sends per layer and micro-batch
    if tp > 1:
        t_layer_tp = 4.0 * allreduce_time(act_b * tok * h, tp, tp_bw, tp_lat)
        layer_link = 4.0 * 2.0 * (tp - 1.0) / tp * act_b * tok * h
        if full:
            t_layer_tp *= 1.5  # the recomputed forward repeats its two collectives
            layer_link *= 1.5
            tp_fwd_share = 1.0 / 3.0
    t_layer_cp = 0.0
    cp_fwd = 0.0
    if cp > 1:
        cp_bw, cp_lat = level(tp * cp, domain, up_raw, topo, eff_net, out_bps, up_lat,
                              out_lat)
        kv_vol = act_b * b * s_loc * kv_c * (dqk + dv)  # one K/V chunk of this chip
        t_send = kv_vol / cp_bw + cp_lat
        # each of the cp - 1 ring steps hides its send under that step's attention block;
        # backward passes K/V and their gradients
        cp_fwd = (cp - 1.0) * max(0.0, t_send - t_attn / cp)
        t_layer_cp = cp_fwd + (cp - 1.0) * max(0.0, 2.0 * t_send - t_attn_bwd / cp)
        layer_link += 3.0 * (cp - 1.0) * kv_vol
    t_layer_ep = 0.0
    ep_f = 0.0
    ep_b = 0.0
    ep_link = 0.0
    if is_moe and ep > 1:
        ep_bw, ep_lat = level(tp * ep, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)
        vol = a2a_volume(tok, topk, h, tp, act_b, imbalance)
        # dispatch + combine forward and backward (and again for a recomputed forward)
        n_a2a = 6.0 if full else 4.0
        t_one = alltoall_time(vol, ep, tp, domain, ep_bw, out_bps, ep_lat, out_lat)
        # dispatch + combine of the forward under the forward's compute, the rest under the
        # backward's (the recomputed forward's included)
        ep_f = exposed_a2a(2.0 * t_one, t_m_fwd, epo)
        ep_b = exposed_a2a((n_a2a - 2.0) * t_one, t_m_bwd + t_m_rc, epo)
        t_layer_ep = ep_f + ep_b
        ep_link = n_a2a * vol * (ep - 1.0) / ep
    # the compute stream of a layer, forward and backward: kernels and the communication
    # they wait for (tp collectives, the exposed cp ring and all-to-all, offload copies)
    f_d = t_d_fwd + tp_fwd_share * t_layer_tp + cp_fwd
    b_d = t_d_bwd + t_d_rc + (1.0 - tp_fwd_share) * t_layer_tp + t_layer_cp - cp_fwd + t_d_off
    f_m = 0.0
    b_m = 0.0
    if is_moe:
        f_m = t_m_fwd + tp_fwd_share * t_layer_tp + cp_fwd + ep_f
        b_m = (t_m_bwd + t_m_rc + (1.0 - tp_fwd_share) * t_layer_tp + t_layer_cp - cp_fwd
               + ep_b + t_m_off)

    # --- ZeRO-3 / FSDP: per layer, gather the weights before the forward and again before
    # the backward (and the recomputed forward: the weights are released after every
    # forward), reduce-scatter the gradients; one flat ring over the sharding group each
    # (dp x cp, or dp x cp / ep for the experts; its in-domain part under hybrid sharding),
    # beside the compute stream: a layer takes the longer of the two ---
    g_d = 0.0
    g_m = 0.0
    fsdp_link = 0.0
    if zero == 3 and dpc > 1:
        sh_bw, sh_lat = level(tp * sh, domain, up_raw, topo, eff_net, out_bps, up_lat,
                              out_lat)
        vd = WEIGHT_B * layer_dense_p
        vm_s = WEIGHT_B * layer_moe_shared_p
        vm_e = WEIGHT_B * layer_expert_p
        g_d = ring_allgather_time(vd, sh, sh_bw, sh_lat)
        g_m = ring_allgather_time(vm_s, sh, sh_bw, sh_lat)
        if sh_e > 1:
            eb, el = level(tp * ep * sh_e, domain, up_raw, topo, eff_net, out_bps, up_lat,
                           out_lat)
            g_m += ring_allgather_time(vm_e, sh_e, eb, el)
        n_g = 2.0 if full else 1.0
        fsdp_link = m * ((n_g + 1.0) * WEIGHT_B + grad_b) / WEIGHT_B * (
            (sh - 1.0) / sh * (n_d * vd + n_m * vm_s)
            + ((sh_e - 1.0) / sh_e * n_m * vm_e if sh_e > 1 else 0.0))
        ff_d = max(f_d, g_d)
        bb_d = max(b_d, n_g * g_d + g_d * grad_b / WEIGHT_B)
        ff_m = max(f_m, g_m)
        bb_m = max(b_m, n_g * g_m + g_m * grad_b / WEIGHT_B)
    else:
        ff_d, bb_d, ff_m, bb_m = f_d, b_d, f_m, b_m

    # --- data-parallel reductions outside ZeRO-3 (:func:`.collectives.gradient_sync`) ---
    t_rs, t_ag = gradient_sync(zero, hsdp, grad_b, p_nonexp, p_exp, dpc, edp, sh, sh_e, tp, ep,
                               domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)
    # ZeRO-2 keeps only its shard of the gradients: every micro-batch reduce-scatters its own
    # under its backward pass, part of each stage's work
    rs_mb = t_rs if zero == 2 else 0.0

    # --- pipeline stages: the first holds the leading dense layers, the last the output;
    # each stage runs the forward and backward streams of its layers ---
    t_logits_f, by_logits = gemm_cost(tok, h, vocab / tp, peak, eff_gemm, hbm, eff_mem,
                                      chip[L.C_SRAM_B], el_b, chip[L.C_UNITS],
                                      tile_elems(chip), chip[L.C_MIN_TILE_M])
    by_logits += 3.0 * 4.0 * tok * vocab / tp  # fp32 softmax + loss
    t_logits_f += 3.0 * 4.0 * tok * vocab / tp / (hbm * eff_mem)
    t_logits = 3.0 * t_logits_f
    t_stage, pace_b = stage_time(mix, pp, ff_d, ff_m, bb_d, bb_m, t_logits_f,
                                 t_logits * 2.0 / 3.0, rs_mb)
    t_p2p = 0.0
    p2p_bytes = 0.0
    if pp > 1:
        pp_bw, pp_lat = level(n_used, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)
        p2p_vol = act_b * tok * h / tp  # Megatron scatter/gather optimisation
        t_p2p = 2.0 * vpp * (p2p_vol / pp_bw + pp_lat)
        p2p_bytes = 2.0 * vpp * p2p_vol
    t_pipe, t_bubble = pipe_time(m, pp, vpp, t_stage, t_p2p)

    # --- what the step waits for beyond the pipeline: the first gather of each micro-batch
    # (ZeRO-3), the gradient reduction under the last micro-batch's backward on the pacing
    # stage (ZeRO-0/1, hybrid sharding), the weights' all-gather under the next step's first
    # forward ---
    t_first_g = m * 2.0 * (g_d if n_d > 0 else g_m)
    t_dp_exposed = (t_first_g + (max(0.0, t_rs - pace_b) if zero != 2 else 0.0)
                    + max(0.0, t_ag - (n_d * ff_d + n_m * ff_m)))
    x_layers = m * (n_d * ((ff_d - f_d) + (bb_d - b_d)) + n_m * ((ff_m - f_m) + (bb_m - b_m)))
    t_fsdp = t_first_g + x_layers
    if zero == 3:
        dp_link = fsdp_link + (2.0 * grad_b * (p_nonexp / sh + p_exp / sh_e) if hsdp == 1
                               else 0.0)
    else:
        dp_link = 2.0 * ((dpc - 1.0) / dpc * grad_b * p_nonexp
                         + ((edp - 1.0) / edp * grad_b * p_exp if edp > 1 else 0.0))
        if zero == 2:
            dp_link *= 0.5 * (m + 1.0)  # m reduce-scatters and one all-gather
    shard_ne = sh if zero >= 1 else 1.0
    shard_e = sh_e if zero >= 1 else 1.0
    opt_bytes = ADAM_BYTES_PER_PARAM * (p_nonexp / shard_ne + p_exp / shard_e)
    t_opt = opt_bytes / (hbm * eff_mem)
    t_opt_chip = t_opt
    adam_link = 0.0
    if off & OFF_OPTIMIZER:  # the host CPU's Adam, never faster than the chip's
        t_host, adam_link = host_adam_time(p_nonexp / shard_ne + p_exp / shard_e,
                                           (off & OFF_WEIGHTS) != 0, ADAM_BYTES_PER_PARAM,
                                           WEIGHT_B, grad_b, host_bps,
                                           cluster[L.K_HOST_DRAM_BPS])
        t_opt = max(t_opt, t_host)
        opt_bytes = 0.0

    step = t_pipe + t_dp_exposed + t_opt
    if not (step > 0) or not math.isfinite(step):
        return L.S_BAD_INPUT

    out[L.O_T_HOST] = m * (n_d * t_d_off + n_m * t_m_off) + t_opt - t_opt_chip

    tokens = seq * gbatch
    out[L.O_STEP_S] = step
    out[L.O_TOKENS_PER_S] = tokens / step
    # model FLOPs per token (Megatron / PaLM convention): 6 x the active weights + the
    # attention's score products over the whole sequence, forward and backward
    model_flops_tok = (3.0 * gemm_flops_per_token(model)
                       + 6.0 * layers * heads * (dqk + dv) * seq)
    out[L.O_MFU] = model_flops_tok * tokens / (step * n_chips * peak)
    t_comp = n_d * (t_d_fwd + t_d_bwd + t_d_rc) + n_m * (t_m_fwd + t_m_bwd + t_m_rc)
    busy = m * t_comp / step
    if busy > 1.0:
        busy = 1.0
    # energy of one step on the busiest chip: what it computes, moves and sends, + leakage
    rc_f = 1.0 if full else 0.0
    layer_flops_d = (3.0 + rc_f) * d_flops + (1.0 + attn_bwd_x + rc_f) * attn_flops
    layer_flops_m = (3.0 + rc_f) * m_flops + (1.0 + attn_bwd_x + rc_f) * attn_flops
    layer_bytes_d = (3.0 + rc_f) * d_bytes + (1.0 + attn_bwd_x + rc_f) * attn_bytes
    layer_bytes_m = (3.0 + rc_f) * m_bytes + (1.0 + attn_bwd_x + rc_f) * attn_bytes
    if rc == 1 and unfused:  # the attention core again
        layer_flops_d += attn_flops
        layer_flops_m += attn_flops
        layer_bytes_d += attn_bytes
        layer_bytes_m += attn_bytes
    step_flops = m * (n_d * layer_flops_d + n_m * layer_flops_m
                      + 3.0 * 2.0 * tok * h * vocab / tp)
    step_hbm = m * (n_d * layer_bytes_d + n_m * layer_bytes_m + 3.0 * by_logits) + opt_bytes
    step_link = (m * ((n_d + n_m) * layer_link + n_m * ep_link + p2p_bytes) + dp_link
                 + m * (n_d * x_host_d + n_m * x_host_m) + adam_link)
    w_compute = energy_per_flop(chip, prec) * step_flops / step
    w_hbm = chip[L.C_E_HBM] * step_hbm / step
    w_link = chip[L.C_E_LINK] * step_link / step
    w_busy = chip[L.C_BUSY_W] * busy
    chip_w = w_compute + w_hbm + w_link + chip[L.C_LEAK_W] + w_busy
    out[L.O_W_COMPUTE] = w_compute
    out[L.O_W_HBM] = w_hbm
    out[L.O_W_LINK] = w_link
    out[L.O_W_BUSY] = w_busy
    out[L.O_W_LEAK] = chip[L.C_LEAK_W]
    cluster_w = n_chips * (chip_w + cluster[L.K_HOST_W]) * cluster[L.K_PUE]
    out[L.O_FLOPS] = step_flops
    out[L.O_HBM_B] = step_hbm
    out[L.O_LINK_B] = step_link
    out[L.O_CHIP_W] = chip_w
    out[L.O_CLUSTER_W] = cluster_w
    out[L.O_TOK_PER_J] = tokens / step / cluster_w if cluster_w > 0 else 0.0
    out[L.O_T_COMPUTE] = m * t_comp
    out[L.O_T_CP] = m * (n_d + n_m) * t_layer_cp
    out[L.O_T_EP] = m * n_m * t_layer_ep
    out[L.O_T_TP] = m * (n_d + n_m) * t_layer_tp + out[L.O_T_CP] + out[L.O_T_EP]
    out[L.O_T_BUBBLE] = t_bubble
    # exposed data-parallel time: outside the pipeline, and inside its stages (the ZeRO-3
    # gathers a layer's compute does not hide, ZeRO-2's per-micro-batch reduce-scatters)
    out[L.O_T_DP] = (t_dp_exposed + x_layers
                     + (m * max(0.0, rs_mb - pace_b) if zero == 2 else 0.0))
    out[L.O_T_FSDP] = t_fsdp
    out[L.O_T_OPT] = t_opt
    out[L.O_T_PP] = m * t_p2p
    out[L.O_T_MOE] = m * n_m * ((4.0 if full else 3.0) * moe_gemm
                                + (3.0 if full else 2.0) * moe_other)
    attn_again = full or (rc == 1 and unfused)
    out[L.O_T_ATTN] = m * (n_d + n_m) * (t_attn + t_attn_bwd + (t_attn if attn_again else 0.0))
    out[L.O_BUSY] = busy
    out[L.O_N_USED] = n_used
    out[L.O_CLOCK] = 1.0
    if chip_w > chip[L.C_TDP_W]:
        return L.S_POWER
    return L.S_OK
