"""Per-layer compute of one micro-batch on one chip: the GEMMs, the attention core, the norms,
residuals and activation functions, the MoE layer, recompute and activation offload
(:func:`layer_costs`; the step, communication and memory are :mod:`.train`'s).

* GEMMs (:mod:`.gemm`): the Q/K/V/O projections (under multi-head latent attention the
  un-split down-projections and the split up-projections), the dense MLP; backward = 2x the
  forward GEMMs (data and weight gradients).
* Attention core (:mod:`.attention`): fused (flash) or unfused, causal, sliding windows, its
  efficiency by sequence length and head width; context parallelism gives each rank 1/cp of
  the (query, key) pairs.
* MoE layers (:mod:`.moe`): router, permutation, grouped expert GEMMs, shared experts.
* Norms, residuals, activation functions: memory-bound traffic at 16-bit activations,
  ``C_ELEM_B`` token-sized reads and writes per layer (the software stack's: fused kernels
  move less, :class:`codesign.model.efficiency.Stack`), and :data:`KERNELS_PER_LAYER` launches.
* Recompute: full = one more forward per layer; selective = one more attention core
  (unfused), or the norms, activation functions and MLA up-projections (fused); offload =
  full recompute whose layer inputs travel to host memory under the layer's compute.
"""

from __future__ import annotations

from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.attention import (
    head_dims,
    layers_flash_cost,
    projection_params,
    unfused_cost,
    window_share,
)
from codesign.model.kernels.gemm import gemm_cost, tile_elems
from codesign.model.kernels.moe import PERMUTE_KERNELS, moe_mlp_cost

KERNELS_PER_LAYER = 12.0
"""Kernels per layer forward (norms, QKV, attention, projection, residuals, MLP: Megatron)."""


@njit(cache=True)
def gemm_flops_per_token(model):
    """Forward GEMM FLOPs per token (layers + output layer), a lower bound on the real work:
    two per active weight (the attention projections, dense MLPs, the top-k routed and shared
    experts and the router of MoE layers, the output layer)."""
    h = model[L.M_HIDDEN]
    mats = 3.0 if model[L.M_GATED] > 0.5 else 2.0
    layers = model[L.M_LAYERS]
    experts = model[L.M_EXPERTS]
    n_moe = layers - model[L.M_DENSE_LAYERS] if experts > 0 else 0.0
    split, whole = projection_params(model)
    mlp = (layers - n_moe) * mats * h * model[L.M_FFN]
    mlp += n_moe * (mats * h * model[L.M_MOE_FFN] * (model[L.M_TOPK] + model[L.M_SHARED])
                    + h * experts)
    return 2.0 * (layers * (split + whole) + mlp + model[L.M_VOCAB] * h)


@njit(cache=True)
def layer_costs(chip, model, job, tp, cp, ep, b, sp, rc, peak, eff_gemm, peak_attn, act_b,
                fp8_inputs):
    """Forward, backward and recompute seconds, FLOPs and HBM bytes of one dense
    and one MoE layer for a micro-batch of ``b`` sequences (1/cp of each on this chip) under
    tensor parallelism ``tp`` (sequence parallel if ``sp``), expert parallelism ``ep`` and
    recompute mode ``rc`` (0 none, 1 selective, 2 full, 3 offloaded); ``peak`` and
    ``eff_gemm`` the GEMM rate (FLOP/s) of the precision, ``peak_attn`` the attention core's
    peak, ``act_b`` bytes per activation element, ``fp8_inputs`` whether GEMM inputs are
    kept at 1 byte. Returns a tuple (seconds, FLOPs, bytes per layer):
    (t_attn, t_attn_bwd, attn_flops, attn_bytes, attn_bwd_x, t_d_fwd, t_d_bwd, t_d_rc,
    x_off, d_flops, d_bytes, t_m_fwd, t_m_bwd, t_m_rc, m_flops, m_bytes, moe_gemm,
    moe_other): attention core forward and backward times, FLOPs, bytes
    and backward-to-forward FLOP ratio; the bytes of a layer's input offloaded recompute
    sends to host memory (and back); per dense (``d``) and MoE (``m``) layer forward,
    backward and recompute times, forward FLOPs and bytes; the MoE expert GEMM and
    other (router, permutation) forward times (the activations they keep are
    :func:`.memory.train_memory`'s)."""
    h = model[L.M_HIDDEN]
    heads = model[L.M_HEADS]
    f = model[L.M_FFN]
    gated = model[L.M_GATED] > 0.5
    experts = model[L.M_EXPERTS]
    topk = model[L.M_TOPK]
    f_moe = model[L.M_MOE_FFN]
    shared = model[L.M_SHARED]
    seq = job[L.J_SEQ]
    el_b = job[L.J_BYTES]
    imbalance = job[L.J_MOE_IMB]
    eff_attn = chip[L.C_ATTN_EFF]
    eff_mem = chip[L.C_MEM_EFF]
    kernel_s = chip[L.C_KERNEL_S]
    dqk, dv, nkv, kv_lora = head_dims(model)
    mla = kv_lora > 0.0
    is_moe = experts > 0
    mlp_mats = 2.0 if gated else 1.0
    p_split, p_whole = projection_params(model)
    full = rc >= 2
    sel_fused = rc == 1 and job[L.J_ATTN] < 0.5
    hbm = chip[L.C_HBM_BPS]
    sram = chip[L.C_SRAM_B]
    units = chip[L.C_UNITS]
    tile = tile_elems(chip)
    min_tm = chip[L.C_MIN_TILE_M]
    s_loc = seq / cp
    tok = b * s_loc  # tokens per micro-batch on this chip's tp group
    tsp = tp if sp == 1 else 1.0
    # attention projections
    if mla:
        q_lora = model[L.M_Q_LORA]
        rope = model[L.M_ROPE_DIM]
        t_qkv, by_qkv = gemm_cost(tok, h, q_lora + kv_lora + rope, peak, eff_gemm, hbm,
                                  eff_mem, sram, el_b, units, tile, min_tm)
        q_in = q_lora if q_lora > 0.0 else h
        t1, b1 = gemm_cost(tok, q_in, heads * dqk / tp, peak, eff_gemm, hbm, eff_mem, sram,
                           el_b, units, tile, min_tm)
        t2, b2 = gemm_cost(tok, kv_lora, heads * (dqk - rope + dv) / tp, peak, eff_gemm, hbm,
                           eff_mem, sram, el_b, units, tile, min_tm)
        t_qkv += t1 + t2
        by_qkv += b1 + b2
        t_up_proj = t1 + t2
    else:
        t_qkv, by_qkv = gemm_cost(tok, h, (heads * dqk + nkv * (dqk + dv)) / tp, peak,
                                  eff_gemm, hbm, eff_mem, sram, el_b, units, tile, min_tm)
        t_up_proj = 0.0
    t_proj, by_proj = gemm_cost(tok, heads * dv / tp, h, peak, eff_gemm, hbm, eff_mem, sram,
                                el_b, units, tile, min_tm)
    proj_flops = 2.0 * tok * (p_split / tp + p_whole)
    # attention core: ``heads / tp`` query heads of the chip over the whole sequence (the
    # context-parallel ring brings every chunk); sliding-window layers see ``window`` keys
    heads_c = heads / tp
    kv_c = max(1.0, nkv / tp)
    unfused = job[L.J_ATTN] > 0.5
    if unfused:
        # each rank computes the scores of its chunk's queries over the whole sequence
        t_attn, t_attn_bwd, attn_flops, attn_bytes = unfused_cost(
            b, s_loc, seq, heads_c, dqk, dv, peak_attn, chip[L.C_GEMM_EFF], hbm, eff_mem)
        attn_bwd_x = 2.0
    else:
        t_attn, t_attn_bwd, attn_flops, attn_bytes = layers_flash_cost(
            b, seq, seq, heads_c, dqk, dv, kv_c, model[L.M_WINDOW], window_share(model),
            peak_attn, eff_attn, hbm, eff_mem, act_b)
        t_attn /= cp  # a load-balanced causal ring gives each rank 1/cp of the pairs
        t_attn_bwd /= cp
        attn_flops /= cp
        attn_bytes /= cp
        attn_bwd_x = 2.5
    elem_bytes = act_b * tok * chip[L.C_ELEM_B] * h / tsp
    t_overhead = KERNELS_PER_LAYER * kernel_s
    attn_block_f = t_qkv + t_proj + t_attn + t_overhead
    attn_block_gemm = t_qkv + t_proj
    # dense MLP
    t_up, by_up = gemm_cost(tok, h, mlp_mats * f / tp, peak, eff_gemm, hbm, eff_mem, sram,
                            el_b, units, tile, min_tm)
    t_down, by_down = gemm_cost(tok, f / tp, h, peak, eff_gemm, hbm, eff_mem, sram, el_b,
                                units, tile, min_tm)
    dense_elem = act_b * tok * (mlp_mats + 1.0) * f / tp
    t_d_elem = (elem_bytes + dense_elem) / (hbm * eff_mem)
    t_d_fwd = attn_block_f + t_up + t_down + t_d_elem
    # selective recompute under fused attention: the norms, the activation function (from
    # the first MLP GEMM's output) and, under MLA, the up-projections
    t_sel_d = (act_b * tok * (4.0 * h / tsp + (mlp_mats + 1.0) * f / tp) / (hbm * eff_mem)
               + t_up_proj)
    t_d_bwd = 2.0 * (attn_block_gemm + t_up + t_down + t_d_elem) + t_attn_bwd + 2.0 * t_overhead
    d_flops = proj_flops + 2.0 * tok * (mlp_mats + 1.0) * h * f / tp
    d_bytes = by_qkv + by_proj + by_up + by_down + elem_bytes + dense_elem
    # MoE layer
    t_m_fwd = 0.0
    t_m_bwd = 0.0
    m_flops = 0.0
    m_bytes = 0.0
    moe_gemm = 0.0
    moe_other = 0.0
    t_sel_m = 0.0
    if is_moe:
        res = moe_mlp_cost(tok, tok / tsp, h, experts, topk, f_moe, shared, mlp_mats, ep, tp,
                           imbalance, peak, eff_gemm, hbm, eff_mem, sram, el_b, act_b, units,
                           tile, min_tm)
        moe_elem = act_b * tok * (topk + shared) * (mlp_mats + 1.0) * f_moe / tp
        t_m_elem = (elem_bytes + moe_elem) / (hbm * eff_mem)
        moe_gemm = res[0]
        moe_other = res[1]
        t_sel_m = (act_b * tok * (4.0 * h / tsp + (mlp_mats + 1.0) * f_moe * (topk + shared)
                                  / tp) / (hbm * eff_mem) + t_up_proj)
        t_moe_kernels = PERMUTE_KERNELS * kernel_s
        t_m_fwd = attn_block_f + (moe_gemm + moe_other) + t_m_elem + t_moe_kernels
        t_m_bwd = (2.0 * (attn_block_gemm + moe_gemm + t_m_elem) + moe_other + t_attn_bwd
                   + 2.0 * (t_overhead + t_moe_kernels))
        m_flops = proj_flops + res[2]
        m_bytes = by_qkv + by_proj + res[3] + elem_bytes + moe_elem
    # recompute: full = one more forward; selective = one more attention core (unfused), or
    # the norms, activation functions and up-projections (fused)
    t_d_rc = t_d_fwd if full else (t_sel_d if sel_fused else (t_attn if rc == 1 else 0.0))
    t_m_rc = t_m_fwd if full else (t_sel_m if sel_fused else (t_attn if rc == 1 else 0.0))
    # offloaded recompute: each layer's input goes to host memory under the forward and comes
    # back under the backward (:func:`.offload.layer_host_time` times the copies)
    x_off = act_b * tok * h / tsp if rc == 3 else 0.0
    return (t_attn, t_attn_bwd, attn_flops, attn_bytes, attn_bwd_x, t_d_fwd, t_d_bwd, t_d_rc,
            x_off, d_flops, d_bytes, t_m_fwd, t_m_bwd, t_m_rc, m_flops, m_bytes,
            moe_gemm, moe_other)


COSTS_LEN = 18
"""Values :func:`layer_costs` returns."""


@njit(cache=True)
def costs_to(row, costs, stamp):
    """Store :func:`layer_costs`' tuple in ``row[1:]`` and ``stamp`` in ``row[0]``."""
    row[0] = stamp
    for i in range(COSTS_LEN):
        row[i + 1] = costs[i]


@njit(cache=True)
def costs_from(row):
    """The :func:`layer_costs` tuple stored by :func:`costs_to`."""
    return (row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
            row[11], row[12], row[13], row[14], row[15], row[16], row[17], row[18])
