"""The attention core (scores and their weighted sum; the Q/K/V/O projections are GEMMs).

* Work: ``2 (d_qk + d_v)`` FLOPs per query head and (query, key) pair the mask keeps: all
  pairs, half of them under a causal mask, ``w`` keys per query in a sliding window of ``w``
  (:func:`key_pairs`). Under multi-head latent attention the score width ``d_qk`` is the head
  width plus the RoPE part (DeepSeek-V3: 128 + 64) and ``d_v`` the value head width.
* Fused (flash) kernels tile queries and keys in blocks of :data:`ATTN_BLOCK`; each query
  block pays a fixed amount of work and a causal mask more (the diagonal block, the
  imbalance between short and long query blocks), so short sequences lose most, and narrow
  heads run below the matrix units' rate (:func:`flash_util`, fitted to published
  FlashAttention-3/4 sweeps). Forward at
  ``eff_attn`` of the 16-bit peak (fp8 recipes keep attention in bf16), backward
  :data:`BWD_FLOPS_RATIO` times the forward FLOPs at :data:`BWD_EFF_RATIO` of the forward's
  rate; or the HBM traffic of Q, K, V and O when that is longer.
* Unfused attention (Megatron-LM 2021-22) runs QK^T and AV as full (masked, not skipped)
  GEMMs and streams the ``heads s^2 b`` scores through HBM (:data:`UNFUSED_SCORE_BYTES`).
* Decode reads each sequence's KV cache once per step (memory-bound); with MLA the absorbed
  query attends over the shared latent (:func:`decode_cost`).
"""

from __future__ import annotations

from numba import njit

from codesign.model.kernels import layout as L

ATTN_BLOCK = 128.0
"""Query/key block of fused attention kernels (FlashAttention-2/3: 128 x 128 or 128 x 64
tiles for head widths 64-128)."""
HEAD_DIM_HALF = 64.0
"""Head width at which a fused attention kernel reaches half its asymptotic rate (its
``d / (d + HEAD_DIM_HALF)`` factor is normalised to 1 at d = 128: 64-wide heads run at 0.75
of 128-wide ones; published pairs span 0.56 (FlashAttention-4 on B200) to 0.95
(FlashAttention-3 on H20), microbench.csv)."""
BLOCK_OVERHEAD = 1.65
"""Fixed work per query block of a fused attention kernel, in key blocks (Q load, softmax
rescale, O write). With :data:`CAUSAL_EXTRA`, least-squares fit to the published forward
sweeps in microbench.csv (FlashAttention-3 on H100, hd 128, non-causal, 512-16k tokens:
430-621 TFLOP/s, rms error 1.3 %; FlashAttention-4 on B200, hd 128, non-causal 1k-16k and
causal 1k-4k: 697-1362 TFLOP/s, rms 2.2 %)."""
CAUSAL_EXTRA = 2.45
"""Extra fixed work per query block under a causal mask, in key blocks: the diagonal block
computed whole and the load imbalance between query blocks of different lengths (fitted
with :data:`BLOCK_OVERHEAD`)."""
BWD_FLOPS_RATIO = 2.5
"""Backward FLOPs over forward FLOPs of fused attention: five score-sized products against
two (Dao 2023, FlashAttention-2, sec. 3.2)."""
BWD_EFF_RATIO = 0.87
"""Backward over forward rate of fused attention kernels (fraction of the forward's FLOP/s):
FlashAttention-4 on B200 at 8k tokens, hd 128: backward 1359.8 / forward 1534.8 TFLOP/s
non-causal (0.89), 1208.6 / 1418.1 causal (0.85) (microbench.csv, flash-attention PR #2280)."""
UNFUSED_SCORE_BYTES = 13.0
"""HBM bytes per attention-score element in an unfused forward pass: QK^T write, fused
scale-mask-softmax read + write, dropout read + write + mask, AV read (twice that backward)."""


@njit(cache=True)
def key_pairs(s_q, s_kv, causal, window):
    """(query, key) pairs one head of one sequence computes for ``s_q`` queries (the last ones
    of ``s_kv`` keys) under the mask: all ``s_q s_kv``, causal ``~ s_q (s_kv - s_q/2)``, or a
    causal sliding window of ``window`` keys."""
    if not causal:
        return s_q * s_kv
    first = s_kv - s_q  # keys before the first query
    full = s_q * first + 0.5 * s_q * (s_q + 1.0)
    if window > 0.0 and window < s_kv:
        # each query sees min(its position, window) keys
        ramp = min(window, s_kv)
        pairs = 0.0
        if first < ramp:
            n_ramp = min(s_q, ramp - first)  # queries still inside the first window
            pairs = n_ramp * first + 0.5 * n_ramp * (n_ramp + 1.0)
            pairs += (s_q - n_ramp) * window
        else:
            pairs = s_q * window
        return min(pairs, full)
    return full


@njit(cache=True)
def flash_util(s_q, pairs, causal, window, head_dim):
    """Share of a fused attention kernel's rate that does useful work, for ``s_q`` queries
    (per head and sequence) computing ``pairs`` (query, key) pairs: every query block also
    pays :data:`BLOCK_OVERHEAD` blocks of fixed work (loading Q, rescaling and writing O),
    a causal mask computes half a block of masked pairs per query block (the diagonal), a
    sliding window another half (its far edge); heads narrower than 128 run slower
    (``d / (d + HEAD_DIM_HALF)`` normalised to 128)."""
    waste_blocks = BLOCK_OVERHEAD
    if causal:
        waste_blocks += CAUSAL_EXTRA
        if window > 0.0:
            waste_blocks += 0.5  # the window's far edge is ragged too
    waste = s_q * ATTN_BLOCK * waste_blocks
    share = pairs / (pairs + waste) if pairs > 0.0 else 0.0
    hd = (head_dim / (head_dim + HEAD_DIM_HALF)) / (128.0 / (128.0 + HEAD_DIM_HALF))
    if hd > 1.0:
        hd = 1.0
    return share * hd


@njit(cache=True)
def flash_cost(b, s_q, s_kv, heads, d_qk, d_v, kv_heads, causal, window, peak16, eff_attn,
               hbm_bps, mem_eff, act_b):
    """(forward s, backward s, forward FLOPs, forward HBM bytes) of fused attention for ``b``
    sequences of ``s_q`` queries over ``s_kv`` keys with ``heads`` query and ``kv_heads`` KV
    heads on this chip."""
    pairs = key_pairs(s_q, s_kv, causal, window)
    flops = 2.0 * b * heads * (d_qk + d_v) * pairs
    rate = peak16 * eff_attn * flash_util(s_q, pairs, causal, window, 0.5 * (d_qk + d_v))
    byts = act_b * b * (s_q * heads * (d_qk + d_v) + s_kv * kv_heads * (d_qk + d_v))
    t_mem = byts / (hbm_bps * mem_eff)
    t_fwd = max(flops / rate, t_mem)
    t_bwd = max(BWD_FLOPS_RATIO * flops / (rate * BWD_EFF_RATIO), 2.0 * t_mem)
    return t_fwd, t_bwd, flops, byts


@njit(cache=True)
def layers_flash_cost(b, s_q, s_kv, heads, d_qk, d_v, kv_heads, window, share, peak16,
                      eff_attn, hbm_bps, mem_eff, act_b):
    """:func:`flash_cost` of a causal layer averaged over a model whose ``share`` of
    layers attend through a sliding window of ``window`` keys (the rest to the whole
    context)."""
    t_f, t_b, flops, byts = flash_cost(b, s_q, s_kv, heads, d_qk, d_v, kv_heads, True, 0.0,
                                       peak16, eff_attn, hbm_bps, mem_eff, act_b)
    if share > 0.0:
        wf, wb, wfl, wby = flash_cost(b, s_q, s_kv, heads, d_qk, d_v, kv_heads, True, window,
                                      peak16, eff_attn, hbm_bps, mem_eff, act_b)
        keep = 1.0 - share
        t_f = keep * t_f + share * wf
        t_b = keep * t_b + share * wb
        flops = keep * flops + share * wfl
        byts = keep * byts + share * wby
    return t_f, t_b, flops, byts


@njit(cache=True)
def window_share(model):
    """Share of a model's layers that attend through a sliding window (0 without one)."""
    if model[L.M_WINDOW] > 0:
        return model[L.M_WINDOW_LAYERS] / model[L.M_LAYERS]
    return 0.0


@njit(cache=True)
def unfused_cost(b, s_q, s_kv, heads, d_qk, d_v, peak16, eff_gemm, hbm_bps, mem_eff):
    """(forward s, backward s, forward FLOPs, forward HBM bytes) of unfused attention: both
    products over the full (masked) score matrix at the 16-bit GEMM rate, the scores
    streamed through HBM (:data:`UNFUSED_SCORE_BYTES` per element, twice backward)."""
    flops = 2.0 * b * heads * (d_qk + d_v) * s_q * s_kv
    byts = UNFUSED_SCORE_BYTES * heads * s_q * s_kv * b
    t_fwd = flops / (peak16 * eff_gemm) + byts / (hbm_bps * mem_eff)
    return t_fwd, 2.0 * t_fwd, flops, byts


@njit(cache=True)
def decode_cost(tokens, n_seq, ctx, heads, kv_heads, d_qk, d_v, latent, kv_b, peak16,
                eff_attn, hbm_bps, mem_eff):
    """(seconds, FLOPs, HBM bytes) of one decode step's attention on this chip: ``tokens``
    new queries over ``n_seq`` caches of ``ctx`` tokens each, ``heads`` query heads and
    ``kv_heads`` cached heads on this chip. ``latent`` > 0: multi-head latent attention with
    the query absorbed: every head scores and sums over the one shared latent of that width,
    which every tp rank reads whole."""
    if latent > 0.0:
        flops = 4.0 * tokens * ctx * latent * heads
        byts = kv_b * n_seq * ctx * latent
    else:
        flops = 2.0 * tokens * ctx * heads * (d_qk + d_v)
        byts = kv_b * n_seq * ctx * kv_heads * (d_qk + d_v)
    t = max(flops / (peak16 * eff_attn), byts / (hbm_bps * mem_eff))
    return t, flops, byts


@njit(cache=True)
def head_dims(model):
    """(score width d_qk, value width d_v, key/value heads, MLA latent rank or 0) of a packed
    model: ``head_dim`` (hidden / heads when 0) plus the RoPE part under MLA, whose keys and
    values are up-projected per query head."""
    heads = model[L.M_HEADS]
    hd = model[L.M_HEAD_DIM]
    if not (hd > 0.0):
        hd = model[L.M_HIDDEN] / heads
    dv = model[L.M_V_HEAD_DIM]
    if not (dv > 0.0):
        dv = hd
    kv_lora = model[L.M_KV_LORA]
    if kv_lora <= 0.0 and model[L.M_KV_LATENT] > 0.0:
        kv_lora = model[L.M_KV_LATENT] - model[L.M_ROPE_DIM]  # latent given alone
    if kv_lora > 0.0:
        return hd + model[L.M_ROPE_DIM], dv, heads, kv_lora
    return hd, dv, model[L.M_KV_HEADS], 0.0


@njit(cache=True)
def projection_params(model):
    """(weights split over tp, weights every tp rank keeps whole) of one layer's attention
    projections: Q, K, V and output; under MLA the down-projections to the query and
    key/value latents are not split (Megatron-Core's MLA with tensor parallelism)."""
    h = model[L.M_HIDDEN]
    nq = model[L.M_HEADS]
    dqk, dv, nkv, kv_lora = head_dims(model)
    if kv_lora > 0.0:
        q_lora = model[L.M_Q_LORA]
        rope = model[L.M_ROPE_DIM]
        q_in = q_lora if q_lora > 0.0 else h
        split = q_in * nq * dqk + kv_lora * nq * (dqk - rope + dv) + nq * dv * h
        whole = h * (q_lora + kv_lora + rope)
        return split, whole
    return h * (nq * dqk + nkv * (dqk + dv)) + nq * dv * h, 0.0
