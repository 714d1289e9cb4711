"""Inference kernel: one serving mapping (:func:`infer_eval`; the best one is
:mod:`.infer_search`'s).

A replica is ``tp x pp`` chips; each layer's experts spread over ``ep`` chips of its stage's
tp group (``ep <= tp``); ``n_chips / (tp pp)`` replicas serve independent requests, and a fixed
concurrency caps the requests in flight (``min(concurrency, replicas x B)``). Per replica, in
steady-state continuous batching with ``B`` sequences in flight, each of input length ``isl``
and output length ``osl``:

* Prefill: the prompts a replica admits are prefilled together, up to
  :data:`PREFILL_TOKEN_BUDGET` tokens per forward pass (``P = budget / isl`` prompts, at least
  one, at most ``B``), as vLLM and TensorRT-LLM batch them: the pass's GEMMs have ``m = P isl``
  rows, so weights (and a MoE layer's experts) are read once for ``P`` prompts and a MoE
  expert sees ``P isl topk / experts`` tokens; fused causal attention per prompt.
* Decode step: one forward pass for ``B`` new tokens. Every weight is read from HBM once per
  step (GEMMs with ``m = B``) and each sequence reads its KV cache (mean context
  ``isl + osl/2``): memory-bound until ``B`` reaches the chip's FLOP/byte balance point.
  MoE layers read only the experts the step's tokens touch (``E (1 - (1 - 1/E)^(B k))``),
  as one grouped GEMM.
* Collectives: two all-reduces per layer over the tp group (latency-bound in decode),
  all-to-all dispatch and combine over ep, point-to-point between pipeline stages.
* In the time one request is served (``osl`` steps) the other ``B - 1`` are replaced once, so
  ``ITL = t_decode + (B-1) t_prefill / osl``, ``TTFT = t_prefill_pass (+ t_decode if B > 1)``
  (``t_prefill`` one prompt's share of a prefill pass), and a replica emits
  ``B osl / (B t_prefill + osl t_decode)`` tokens/s.
* Pipeline stages split the weights, and up to ``pp`` batches of ``B`` sequences are in
  flight per replica, each at a different stage (as vLLM and TensorRT-LLM pipeline
  parallelism runs; fewer batches when the concurrency does not fill them: ``n``). With
  ``s_pre``, ``s_dec`` the slowest stage's times (the last one: output layer and one hop):
  a cycle is ``max(B t_prefill + osl t_decode, n (B s_pre + osl s_dec))``, a replica emits
  ``n B osl / cycle`` tokens/s, ``ITL = max(t_decode, n s_dec) + (n B - 1) s_pre / osl``.
  With pp = 1 these are the formulas above; so pp buys memory and, when the stages are
  balanced, throughput, at the cost of the hops.
* Memory per chip (:func:`memory_per_chip`): weights at their precision + KV cache
  ``L/pp kv_heads/tp (d_k + d_v)`` per token (kv heads replicate when tp > kv_heads; with
  multi-head latent attention the latent, on every tp rank, and decode attends over that
  latent with the query absorbed) for ``n B (isl + osl)`` tokens + buffers, within
  ``HBM_UTIL`` of HBM. The largest batch that fits caps ``B``.

Latency limits (TTFT, ITL) are constraints of the search: a mapping over them is S_SLO.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import (
    decode_cost,
    head_dims,
    layers_flash_cost,
    projection_params,
    window_share,
)
from codesign.model.kernels.collectives import allreduce_time, level, scaleout_link
from codesign.model.kernels.common import energy_per_flop, matmul_peak, platform_ok
from codesign.model.kernels.dvfs import next_clock
from codesign.model.kernels.gemm import gemm_time, grouped_gemm_cost, tile_elems
from codesign.model.kernels.layer import KERNELS_PER_LAYER
from codesign.model.kernels.memory import BUFFER_B, serving_weight_kv_bytes
from codesign.model.kernels.moe import PERMUTE_KERNELS, ROUTER_ELEM_BYTES

HBM_UTIL = 0.90
"""Share of HBM a serving engine may fill with weights and KV cache (vLLM's default
``gpu_memory_utilization``; TensorRT-LLM reserves a similar share)."""
ACT_B = 2.0
"""Activations and collectives stay 16-bit (fp8 serving quantises weights and KV cache)."""
PREFILL_TOKEN_BUDGET = 8192.0
"""Prompt tokens prefilled together in one forward pass (vLLM's ``max_num_batched_tokens``
default of 8192 with chunked prefill; TensorRT-LLM's ``max_num_tokens`` default is 8192)."""
MAX_BATCH = 4096
MAX_PP = 16


@njit(cache=True)
def memory_per_chip(model, job, tp, pp, ep):
    """(weight bytes, KV-cache bytes per sequence) on one chip of a (tp, pp, ep) replica."""
    dqk, dv, nkv, kv_lora = head_dims(model)
    split, whole = projection_params(model)
    latent = model[L.M_KV_LATENT]
    if kv_lora > 0.0 and not (latent > 0.0):
        latent = kv_lora + model[L.M_ROPE_DIM]
    return serving_weight_kv_bytes(
        model[L.M_LAYERS], model[L.M_HIDDEN], model[L.M_HEADS], nkv, dqk, dqk, dv,
        model[L.M_FFN], model[L.M_GATED] > 0.5, model[L.M_EXPERTS], model[L.M_DENSE_LAYERS],
        model[L.M_MOE_FFN], model[L.M_SHARED], model[L.M_VOCAB], latent if kv_lora > 0 else 0.0,
        split + whole * tp, tp, pp, ep, job[L.I_ISL] + job[L.I_OSL], job[L.I_W_BYTES],
        job[L.I_KV_BYTES])


@njit(cache=True)
def kv_room(chip, w_bytes):
    """Bytes left for the KV cache on one chip after weights and buffers."""
    return HBM_UTIL * chip[L.C_HBM_B] - w_bytes - BUFFER_B


@njit(cache=True)
def forward_time(chip, cluster, model, job, tp, pp, ep, tokens, n_seq, ctx, prefill, out2):
    """Seconds for one forward pass of ``tokens`` new tokens (``n_seq`` sequences, attention
    context ``ctx`` each) through a replica. ``out2[0]`` gets the busy time (compute or HBM
    bound kernels), ``out2[1]`` the FLOPs, ``out2[2]`` the HBM bytes and ``out2[3]`` the link
    bytes one chip handles in the pass, and ``out2[4]`` the time of the slowest pipeline
    stage: the last one, with the output layer and one hop in (the whole pass when pp = 1)."""
    prec = int(job[L.I_PREC])
    w_b = job[L.I_W_BYTES]
    kv_b = job[L.I_KV_BYTES]
    peak, eff = matmul_peak(chip, prec)
    peak16 = chip[L.C_FLOPS_FP32] if prec == 0 else chip[L.C_FLOPS_BF16]
    hbm = chip[L.C_HBM_BPS]
    mem_eff = chip[L.C_MEM_EFF]
    sram = chip[L.C_SRAM_B]
    units = chip[L.C_UNITS]
    tile = tile_elems(chip)
    min_tm = chip[L.C_MIN_TILE_M]
    layers = model[L.M_LAYERS]
    h = model[L.M_HIDDEN]
    heads = model[L.M_HEADS]
    f = model[L.M_FFN]
    mats = 3.0 if model[L.M_GATED] > 0.5 else 2.0
    experts = model[L.M_EXPERTS]
    topk = model[L.M_TOPK]
    f_moe = model[L.M_MOE_FFN]
    n_moe = layers - model[L.M_DENSE_LAYERS] if experts > 0 else 0.0
    dqk, dv, nkv, kv_lora = head_dims(model)
    window = model[L.M_WINDOW]

    # network
    topo = int(cluster[L.K_TOPOLOGY])
    domain = chip[L.C_DOMAIN]
    up_raw = chip[L.C_UP_BPS]
    eff_net = chip[L.C_NET_EFF]
    up_lat = cluster[L.K_UP_LAT_S]
    out_bps, out_lat = scaleout_link(chip, cluster)
    tp_bw, tp_lat = level(tp, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)

    flops = 0.0
    hbm_bytes = 0.0
    # attention projections: weights k x n are read once per pass (the roofline's k n term)
    split, whole = projection_params(model)
    if kv_lora > 0.0:
        q_lora = model[L.M_Q_LORA]
        rope = model[L.M_ROPE_DIM]
        q_in = q_lora if q_lora > 0.0 else h
        t_qkv = gemm_time(tokens, h, q_lora + kv_lora + rope, peak, eff, hbm, mem_eff, sram,
                          w_b, units, tile, min_tm)
        t_qkv += gemm_time(tokens, q_in, heads * dqk / tp, peak, eff, hbm, mem_eff, sram, w_b,
                           units, tile, min_tm)
        if prefill:  # the keys and values are up-projected for the prompt's attention
            t_qkv += gemm_time(tokens, kv_lora, heads * (dqk - rope + dv) / tp, peak, eff,
                               hbm, mem_eff, sram, w_b, units, tile, min_tm)
    else:
        t_qkv = gemm_time(tokens, h, (heads * dqk + nkv * (dqk + dv)) / tp, peak, eff, hbm,
                          mem_eff, sram, w_b, units, tile, min_tm)
    t_proj = gemm_time(tokens, heads * dv / tp, h, peak, eff, hbm, mem_eff, sram, w_b, units,
                       tile, min_tm)
    flops += 2.0 * tokens * (split / tp + whole)
    hbm_bytes += w_b * (split / tp + whole)
    # attention: causal over the prompt in prefill; over the whole cache in decode
    kv_chip = max(1.0, nkv / tp)
    if prefill:
        t_attn, _, a_flops, a_bytes = layers_flash_cost(
            n_seq, ctx, ctx, heads / tp, dqk, dv, kv_chip, window, window_share(model), peak16,
            chip[L.C_ATTN_EFF], hbm, mem_eff, ACT_B)
    else:
        latent = 0.0
        if kv_lora > 0.0:
            latent = model[L.M_KV_LATENT] if model[L.M_KV_LATENT] > 0 else kv_lora + model[
                L.M_ROPE_DIM]
        span = ctx
        fw = window_share(model)
        if fw > 0.0:
            span = (1.0 - fw) * ctx + fw * min(window, ctx)
        t_attn, a_flops, a_bytes = decode_cost(tokens, n_seq, span, heads / tp, kv_chip, dqk,
                                               dv, latent, kv_b, peak16, chip[L.C_ATTN_EFF],
                                               hbm, mem_eff)
    flops += a_flops
    hbm_bytes += a_bytes
    # MLP: dense layers, or the experts the pass touches
    t_dense = gemm_time(tokens, h, (mats - 1.0) * f / tp, peak, eff, hbm, mem_eff, sram, w_b,
                        units, tile, min_tm)
    t_dense += gemm_time(tokens, f / tp, h, peak, eff, hbm, mem_eff, sram, w_b, units, tile,
                         min_tm)
    t_moe = 0.0
    t_a2a = 0.0
    touched = 0.0
    if experts > 0:
        tp_e = max(1.0, tp / ep)
        touched = 1.0 - (1.0 - 1.0 / experts) ** (tokens * topk)  # share of experts in use
        local = experts / ep * touched
        m_exp = tokens * topk / (experts * touched)  # tokens per touched expert
        t_up, _ = grouped_gemm_cost(local, m_exp, h, (mats - 1.0) * f_moe / tp_e, peak, eff,
                                    hbm, mem_eff, sram, w_b, units, tile, min_tm)
        t_dn, _ = grouped_gemm_cost(local, m_exp, f_moe / tp_e, h, peak, eff, hbm, mem_eff,
                                    sram, w_b, units, tile, min_tm)
        t_moe = (t_up + t_dn) * job[L.I_MOE_IMB]  # the busiest expert sets the pace
        # router GEMM, softmax/top-k and the token permutation (memory-bound)
        t_moe += gemm_time(tokens, h, experts, peak, eff, hbm, mem_eff, sram, w_b, units,
                           tile, min_tm)
        t_moe += (ROUTER_ELEM_BYTES * tokens * experts
                  + ACT_B * tokens * h * (2.0 + 2.0 * topk)) / (hbm * mem_eff)
        t_moe += PERMUTE_KERNELS * chip[L.C_KERNEL_S]
        shared = model[L.M_SHARED]
        if shared > 0:
            t_moe += gemm_time(tokens, h, shared * (mats - 1.0) * f_moe / tp, peak, eff, hbm,
                               mem_eff, sram, w_b, units, tile, min_tm)
            t_moe += gemm_time(tokens, shared * f_moe / tp, h, peak, eff, hbm, mem_eff, sram,
                               w_b, units, tile, min_tm)
        if ep > 1:
            ep_bw, ep_lat = level(ep, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)
            vol = ACT_B * tokens * topk * h * (ep - 1.0) / ep * job[L.I_MOE_IMB]
            t_a2a = 2.0 * (vol / ep_bw + (ep - 1.0) * ep_lat)
    frac_moe = n_moe / layers
    t_mlp = (1.0 - frac_moe) * t_dense + frac_moe * t_moe
    mlp_w = (1.0 - frac_moe) * mats * h * f / tp
    if experts > 0:
        mlp_w += frac_moe * (mats * h * f_moe * (
            experts / ep / max(1.0, tp / ep) * touched + model[L.M_SHARED] / tp) + h * experts)
    hbm_bytes += w_b * mlp_w
    flops += 2.0 * tokens * mats * h * ((1.0 - frac_moe) * f / tp + frac_moe * f_moe * (
        topk + model[L.M_SHARED]) / tp)
    if experts > 0:
        flops += frac_moe * 2.0 * tokens * h * experts  # the router GEMM
    t_elem = ACT_B * tokens * chip[L.C_ELEM_B] * h / (hbm * mem_eff)
    t_tp = 2.0 * allreduce_time(ACT_B * tokens * h, tp, tp_bw, tp_lat) if tp > 1 else 0.0
    link = 2.0 * 2.0 * (tp - 1.0) / tp * ACT_B * tokens * h
    if experts > 0 and ep > 1:
        link += frac_moe * 2.0 * ACT_B * tokens * topk * h * (ep - 1.0) / ep
    # kernels' launch and tail time counts as busy: the clocks run (as in training)
    t_layer_busy = (t_qkv + t_proj + t_attn + t_mlp + t_elem
                    + KERNELS_PER_LAYER * chip[L.C_KERNEL_S])
    t_layer = t_layer_busy + t_tp + frac_moe * t_a2a
    # output layer: every new token in decode, the last prompt token in prefill
    n_logits = n_seq if prefill else tokens
    t_logits = gemm_time(n_logits, h, model[L.M_VOCAB] / tp, peak, eff, hbm, mem_eff, sram,
                         w_b, units, tile, min_tm)
    hbm_bytes = layers * hbm_bytes + w_b * h * model[L.M_VOCAB] / tp
    flops = layers * flops + 2.0 * n_logits * h * model[L.M_VOCAB] / tp
    t_p2p = 0.0
    if pp > 1:
        bw, lat = level(tp * pp, domain, up_raw, topo, eff_net, out_bps, up_lat, out_lat)
        t_p2p = (pp - 1.0) * (ACT_B * tokens * h / bw + lat)
    # a batch goes through the stages one after the other; each chip is busy for its own
    # stage's layers (infer_eval pipelines several batches over the stages)
    out2[0] = layers * t_layer_busy / pp + t_logits
    out2[1] = flops / pp
    out2[2] = hbm_bytes / pp
    out2[3] = layers * link / pp + (ACT_B * tokens * h if pp > 1 else 0.0)
    out2[4] = layers * t_layer / pp + t_logits + (t_p2p / (pp - 1.0) if pp > 1 else 0.0)
    return layers * t_layer + t_logits + t_p2p


@njit(cache=True)
def serving_chip_status(chip, cluster, job):
    """S_OK if the chip can serve at the job's precision, else S_BAD_INPUT (its platform
    numbers, or either GEMM efficiency, whatever the precision) or S_NO_COMPUTE."""
    if not (platform_ok(chip, cluster, int(job[L.I_PREC])) and 0 < chip[L.C_GEMM_EFF] <= 1
            and 0 < chip[L.C_GEMM_EFF_LOWP] <= 1):
        return L.S_BAD_INPUT
    peak, _ = matmul_peak(chip, int(job[L.I_PREC]))
    if not (peak > 0 and chip[L.C_FLOPS_BF16] > 0):
        return L.S_NO_COMPUTE
    return L.S_OK


@njit(cache=True)
def infer_eval(chip, cluster, model, job, mp, out):
    """Evaluate one serving mapping (tp, pp, ep, replicas = dp, batch = micro_batch: sequences
    per pipelined batch, up to pp such batches in flight per replica); fills
    ``out`` (layout ``IO_*``) and returns a status code ``S_*``.

    A chip with ``C_THROTTLES`` set that would exceed its TDP runs at the highest clock that
    fits, as in training (:func:`codesign.model.kernels.dvfs.next_clock`), reported in
    ``IO_CLOCK``; the slower clock may then miss a latency limit (S_SLO)."""
    st = infer_at_clock(chip, cluster, model, job, mp, out)
    if st == L.S_POWER and chip[L.C_THROTTLES] > 0.5:
        scaled, state = np.empty(chip.shape[0]), np.array([0.0, 1.0, 1.0, 0.0])
        while next_clock(chip, out[L.IO_CHIP_W], scaled, state, out, L.IO_CLOCK):
            st = infer_at_clock(scaled, cluster, model, job, mp, out)
    return st


@njit(cache=True)
def infer_at_clock(chip, cluster, model, job, mp, out):
    """Evaluate one serving mapping on the chip as given (no throttling: over its TDP is
    S_POWER); fills ``out`` (``IO_CLOCK`` = 1) and returns a status code ``S_*``."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    tp = mp[L.P_TP]
    pp = mp[L.P_PP]
    ep = mp[L.P_EP]
    dp = mp[L.P_DP]
    b = mp[L.P_MB]
    n_chips = cluster[L.K_N_CHIPS]
    if tp < 1 or pp < 1 or ep < 1 or dp < 1 or b < 1:
        return L.S_INVALID
    layers = model[L.M_LAYERS]
    heads = model[L.M_HEADS]
    experts = model[L.M_EXPERTS]
    isl = job[L.I_ISL]
    osl = job[L.I_OSL]
    if not (n_chips >= 1 and layers >= 1 and heads >= 1 and model[L.M_KV_HEADS] >= 1
            and model[L.M_HIDDEN] >= 1):
        return L.S_BAD_INPUT
    if not (model[L.M_HEAD_DIM] >= 0 and model[L.M_V_HEAD_DIM] >= 0
            and model[L.M_WINDOW] >= 0 and 0 <= model[L.M_WINDOW_LAYERS] <= layers):
        return L.S_BAD_INPUT
    if not (isl >= 1 and osl >= 1 and job[L.I_W_BYTES] > 0 and job[L.I_KV_BYTES] > 0):
        return L.S_BAD_INPUT
    if not (job[L.I_MOE_IMB] >= 1.0):
        return L.S_BAD_INPUT
    st = serving_chip_status(chip, cluster, job)
    if st != L.S_OK:
        return st
    _, _, nkv, _ = head_dims(model)
    if tp * pp * dp > n_chips or pp > layers or heads % tp != 0:
        return L.S_INVALID
    if nkv % tp != 0 and tp % nkv != 0:
        return L.S_INVALID
    if experts > 0:  # a layer's experts spread over the tp group of its stage
        if int(experts) % ep != 0 or ep > tp:
            return L.S_INVALID
    elif ep != 1:
        return L.S_INVALID
    needs_up = (tp > 1 and tp <= chip[L.C_DOMAIN]) or (pp > 1 and tp * pp <= chip[L.C_DOMAIN])
    needs_out = tp > chip[L.C_DOMAIN] or (pp > 1 and tp * pp > chip[L.C_DOMAIN])
    if (needs_up and not (chip[L.C_UP_BPS] > 0)) or (needs_out and not (chip[L.C_OUT_BPS] > 0)):
        return L.S_NO_BW

    w_bytes, kv_seq = memory_per_chip(model, job, tp, pp, ep)
    # pipeline parallelism: up to pp batches of b sequences in flight per replica, each at a
    # different stage (fewer when the concurrency does not fill them)
    n_mb = pp
    if job[L.I_CONC] > 0:
        n_mb = min(pp, math.ceil(math.ceil(job[L.I_CONC] / dp) / b))
    mem = w_bytes + n_mb * b * kv_seq + BUFFER_B
    # prompts prefilled together: the token budget of a pass, at most a batch
    n_pre = max(1.0, min(b * 1.0, math.floor(PREFILL_TOKEN_BUDGET / isl)))
    aux = np.zeros(5)
    t_pass = forward_time(chip, cluster, model, job, tp, pp, ep, n_pre * isl, n_pre, isl, True,
                          aux)
    t_pre = t_pass / n_pre  # one prompt's share of the pass
    busy_pre, st_pre = aux[0] / n_pre, aux[4] / n_pre
    e_flop = energy_per_flop(chip, int(job[L.I_PREC]))
    # energy of one prefill / one decode step by part: FLOPs, HBM bytes, link bytes
    pre_c = e_flop * aux[1] / n_pre
    pre_h = chip[L.C_E_HBM] * aux[2] / n_pre
    pre_l = chip[L.C_E_LINK] * aux[3] / n_pre
    ctx = isl + osl / 2.0
    t_dec = forward_time(chip, cluster, model, job, tp, pp, ep, b, b, ctx, False, aux)
    busy_dec, st_dec = aux[0], aux[4]
    dec_c, dec_h, dec_l = e_flop * aux[1], chip[L.C_E_HBM] * aux[2], chip[L.C_E_LINK] * aux[3]
    # a cycle: each batch admits its b prompts and emits osl tokens; every stage works through
    # all n_mb batches in turn, and no batch finishes faster than its own pass
    cycle = max(b * t_pre + osl * t_dec, n_mb * (b * st_pre + osl * st_dec))
    if not (cycle > 0) or not math.isfinite(cycle):
        return L.S_BAD_INPUT
    in_flight = dp * n_mb * b
    if job[L.I_CONC] > 0 and job[L.I_CONC] < in_flight:
        in_flight = job[L.I_CONC]  # idle slots (or idle replicas) emit nothing
    tps = in_flight * osl / cycle
    period = max(t_dec, n_mb * st_dec)  # a batch's next token waits for its turn at a stage
    itl = period + (n_mb * b - 1.0) * st_pre / osl
    ttft = t_pass + (period if n_mb * b > 1 else 0.0)
    busy = min(1.0, n_mb * (b * busy_pre + osl * busy_dec) / cycle)
    # each chip runs its stage of n_mb x (b prefills and osl decode steps) per cycle
    w_compute = n_mb * (b * pre_c + osl * dec_c) / cycle
    w_hbm = n_mb * (b * pre_h + osl * dec_h) / cycle
    w_link = n_mb * (b * pre_l + osl * dec_l) / cycle
    w_busy = chip[L.C_BUSY_W] * busy
    chip_w = w_compute + w_hbm + w_link + chip[L.C_LEAK_W] + w_busy
    out[L.IO_W_COMPUTE] = w_compute
    out[L.IO_W_HBM] = w_hbm
    out[L.IO_W_LINK] = w_link
    out[L.IO_W_BUSY] = w_busy
    out[L.IO_W_LEAK] = chip[L.C_LEAK_W]
    out[L.IO_N_BATCHES] = n_mb
    out[L.IO_S_PREFILL] = st_pre
    out[L.IO_S_DECODE] = st_dec
    out[L.IO_CLOCK] = 1.0
    out[L.IO_MEM_WEIGHTS] = w_bytes
    out[L.IO_MEM_KV] = n_mb * b * kv_seq
    out[L.IO_MEM_BUFFER] = BUFFER_B
    out[L.IO_PREFILL_BATCH] = n_pre
    cluster_w = n_chips * (chip_w + cluster[L.K_HOST_W]) * cluster[L.K_PUE]
    out[L.IO_TPS] = tps
    out[L.IO_TTFT] = ttft
    out[L.IO_ITL] = itl
    out[L.IO_MEM_B] = mem
    out[L.IO_BATCH] = b
    out[L.IO_REPLICAS] = dp
    out[L.IO_T_PREFILL] = t_pre
    out[L.IO_T_DECODE] = t_dec
    out[L.IO_CHIP_W] = chip_w
    out[L.IO_CLUSTER_W] = cluster_w
    out[L.IO_TOK_PER_J] = tps / cluster_w if cluster_w > 0 else 0.0
    out[L.IO_BUSY] = busy
    out[L.IO_N_USED] = tp * pp * dp
    out[L.IO_DECODE_INTENSITY] = aux[1] / aux[2] if aux[2] > 0 else 0.0
    if mem > HBM_UTIL * chip[L.C_HBM_B]:
        return L.S_OOM
    if (job[L.I_TTFT_SLO] > 0 and ttft > job[L.I_TTFT_SLO]) or (
            job[L.I_ITL_SLO] > 0 and itl > job[L.I_ITL_SLO]):
        return L.S_SLO
    if chip_w > chip[L.C_TDP_W]:
        return L.S_POWER
    return L.S_OK
