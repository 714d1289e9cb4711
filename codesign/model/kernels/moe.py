"""Mixture-of-experts layers as frameworks run them (Megatron-Core, MaxText, DeepSeek).

Per MoE layer and micro-batch, on one chip of a tensor-parallel group that holds ``tok``
tokens (expert weights split over the tp ranks like the dense MLP: expert tensor parallelism
= tp, the layout of every Megatron run in calibration.csv):

* Router: a ``tok x hidden x experts`` GEMM, then softmax and top-k over the ``experts``
  logits (fp32, memory-bound).
* Token permutation: the routed copies gathered per expert and scattered back
  (``2 + 2 topk`` token-sized reads and writes per token, memory-bound), once forward and once
  backward.
* Routed experts: the ``experts / ep`` local experts run as one grouped GEMM
  (:func:`codesign.model.kernels.gemm.grouped_gemm_cost`) with ``tok topk ep / experts`` tokens per
  expert, the small-M expert GEMMs paying their tile and wave quantisation and reading every
  local expert's weights; the busiest rank (``imbalance`` x the mean) sets the pace.
* Shared experts: a dense MLP over all tokens.
* Expert parallelism folds over tp x cp x dp (Megatron-Core parallel folding): ``ep`` divides
  the experts and ``cp x dp``; its all-to-all (dispatch and combine, forward and backward) is
  in :func:`codesign.model.kernels.collectives.alltoall_time`, placed inside or across the scale-up
  domain; with the mapping's ``ep_overlap`` it runs under another micro-batch's compute
  (:func:`exposed_a2a`).
"""

from __future__ import annotations

from numba import njit

from codesign.model.kernels.gemm import gemm_cost, grouped_gemm_cost

ROUTER_ELEM_BYTES = 12.0
"""Bytes per router logit for softmax and top-k: fp32 logits read, probabilities written and
read back for the selection (memory-bound elementwise kernels)."""
COMM_SM_SHARE = 20.0 / 132.0
"""Share of the compute units an overlapped all-to-all occupies: DeepSeek-V3 dedicates 20 of
the H800's 132 SMs to its dispatch and combine kernels (DeepSeek-AI 2024, arXiv 2412.19437,
sec. 3.2.2)."""
PERMUTE_KERNELS = 4.0
"""Extra kernels per MoE layer forward: router, top-k, permute, un-permute."""


@njit(cache=True)
def moe_mlp_cost(tok, tok_sp, h, experts, topk, f_moe, shared, up_mats, ep, tp, imbalance,
                 peak, eff, hbm, mem_eff, sram, el_b, act_b, units, tile, min_tm):
    """Forward cost of one MoE layer's MLP part on one chip: (expert and shared GEMM seconds,
    router + permutation seconds, FLOPs, HBM bytes, tokens per local expert). ``tok`` tokens
    per tp group, ``tok_sp`` of them on this chip's router (``tok / tp`` with sequence
    parallelism); ``up_mats`` is the first expert GEMM's width in units of ``f_moe`` (2 for a
    gated MLP, 1 otherwise)."""
    # router GEMM and softmax/top-k
    t_router, by_router = gemm_cost(tok_sp, h, experts, peak, eff, hbm, mem_eff, sram, el_b,
                                    units, tile, min_tm)
    by_router += ROUTER_ELEM_BYTES * tok_sp * experts
    # gather the routed copies per expert and scatter them back
    by_perm = act_b * tok_sp * h * (2.0 + 2.0 * topk)
    t_other = t_router + (ROUTER_ELEM_BYTES * tok_sp * experts + by_perm) / (hbm * mem_eff)
    # routed experts: the local ones as one grouped GEMM, tokens routed in from ep ranks
    local = experts / ep
    m_e = tok * topk * ep / experts
    t_up, by_up = grouped_gemm_cost(local, m_e, h, up_mats * f_moe / tp, peak, eff, hbm,
                                    mem_eff, sram, el_b, units, tile, min_tm)
    t_down, by_down = grouped_gemm_cost(local, m_e, f_moe / tp, h, peak, eff, hbm, mem_eff,
                                        sram, el_b, units, tile, min_tm)
    t_gemm = (t_up + t_down) * imbalance  # the busiest rank sets the pace
    byts = by_up + by_down
    flops = 2.0 * tok * topk * (up_mats + 1.0) * h * f_moe / tp + 2.0 * tok_sp * h * experts
    if shared > 0.0:
        t_su, b_su = gemm_cost(tok, h, shared * up_mats * f_moe / tp, peak, eff, hbm, mem_eff,
                               sram, el_b, units, tile, min_tm)
        t_sd, b_sd = gemm_cost(tok, shared * f_moe / tp, h, peak, eff, hbm, mem_eff, sram,
                               el_b, units, tile, min_tm)
        t_gemm += t_su + t_sd
        byts += b_su + b_sd
        flops += 2.0 * tok * shared * (up_mats + 1.0) * h * f_moe / tp
    byts += by_router + by_perm
    return t_gemm, t_other, flops, byts, m_e


@njit(cache=True)
def a2a_volume(tok, topk, h, tp, act_b, imbalance):
    """Bytes one chip sends in one all-to-all (dispatch or combine) of a micro-batch: its
    share of the tp group's routed token copies."""
    return act_b * tok * topk * h / tp * imbalance


@njit(cache=True)
def exposed_a2a(t_a2a, t_compute, overlap):
    """All-to-all seconds on the critical path: all of them, or with ``overlap`` (DualPipe-
    style: one micro-batch's communication under another's computation) what ``t_compute``
    does not hide, plus the compute the communication kernels take from the hidden part
    (:data:`COMM_SM_SHARE` of the units while they run)."""
    if overlap < 1:
        return t_a2a
    hidden = min(t_a2a, t_compute)
    return t_a2a - hidden + COMM_SM_SHARE * hidden
