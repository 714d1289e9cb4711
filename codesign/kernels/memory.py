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

WEIGHT_B, GRAD_B, OPT_B = 2.0, 2.0, 12.0
"""Mixed-precision Adam memory per parameter, bytes (Rajbhandari et al. 2020, ZeRO, Sec. 3.1):
16-bit weights and gradients, fp32 master weights, momentum and variance. Gradients are
``J_GRAD_B`` bytes in the kernels (fp32 main gradients for bf16 training,
:data:`codesign.pack.GRAD_BYTES`)."""
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
