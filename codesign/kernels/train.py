"""Training step-time kernel: one mapping (:func:`eval_mapping`) and the best mapping
(:func:`search_mappings`, :func:`search_population`).

Model, per micro-batch and transformer layer, on one chip:

* GEMMs: ``max(FLOPs / (peak * GEMM_EFF), HBM bytes / (bw * MEM_EFF))``. The HBM bytes come
  from output-stationary tiling whose tiles (A, B, C, double-buffered) fit the on-chip SRAM, so
  a smaller SRAM means more operand re-reads (roofline with an SRAM-dependent intensity).
* Attention core as one fused (flash) kernel, causal: half the score FLOPs are skipped.
* Norms, residuals, activation functions: memory-bound elementwise traffic.
* Backward = 2x the forward GEMMs (data + weight gradients), 2.5x for fused attention.
* Recompute: full = one more forward per layer, selective = one more attention core.
* Tensor parallel: 2 all-reduces forward + 2 backward per layer (reduce-scatter + all-gather
  with sequence parallelism, same volume), not overlapped. Context parallel: ring exchange of
  K/V, overlapped with the attention core. Expert parallel: all-to-all dispatch + combine.
* Pipeline: 1F1B with ``vpp`` interleaved virtual stages: ``(m + (pp - 1) / vpp)`` stage times
  for ``m`` micro-batches; the slowest (last) stage also runs the logits; point-to-point sends.
* Data parallel: gradient all-reduce (ZeRO-1/2: reduce-scatter + all-gather, same volume;
  ZeRO-3 adds parameter all-gathers every micro-batch), hierarchical over the scale-up domain
  and the NIC; overlapped with the backward pass of the last micro-batch.
* Adam step: memory-bound over the local optimizer shard.
* Memory: 16 bytes/param mixed-precision Adam (2 weight + 2 grad + 12 fp32 optimizer state,
  Rajbhandari et al. 2020) sharded by ZeRO stage; activations per Korthikanti et al. 2022
  (Eq. 1-2, generalised to GQA and gated MLPs) for the micro-batches in flight under 1F1B.

Collectives use alpha-beta ring costs. Groups are placed Megatron-style, tensor parallel
innermost (tp, cp, ep/dp, pp): a group whose ranks span more than the scale-up domain crosses
the scale-out network.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from codesign.kernels.layout import (
    C_DOMAIN,
    C_FLOPS_BF16,
    C_FLOPS_FP4,
    C_FLOPS_FP8,
    C_FLOPS_FP32,
    C_HBM_B,
    C_HBM_BPS,
    C_OUT_BPS,
    C_SRAM_B,
    C_TDP_W,
    C_UP_BPS,
    J_BYTES,
    J_GBATCH,
    J_PREC,
    J_SEQ,
    K_HOST_W,
    K_N_CHIPS,
    K_OUT_LAT_S,
    K_OVERSUB,
    K_PUE,
    K_TOPOLOGY,
    K_UP_LAT_S,
    M_DENSE_LAYERS,
    M_EXPERTS,
    M_FFN,
    M_GATED,
    M_HEADS,
    M_HIDDEN,
    M_KV_HEADS,
    M_LAYERS,
    M_MOE_FFN,
    M_SHARED,
    M_TOPK,
    M_VOCAB,
    MAP_LEN,
    N_STATUS,
    O_BUSY,
    O_CHIP_W,
    O_CLUSTER_W,
    O_MEM_B,
    O_MFU,
    O_N_USED,
    O_STEP_S,
    O_T_BUBBLE,
    O_T_COMPUTE,
    O_T_DP,
    O_T_OPT,
    O_T_PP,
    O_T_TP,
    O_TOK_PER_J,
    O_TOKENS_PER_S,
    OUT_LEN,
    P_CP,
    P_DP,
    P_EP,
    P_MB,
    P_PP,
    P_RECOMPUTE,
    P_SP,
    P_TP,
    P_VPP,
    P_ZERO,
    S_BAD_INPUT,
    S_INVALID,
    S_NO_BW,
    S_NO_CANDIDATE,
    S_NO_COMPUTE,
    S_OK,
    S_OOM,
    TOPO_RAIL,
)

# ---- efficiency and overhead parameters (first estimates; calibrated in issue 3) ----------
GEMM_EFF = 0.80
"""Sustained fraction of dense peak on large GEMMs (cuBLAS bf16 GEMMs on A100/H100 reach
75-85 % of datasheet peak for large square shapes; NVIDIA cuBLAS/Transformer Engine docs)."""
ATTN_EFF = 0.55
"""Fraction of peak reached by the fused attention kernel (FlashAttention-2 paper, Dao 2023:
50-73 % of A100 peak forward, lower backward)."""
MEM_EFF = 0.85
"""Achievable fraction of peak HBM bandwidth for streaming kernels (STREAM-like copies reach
~85-90 % on A100/H100)."""
NET_EFF = 0.80
"""Achievable fraction of link bandwidth for large collectives (nccl-tests bus bandwidth vs
link rate, NVLink and InfiniBand)."""
KERNEL_OVERHEAD_S = 4e-6
"""Launch + tail time per kernel; ~12 kernels per layer forward (CUDA launch latency ~3-5 us)."""
KERNELS_PER_LAYER = 12.0
BUFFER_B = 2.0e9
"""Framework workspace, communication buffers and allocator fragmentation per chip (bytes)."""
IDLE_POWER_FRAC = 0.25
"""Chip power when its compute units wait (HBM, links and leakage stay on), fraction of TDP."""
ADAM_BYTES_PER_PARAM = 30.0
"""Adam step traffic per local parameter: read fp32 master, m, v, grad (16 B), write master,
m, v (12 B) and the bf16 weight copy (2 B)."""
WEIGHT_B, GRAD_B, OPT_B = 2.0, 2.0, 12.0
"""Mixed-precision Adam memory per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1)."""
MAX_MICRO_BATCH = 64


@njit(cache=True)
def gemm_time(m, k, n, peak_flops, hbm_bps, sram_b, el_b):
    """Seconds for an (m x k) @ (k x n) GEMM: compute or HBM traffic, whichever is longer.

    Output-stationary tiles of side ``x`` with A, B and C tiles double-buffered in SRAM:
    ``x = sqrt(sram / (6 el_b))``; each operand is re-read ``n/x`` (A) or ``m/x`` (B) times.
    """
    flops = 2.0 * m * k * n
    t_c = flops / (peak_flops * GEMM_EFF)
    x = math.sqrt(sram_b / (6.0 * el_b))
    if x < 1.0:
        x = 1.0
    traffic = el_b * (m * k * max(1.0, n / x) + k * n * max(1.0, m / x) + m * n)
    t_m = traffic / (hbm_bps * MEM_EFF)
    return max(t_c, t_m)


@njit(cache=True)
def ring_allreduce_time(volume_b, n, bw_bps, lat_s):
    """Ring all-reduce of ``volume_b`` bytes over ``n`` ranks (alpha-beta)."""
    if n <= 1:
        return 0.0
    return 2.0 * (n - 1) / n * volume_b / (bw_bps * NET_EFF) + 2.0 * (n - 1) * lat_s


@njit(cache=True)
def group_allreduce_time(volume_b, n, stride, domain, up_bps, out_bps, up_lat, out_lat):
    """Hierarchical all-reduce over a group of ``n`` ranks ``stride`` apart.

    The ``k`` ranks that share a scale-up domain reduce-scatter/all-gather there; the ``n/k``
    domains all-reduce their ``1/k`` shards over the NIC in parallel.
    """
    if n <= 1:
        return 0.0
    k = domain // stride
    if k < 1:
        k = 1
    if k > n:
        k = n
    while n % k != 0:
        k -= 1
    r = n // k
    t = ring_allreduce_time(volume_b, k, up_bps, up_lat)
    if r > 1:
        t += ring_allreduce_time(volume_b / k, r, out_bps, out_lat)
    return t


@njit(cache=True)
def eval_mapping(chip, cluster, model, job, mp, out):
    """Evaluate one mapping; fills ``out`` (layout ``O_*``) and returns a status code ``S_*``."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    tp = mp[P_TP]
    pp = mp[P_PP]
    dp = mp[P_DP]
    cp = mp[P_CP]
    ep = mp[P_EP]
    vpp = mp[P_VPP]
    b = mp[P_MB]
    rc = mp[P_RECOMPUTE]
    zero = mp[P_ZERO]
    sp = mp[P_SP]
    if tp < 1 or pp < 1 or dp < 1 or cp < 1 or ep < 1 or vpp < 1 or b < 1:
        return S_INVALID
    if rc < 0 or rc > 2 or zero < 0 or zero > 3 or sp < 0 or sp > 1:
        return S_INVALID

    n_chips = cluster[K_N_CHIPS]
    layers = model[M_LAYERS]
    h = model[M_HIDDEN]
    heads = model[M_HEADS]
    kv_heads = model[M_KV_HEADS]
    f = model[M_FFN]
    vocab = model[M_VOCAB]
    gated = model[M_GATED] > 0.5
    experts = model[M_EXPERTS]
    topk = model[M_TOPK]
    f_moe = model[M_MOE_FFN]
    shared = model[M_SHARED]
    dense_layers = model[M_DENSE_LAYERS]
    seq = job[J_SEQ]
    gbatch = job[J_GBATCH]
    el_b = job[J_BYTES]
    prec = int(job[J_PREC])

    # --- input sanity (status, never an exception) ---
    if not (n_chips >= 1 and layers >= 1 and h >= 1 and heads >= 1 and kv_heads >= 1):
        return S_BAD_INPUT
    if not (seq >= 1 and gbatch >= 1 and el_b > 0 and vocab >= 1 and f >= 0):
        return S_BAD_INPUT
    if not (chip[C_HBM_BPS] > 0 and chip[C_SRAM_B] > 0 and chip[C_HBM_B] > 0):
        return S_BAD_INPUT
    if not (chip[C_TDP_W] >= 0 and chip[C_DOMAIN] >= 1 and cluster[K_OVERSUB] >= 1):
        return S_BAD_INPUT
    if not (cluster[K_PUE] >= 1 and cluster[K_HOST_W] >= 0):
        return S_BAD_INPUT
    if not (cluster[K_UP_LAT_S] >= 0 and cluster[K_OUT_LAT_S] >= 0):
        return S_BAD_INPUT
    if prec == 0:
        peak = chip[C_FLOPS_FP32]
    elif prec <= 2:
        peak = chip[C_FLOPS_BF16]
    elif prec == 3:
        peak = chip[C_FLOPS_FP8]
    else:
        peak = chip[C_FLOPS_FP4]
    if not (peak > 0):
        return S_NO_COMPUTE

    # --- divisibility ---
    n_used = tp * cp * pp * dp
    if n_used > n_chips:
        return S_INVALID
    if heads % tp != 0 or (kv_heads % tp != 0 and tp % kv_heads != 0):
        return S_INVALID
    if pp > layers or int(seq) % cp != 0 or int(gbatch) % (dp * b) != 0:
        return S_INVALID
    m = int(gbatch) // (dp * b)  # micro-batches per pipeline per step
    if vpp > 1 and (pp == 1 or m % pp != 0 or layers < pp * vpp):
        return S_INVALID
    is_moe = experts > 0
    if is_moe:
        if int(experts) % ep != 0 or dp % ep != 0:
            return S_INVALID
    elif ep != 1:
        return S_INVALID
    if tp == 1:
        sp = 0

    # --- network: bandwidth per chip per direction and where each group sits ---
    domain = chip[C_DOMAIN]
    up_bps = chip[C_UP_BPS]
    out_bps = chip[C_OUT_BPS]
    if int(cluster[K_TOPOLOGY]) != TOPO_RAIL:
        out_bps = out_bps / cluster[K_OVERSUB]
    up_lat = cluster[K_UP_LAT_S]
    out_lat = cluster[K_OUT_LAT_S]
    tp_in = tp <= domain
    cp_in = tp * cp <= domain
    ep_in = tp * cp * ep <= domain
    pp_in = n_used <= domain
    # every group of more than one rank needs the link it sits on (dp may use both levels)
    needs_up = (tp > 1 and tp_in) or (cp > 1 and cp_in) or (ep > 1 and ep_in)
    needs_up = needs_up or (pp > 1 and pp_in) or (dp > 1 and tp * cp < domain)
    needs_out = (tp > 1 and not tp_in) or (cp > 1 and not cp_in) or (ep > 1 and not ep_in)
    needs_out = needs_out or (pp > 1 and not pp_in) or (dp > 1 and tp * cp * dp > domain)
    if (needs_up and not (up_bps > 0)) or (needs_out and not (out_bps > 0)):
        return S_NO_BW
    tp_bw = up_bps if tp_in else out_bps
    tp_lat = up_lat if tp_in else out_lat

    # --- per-layer forward time of one micro-batch on one chip ---
    hbm = chip[C_HBM_BPS]
    sram = chip[C_SRAM_B]
    s_loc = seq / cp
    tok = b * s_loc  # tokens per micro-batch on this chip
    kvd = kv_heads * (h / heads)
    tsp = tp if sp == 1 else 1.0
    mlp_mats = 2.0 if gated else 1.0
    t_qkv = gemm_time(tok, h, (h + 2.0 * kvd) / tp, peak, hbm, sram, el_b)
    t_proj = gemm_time(tok, h / tp, h, peak, hbm, sram, el_b)
    attn_flops = 4.0 * b * s_loc * seq * h / tp * 0.5  # causal: half the scores
    attn_bytes = el_b * tok * (2.0 * h + 2.0 * kvd) / tp
    t_attn = max(attn_flops / (peak * ATTN_EFF), attn_bytes / (hbm * MEM_EFF))
    elem_bytes = el_b * tok * 12.0 * h / tsp
    t_dense_mlp = gemm_time(tok, h, mlp_mats * f / tp, peak, hbm, sram, el_b) + gemm_time(
        tok, f / tp, h, peak, hbm, sram, el_b
    )
    dense_elem = el_b * tok * (mlp_mats + 1.0) * f / tp
    t_moe_mlp = 0.0
    moe_elem = 0.0
    if is_moe:
        # routed tokens spread evenly over experts; EP groups exchange them (all-to-all)
        tok_exp = tok * topk * ep / experts
        n_local = experts / ep
        t_one = gemm_time(tok_exp, h, mlp_mats * f_moe / tp, peak, hbm, sram, el_b)
        t_one += gemm_time(tok_exp, f_moe / tp, h, peak, hbm, sram, el_b)
        t_moe_mlp = n_local * t_one
        if shared > 0:
            t_moe_mlp += gemm_time(tok, h, shared * mlp_mats * f_moe / tp, peak, hbm, sram, el_b)
            t_moe_mlp += gemm_time(tok, shared * f_moe / tp, h, peak, hbm, sram, el_b)
        moe_elem = el_b * tok * topk * (mlp_mats + 1.0) * f_moe / tp
    n_moe_layers = layers - dense_layers if is_moe else 0.0
    n_dense_layers = layers - n_moe_layers
    frac_moe = n_moe_layers / layers
    t_mlp = (1.0 - frac_moe) * t_dense_mlp + frac_moe * t_moe_mlp
    elem_bytes += (1.0 - frac_moe) * dense_elem + frac_moe * moe_elem
    t_elem = elem_bytes / (hbm * MEM_EFF)
    t_overhead = KERNELS_PER_LAYER * KERNEL_OVERHEAD_S
    t_fwd = t_qkv + t_proj + t_attn + t_mlp + t_elem + t_overhead
    t_bwd = 2.0 * (t_qkv + t_proj + t_mlp + t_elem) + 2.5 * t_attn + 2.0 * t_overhead
    t_recompute = 0.0
    if rc == 2:
        t_recompute = t_fwd
    elif rc == 1:
        t_recompute = t_attn
    t_layer_compute = t_fwd + t_bwd + t_recompute

    # communication per layer (fwd + bwd)
    t_layer_tp = 0.0
    if tp > 1:
        vol = el_b * tok * h
        t_layer_tp = 4.0 * ring_allreduce_time(vol, tp, tp_bw, tp_lat)
        if rc == 2:
            t_layer_tp *= 1.5  # the recomputed forward repeats its two collectives
    t_layer_cp = 0.0
    if cp > 1:
        cp_bw = up_bps if cp_in else out_bps
        cp_lat = up_lat if cp_in else out_lat
        kv_vol = el_b * 2.0 * b * s_loc * kvd / tp
        t_ring = (cp - 1) * (kv_vol / (cp_bw * NET_EFF) + cp_lat)
        # forward passes K/V around the ring; backward passes K/V and their gradients
        t_layer_cp = max(0.0, t_ring - t_attn) + max(0.0, 2.0 * t_ring - 2.5 * t_attn)
    t_layer_ep = 0.0
    if is_moe and ep > 1:
        ep_bw = up_bps if ep_in else out_bps
        ep_lat = up_lat if ep_in else out_lat
        a2a_vol = el_b * tok * topk * h / tp * (ep - 1.0) / ep
        t_layer_ep = frac_moe * 6.0 * (a2a_vol / (ep_bw * NET_EFF) + (ep - 1.0) * ep_lat)
    t_layer = t_layer_compute + t_layer_tp + t_layer_cp + t_layer_ep

    # --- pipeline stage (the last one also runs the output layer) ---
    layers_stage = math.ceil(layers / pp)
    t_logits_f = gemm_time(tok, h, vocab / tp, peak, hbm, sram, el_b)
    t_logits_f += 3.0 * el_b * tok * vocab / tp / (hbm * MEM_EFF)  # softmax + cross-entropy
    t_logits = 3.0 * t_logits_f
    t_stage = layers_stage * t_layer + t_logits
    t_p2p = 0.0
    if pp > 1:
        pp_bw = up_bps if pp_in else out_bps
        pp_lat = up_lat if pp_in else out_lat
        p2p_vol = el_b * tok * h / tp  # Megatron scatter/gather optimisation
        t_p2p = 2.0 * vpp * (p2p_vol / (pp_bw * NET_EFF) + pp_lat)
    t_stage_total = t_stage + t_p2p
    t_pipe = m * t_stage_total + (pp - 1.0) / vpp * t_stage_total
    t_bubble = (pp - 1.0) / vpp * t_stage_total

    # --- parameters on the busiest chip ---
    attn_p = h * (2.0 * h + 2.0 * kvd)
    dense_mlp_p = (mlp_mats + 1.0) * h * f
    moe_p = (mlp_mats + 1.0) * h * f_moe * (experts / ep + shared)
    layer_p_avg = attn_p + (1.0 - frac_moe) * dense_mlp_p + frac_moe * moe_p
    p_chip = (layers_stage * layer_p_avg + vocab * h) / tp
    # --- data-parallel gradient reduction and ZeRO ---
    dp_stride = tp * cp
    t_dp = group_allreduce_time(
        GRAD_B * p_chip, dp, dp_stride, domain, up_bps, out_bps, up_lat, out_lat
    )
    if zero == 3 and dp > 1:
        # FSDP gathers parameters for forward and backward of every micro-batch (two
        # all-gathers = one all-reduce volume), prefetched under the compute of all of them
        t_gather = group_allreduce_time(
            WEIGHT_B * p_chip, dp, dp_stride, domain, up_bps, out_bps, up_lat, out_lat
        )
        t_dp_exposed = max(0.0, m * t_gather + t_dp - m * layers_stage * t_layer_compute)
    else:
        # gradients reduce under the backward pass of the last micro-batch
        t_dp_exposed = max(0.0, t_dp - layers_stage * (t_bwd + t_recompute))
    shard = dp if zero >= 1 else 1.0
    t_opt = ADAM_BYTES_PER_PARAM * p_chip / shard / (hbm * MEM_EFF)

    step = t_pipe + t_dp_exposed + t_opt
    if not (step > 0) or not math.isfinite(step):
        return S_BAD_INPUT

    # --- memory on the busiest (first) stage ---
    w_b = WEIGHT_B * p_chip / (dp if zero >= 3 else 1.0)
    g_b = GRAD_B * p_chip / (dp if zero >= 2 else 1.0)
    o_b = OPT_B * p_chip / (dp if zero >= 1 else 1.0)
    act_scale = el_b / 2.0 if el_b > 2.0 else 1.0  # formulas assume 2-byte activations
    sbh = s_loc * b * h
    repl = 10.0 * sbh  # norms, block inputs and dropout masks: not split without SP
    mlp_w = (6.0 if gated else 4.0) * s_loc * b
    mlp_act = (1.0 - frac_moe) * mlp_w * f + frac_moe * mlp_w * f_moe * (topk + shared)
    # split by tp: Q and the projection input (4 sbh), K and V (4 sb kvd), the MLP hidden;
    # MHA with a 4h GELU MLP gives Korthikanti's 24 sbh / t
    split = 4.0 * sbh + 4.0 * s_loc * b * kvd + mlp_act
    scores = 5.0 * heads * s_loc * seq * b
    if rc == 2:
        act_layer = 2.0 * sbh / tsp
    else:
        act_layer = repl / tsp + split / tp
        if rc == 0:
            act_layer += scores / tp
    act_layer *= act_scale
    in_flight = min(pp, m) * 1.0
    if vpp > 1:
        in_flight *= 1.0 + (pp - 1.0) / (pp * vpp)
    act_b = layers_stage * in_flight * act_layer
    if rc == 2:  # working set while recomputing one layer
        act_b += act_scale * (repl / tsp + split / tp + scores / tp)
    logits_b = 4.0 * s_loc * b * vocab / tp  # fp32 logits of one micro-batch (last stage)
    mem = w_b + g_b + o_b + act_b + logits_b + BUFFER_B

    tokens = seq * gbatch
    out[O_STEP_S] = step
    out[O_TOKENS_PER_S] = tokens / step
    n_dense_p = n_dense_layers * (attn_p + dense_mlp_p)
    n_active_moe = n_moe_layers * (attn_p + (mlp_mats + 1.0) * h * f_moe * (topk + shared))
    model_flops_tok = 6.0 * (n_dense_p + n_active_moe + vocab * h) + 12.0 * layers * h * seq
    out[O_MFU] = model_flops_tok * tokens / (step * n_chips * peak)
    out[O_MEM_B] = mem
    busy = m * layers_stage * t_layer_compute / step
    if busy > 1.0:
        busy = 1.0
    chip_w = chip[C_TDP_W] * (IDLE_POWER_FRAC + (1.0 - IDLE_POWER_FRAC) * busy)
    cluster_w = n_chips * (chip_w + cluster[K_HOST_W]) * cluster[K_PUE]
    out[O_CHIP_W] = chip_w
    out[O_CLUSTER_W] = cluster_w
    out[O_TOK_PER_J] = tokens / step / cluster_w if cluster_w > 0 else 0.0
    out[O_T_COMPUTE] = m * layers_stage * t_layer_compute
    out[O_T_TP] = m * layers_stage * (t_layer_tp + t_layer_cp + t_layer_ep)
    out[O_T_BUBBLE] = t_bubble
    out[O_T_DP] = t_dp_exposed
    out[O_T_OPT] = t_opt
    out[O_T_PP] = m * t_p2p
    out[O_BUSY] = busy
    out[O_N_USED] = n_used
    if mem > chip[C_HBM_B]:
        return S_OOM
    return S_OK


@njit(cache=True)
def _choices(fixed_value, lo, hi, pow2):
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
def search_mappings(chip, cluster, model, job, fixed, best_mp, best_out, counts):
    """Enumerate every valid mapping and keep the fastest (ties: least memory).

    ``fixed`` (int64[MAP_LEN]) holds -1 for searched fields. Searched: tp (powers of 2 up to the
    scale-up domain), pp (divisors of the layer count and powers of 2), dp (divisors of the
    global batch that fit the cluster), micro-batch, recompute and ZeRO stage; sequence parallel
    is on whenever tp > 1; cp, ep and vpp are 1 unless fixed. ``counts[s]`` counts candidates by
    status. Returns S_OK if a feasible mapping was found, else the most frequent failure.
    """
    for i in range(counts.shape[0]):
        counts[i] = 0
    for i in range(MAP_LEN):
        if fixed[i] == 0 and i <= P_MB:  # a degree or micro-batch fixed at 0 is invalid
            counts[S_INVALID] += 1
            return S_INVALID
    n_chips = int(cluster[K_N_CHIPS])
    layers = int(model[M_LAYERS])
    gbatch = int(job[J_GBATCH])
    domain = int(chip[C_DOMAIN]) if chip[C_DOMAIN] >= 1 else 1
    mp = np.zeros(MAP_LEN, np.int64)
    out = np.zeros(OUT_LEN)
    best_step = np.inf
    best_mem = np.inf
    tps = _choices(fixed[P_TP], 1, max(1, min(domain, int(model[M_HEADS]))), True)
    cps = _choices(fixed[P_CP], 1, 1, False)
    eps = _choices(fixed[P_EP], 1, 1, False)
    vpps = _choices(fixed[P_VPP], 1, 1, False)
    rcs = _choices(fixed[P_RECOMPUTE], 0, 2, False)
    zeros = _choices(fixed[P_ZERO], 0, 3, False)
    for tp in tps:
        for cp in cps:
            if tp * cp > n_chips:
                continue
            pps = _choices(fixed[P_PP], 1, layers, False)
            for pp in pps:
                if fixed[P_PP] < 0 and layers % pp != 0 and (pp & (pp - 1)) != 0:
                    continue
                if tp * cp * pp > n_chips:
                    break
                dp_max = n_chips // (tp * cp * pp)
                dps = _choices(fixed[P_DP], 1, dp_max, False)
                for dp in dps:
                    if fixed[P_DP] < 0 and gbatch % dp != 0:
                        continue
                    per_dp = gbatch // dp if gbatch % dp == 0 else 0
                    mbs = _choices(fixed[P_MB], 1, min(per_dp, MAX_MICRO_BATCH), False)
                    for b in mbs:
                        if fixed[P_MB] < 0 and per_dp % b != 0:
                            continue
                        for ep in eps:
                            for vpp in vpps:
                                for rc in rcs:
                                    for zero in zeros:
                                        mp[P_TP] = tp
                                        mp[P_PP] = pp
                                        mp[P_DP] = dp
                                        mp[P_CP] = cp
                                        mp[P_EP] = ep
                                        mp[P_VPP] = vpp
                                        mp[P_MB] = b
                                        mp[P_RECOMPUTE] = rc
                                        mp[P_ZERO] = zero
                                        if fixed[P_SP] >= 0:
                                            mp[P_SP] = fixed[P_SP]
                                        else:
                                            mp[P_SP] = 1 if tp > 1 else 0
                                        st = eval_mapping(chip, cluster, model, job, mp, out)
                                        counts[st] += 1
                                        if st != S_OK:
                                            continue
                                        step = out[O_STEP_S]
                                        mem = out[O_MEM_B]
                                        if step < best_step or (
                                            step == best_step and mem < best_mem
                                        ):
                                            best_step = step
                                            best_mem = mem
                                            best_mp[:] = mp
                                            best_out[:] = out
    if best_step < np.inf:
        return S_OK
    worst = S_NO_CANDIDATE
    most = 0
    for s in range(1, N_STATUS):
        if counts[s] > most:
            most = counts[s]
            worst = s
    return worst


@njit(cache=True, parallel=True)
def search_population(chips, clusters, model, job, fixed, best_mps, best_outs, counts, status):
    """:func:`search_mappings` for every row of ``chips``/``clusters`` (one design per row)."""
    for i in prange(chips.shape[0]):
        status[i] = search_mappings(
            chips[i], clusters[i], model, job, fixed, best_mps[i], best_outs[i], counts[i]
        )
