"""Memory per chip: training (model states by ZeRO stage, activations of the micro-batches in
flight, logits, buffers) and serving (weights and KV cache).

Model states per parameter (mixed precision with Adam, Rajbhandari et al. 2020, ZeRO, sec.
3.1): 16-bit weights (:data:`WEIGHT_B`), gradients (:data:`GRAD_B`) and fp32 master weights,
momentum and variance (:data:`OPT_B`); ZeRO-1 shards the optimizer states over the
data-parallel ranks, ZeRO-2 also the gradients, ZeRO-3 also the weights (which it gathers a
layer at a time, :data:`ZERO3_PREFETCH_LAYERS` in flight).

Activations per layer and micro-batch (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", sec. 4, generalised to grouped-query and latent
attention, head widths other than hidden/heads, gated MLPs and MoE layers): with 16-bit
activations and ``t`` = tensor-parallel degree,

* kept whole on every tp rank unless sequence parallelism splits them: the two norms' inputs
  (``4 sbh``), their outputs that feed the QKV and first MLP GEMMs (``4 sbh``) and the two
  dropout masks (``2 sbh``): Korthikanti's ``10 sbh``;
* split over tp: Q, K, V, the attention output (``4 sbh`` + ``4 sb kv_dim`` for standard
  heads: Korthikanti's ``8 sbh`` under multi-head attention), the MLP's hidden activations
  (``2 sbf`` per stored tensor: two for GELU, three for a gated MLP: Korthikanti's ``16 sbh``
  for f = 4h), and with unfused attention the scores (``5 a s^2 b``);
* full recompute keeps only each layer's input (``2 sbh``), selective recompute drops the
  score activations;
* fp8 recipes (Transformer Engine) keep the fp8 copy of each GEMM input for the backward
  pass: those tensors (the norms' outputs, the attention output, the MLP's second GEMM
  input) at 1 byte (:func:`layer_activation_bytes`).
"""

from __future__ import annotations

import math

from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import head_dims
from codesign.model.kernels.offload import resident_states

WEIGHT_B, GRAD_B, OPT_B = 2.0, 2.0, 12.0
"""Mixed-precision Adam memory per parameter, bytes (Rajbhandari et al. 2020, ZeRO, Sec. 3.1):
16-bit weights and gradients, fp32 master weights, momentum and variance. Gradients are
``J_GRAD_B`` bytes in the kernels (fp32 main gradients for bf16 training,
:data:`codesign.model.pack.GRAD_BYTES`)."""
BUFFER_B = 2.0e9
"""Framework workspace, communication buffers and allocator fragmentation per chip (bytes)."""
ZERO3_PREFETCH_LAYERS = 2.0
"""Layers whose gathered (unsharded) weights a ZeRO-3 / FSDP rank holds at once: the one
computing and the one prefetched (FSDP's default forward/backward prefetch of one layer)."""


@njit(cache=True)
def layer_activation_bytes(sb, h, q_width, k_width, v_width, o_width, latent_width,
                           mlp_hidden, gated, tp, tsp, fp8_inputs, moe_extra, selective):
    """Bytes of one layer's activations for ``sb`` = sequence x micro-batch tokens on this
    tp group, stored for the backward pass without recompute (see the module doc).

    ``q_width``, ``k_width``, ``v_width``: Q, K and V widths (heads x head width, RoPE part
    included), ``o_width`` the attention output width, ``latent_width`` the MLA latents kept
    whole on each rank (0 otherwise), ``mlp_hidden`` the MLP inner width summed over the
    experts a token visits, ``tsp`` = tp with sequence parallelism else 1, ``fp8_inputs`` 1
    when GEMM inputs are kept at 1 byte, ``moe_extra`` MoE bytes (router logits, permuted
    copies) per token already split over tp. ``selective``: what selective recompute under
    fused attention keeps: without the norms' outputs, the activation function's output (the
    second MLP GEMM's input) and, under MLA (``latent_width`` > 0), the up-projected Q, K,
    V."""
    gemm_in = 1.0 if fp8_inputs else 2.0
    norm_out = 0.0 if selective else 2.0 * gemm_in * h
    repl = sb * (4.0 * h + norm_out + 2.0 * h) + 2.0 * sb * latent_width
    mats = 3.0 if gated else 2.0
    mlp = sb * mlp_hidden * (2.0 * (mats - 1.0) + (0.0 if selective else gemm_in))
    qkv = q_width + k_width + v_width
    if selective and latent_width > 0.0:
        qkv = 0.0
    split = sb * (2.0 * qkv + gemm_in * o_width) + mlp
    return repl / tsp + split / tp + sb * moe_extra


@njit(cache=True)
def model_state_bytes(params, zero, dp, grad_b):
    """(weights, gradients, optimizer states) bytes of ``params`` parameters on one chip
    under ZeRO stage ``zero`` over ``dp`` data-parallel ranks, with ``grad_b`` bytes per
    gradient."""
    return (WEIGHT_B * params / (dp if zero >= 3 else 1.0),
            grad_b * params / (dp if zero >= 2 else 1.0),
            OPT_B * params / (dp if zero >= 1 else 1.0))


@njit(cache=True)
def in_flight_micro_batches(pp, m, vpp):
    """Micro-batches whose activations the first pipeline stage holds under 1F1B: ``min(pp,
    m)``, times ``1 + (pp - 1) / (pp vpp)`` with interleaving (Narayanan et al. 2021)."""
    n = min(pp, m) * 1.0
    if vpp > 1:
        n *= 1.0 + (pp - 1.0) / (pp * vpp)
    return n


OFFLOAD_RESIDENT_LAYERS = 2.0
"""Layer inputs an offloading recompute keeps on the chip: the one in use and the one in
flight to or from the host."""


@njit(cache=True)
def train_activation_bytes(model, tp, sp, rc, unfused, sb, seq, latent_w, moe_act, act_b,
                           fp8_inputs, in_flight, n_d, n_m):
    """Activation bytes a training chip holds: ``in_flight`` micro-batches of ``sb`` tokens
    (sequence chunk x micro-batch) through ``n_d`` dense and ``n_m`` MoE layers under tensor
    parallelism ``tp`` (sequence parallel if ``sp``) and recompute mode ``rc`` (0 none, 1
    selective, 2 full, 3 offloaded); ``unfused`` attention adds its scores over the whole
    ``seq``; ``latent_w`` the MLA latent width, ``moe_act`` the MoE bytes per token (router
    logits, permuted copies), ``act_b`` bytes per activation element (the per-layer formulas
    count 16-bit ones), ``fp8_inputs`` whether GEMM inputs are kept at 1 byte. Full recompute
    also holds the working set of the layer it rebuilds."""
    h = model[L.M_HIDDEN]
    heads = model[L.M_HEADS]
    f = model[L.M_FFN]
    gated = model[L.M_GATED] > 0.5
    is_moe = model[L.M_EXPERTS] > 0
    topk = model[L.M_TOPK]
    f_moe = model[L.M_MOE_FFN]
    shared = model[L.M_SHARED]
    dqk, dv, nkv, kv_lora = head_dims(model)
    mla = kv_lora > 0.0
    tsp = tp if sp == 1 else 1.0
    heads_c = heads / tp
    full = rc >= 2
    sel_fused = rc == 1 and not unfused
    k_w = nkv * dqk if not mla else heads * dqk
    v_w = nkv * dv if not mla else heads * dv
    act_d = layer_activation_bytes(sb, h, heads * dqk, k_w, v_w, heads * dv, latent_w, f,
                                   gated, tp, tsp, fp8_inputs, 0.0, False)
    act_m = 0.0
    if is_moe:
        act_m = layer_activation_bytes(sb, h, heads * dqk, k_w, v_w, heads * dv, latent_w,
                                       f_moe * (topk + shared), gated, tp, tsp, fp8_inputs,
                                       moe_act, False)
    if sel_fused:  # what selective recompute (fused attention) does not keep
        sel_d = layer_activation_bytes(sb, h, heads * dqk, k_w, v_w, heads * dv, latent_w, f,
                                       gated, tp, tsp, fp8_inputs, 0.0, True)
        sel_m = 0.0
        if is_moe:
            sel_m = layer_activation_bytes(sb, h, heads * dqk, k_w, v_w, heads * dv, latent_w,
                                           f_moe * (topk + shared), gated, tp, tsp,
                                           fp8_inputs, moe_act, True)
    else:
        sel_d = act_d
        sel_m = act_m
    act_scale = act_b / 2.0  # the formulas count 16-bit activations
    if unfused:  # softmax output, dropout mask and output of the scores (5 bytes/element)
        scores = heads_c * sb * seq  # this chunk's queries over the whole sequence
        act_d += 5.0 * scores
        act_m += 5.0 * scores
        sel_d = act_d - 5.0 * scores  # selective recompute drops exactly the scores
        sel_m = act_m - 5.0 * scores
    full_d = act_scale * act_d
    full_m = act_scale * act_m
    keep = act_scale * 2.0 * sb * h / tsp  # a layer's input, all that full recompute keeps
    if full:
        act_d = keep
        act_m = keep
    elif rc == 1:
        act_d = act_scale * sel_d
        act_m = act_scale * sel_m
    else:
        act_d = full_d
        act_m = full_m
    if rc == 3:  # the layer inputs wait in host memory; a few are on their way
        act_total = min(OFFLOAD_RESIDENT_LAYERS, in_flight * (n_d + n_m)) * keep
    else:
        act_total = in_flight * (n_d * act_d + n_m * act_m)
    if full:  # working set while recomputing one layer
        act_total += max(full_d if n_d > 0 else 0.0, full_m if n_m > 0 else 0.0)
    return act_total


@njit(cache=True)
def serving_weight_kv_bytes(layers, h, heads, kv_heads, head_dim, qk_dim, v_dim, ffn, gated,
                            experts, dense_layers, moe_ffn, shared, vocab, kv_latent,
                            attn_params, tp, pp, ep, tokens, w_b, kv_b):
    """(weight bytes, KV-cache bytes per sequence of ``tokens`` tokens) on one chip of a
    (tp, pp, ep) serving replica: the stage's layers (``ceil(layers/pp)``) split over tp, a
    layer's experts over ep (each expert then over ``tp/ep``), embeddings and output layer
    over tp; KV heads split over tp, replicated once tp exceeds them; MLA caches its latent
    whole on every tp rank. ``attn_params``: one layer's attention weights."""
    mats = 3.0 if gated else 2.0
    n_moe = layers - dense_layers if experts > 0 else 0.0
    attn = attn_params / tp
    dense = mats * h * ffn / tp
    tp_e = max(1.0, tp / ep)
    moe = mats * h * moe_ffn * (experts / ep / tp_e + shared / tp) + h * experts
    per_layer = attn + ((layers - n_moe) * dense + n_moe * moe) / layers
    params = math.ceil(layers / pp) * per_layer + 2.0 * vocab * h / tp
    kv_width = max(1.0, kv_heads / tp) * (qk_dim + v_dim)
    if kv_latent > 0:  # MLA: one latent per token, every tp rank keeps all of it
        kv_width = kv_latent
    kv_seq = math.ceil(layers / pp) * kv_width * kv_b * tokens
    return params * w_b, kv_seq


@njit(cache=True)
def mla_latent_width(model):
    """Width of what multi-head latent attention keeps whole on every tp rank per token: the
    query and key/value latents and the shared RoPE key (0 for standard attention)."""
    if model[L.M_KV_LORA] <= 0.0:
        return 0.0
    return model[L.M_Q_LORA] + model[L.M_KV_LORA] + model[L.M_ROPE_DIM]


@njit(cache=True)
def moe_token_bytes(model, tsp, fp8_inputs):
    """MoE activation bytes per token of a chip (0 for a dense model): the router logits
    (fp32) and the permuted token copies (1 byte under fp8 recipes), split over ``tsp``."""
    if model[L.M_EXPERTS] <= 0:
        return 0.0
    return (4.0 * model[L.M_EXPERTS]
            + 2.0 * model[L.M_TOPK] * model[L.M_HIDDEN] * (1.0 if fp8_inputs else 2.0)) / tsp


@njit(cache=True)
def train_memory(model, job, tp, cp, pp, vpp, b, sp, rc, zero, off, m, dpc, p_nonexp, p_exp,
                 sh, sh_e, big_p, n_d, n_m, out):
    """``(HBM bytes, host bytes)`` of a training chip on the busiest (first) stage, each
    HBM term written to ``out`` (``O_MEM_*``, with ``O_ZERO``, ``O_OFFLOAD``,
    ``O_MEM_HOST``): the model states of ``p_nonexp`` weights sharded over ``sh`` ranks
    and ``p_exp`` expert weights over ``sh_e`` by ZeRO stage ``zero``, less what offload
    bits ``off`` keep in host memory (``big_p`` the largest layer's parameters); the
    activations of the micro-batches in flight (``m`` per pipeline, ``vpp`` interleaving)
    through ``n_d`` dense and ``n_m`` MoE layers under tensor parallelism ``tp`` (sequence
    parallel if ``sp``) and recompute ``rc`` (3: the layer inputs in host memory); one
    micro-batch's logits; the buffers (ZeRO-3 over ``dpc`` > 1 ranks: gathered layers)."""
    h = model[L.M_HIDDEN]
    seq = job[L.J_SEQ]
    el_b = job[L.J_BYTES]
    grad_b = job[L.J_GRAD_B]
    act_b = max(el_b, 2.0)  # activations stay 16-bit in fp8 recipes
    fp8_inputs = el_b < 2.0  # ... which keep the fp8 copy of GEMM inputs
    w_b, g_b, o_b = model_state_bytes(p_nonexp, zero, sh, grad_b)
    if p_exp > 0:
        we, ge, oe = model_state_bytes(p_exp, zero, sh_e, grad_b)
        w_b += we
        g_b += ge
        o_b += oe
    w_b, g_b, o_b, host_b = resident_states(w_b, g_b, o_b, off, big_p, WEIGHT_B, grad_b)
    s_loc = seq / cp
    unfused = job[L.J_ATTN] > 0.5
    tsp = tp if sp == 1 else 1.0
    in_flight = in_flight_micro_batches(pp, m, vpp)
    act_total = train_activation_bytes(model, tp, sp, rc, unfused, s_loc * b, seq,
                                       mla_latent_width(model),
                                       moe_token_bytes(model, tsp, fp8_inputs), act_b,
                                       fp8_inputs, in_flight, n_d, n_m)
    # logits of one micro-batch on the last stage: fp32 in the frameworks of the unfused
    # attention era (Megatron-LM 2021-22 casts them for its cross-entropy), 16-bit under the
    # fused cross-entropy kernels of later frameworks (NeMo, MaxText, torchtitan)
    logits_b = (4.0 if unfused else 2.0) * s_loc * b * model[L.M_VOCAB] / tp
    buf = BUFFER_B
    if zero == 3 and dpc > 1:  # gathered (unsharded) weights of the layers in flight
        buf += ZERO3_PREFETCH_LAYERS * WEIGHT_B * big_p
    mem = w_b + g_b + o_b + act_total + logits_b + buf
    out[L.O_MEM_WEIGHTS] = w_b
    out[L.O_MEM_GRADS] = g_b
    out[L.O_MEM_OPT] = o_b
    out[L.O_MEM_ACT] = act_total
    out[L.O_MEM_LOGITS] = logits_b
    out[L.O_MEM_BUFFER] = buf
    out[L.O_MEM_B] = mem
    out[L.O_ZERO] = zero
    if rc == 3:  # offloaded recompute's layer inputs wait in host memory
        host_b += in_flight * (n_d + n_m) * act_b * s_loc * b * h / tsp
    out[L.O_OFFLOAD] = off
    out[L.O_MEM_HOST] = host_b
    return mem, host_b
