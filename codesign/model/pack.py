"""The one place that knows column order: specs <-> the flat arrays the kernels read.

Example:
    >>> from codesign.model.catalog import get_chip
    >>> arr = chip_array(get_chip("h100-sxm"))
    >>> float(arr[layout.C_FLOPS_BF16])
    9.894e+14
"""

from __future__ import annotations

import math

import numpy as np

from codesign.model import efficiency
from codesign.model.chip import power
from codesign.model.efficiency import Efficiency, Stack
from codesign.model.kernels import layout
from codesign.model.specs import (
    ATTENTION_IMPLS,
    OFFLOAD_MODES,
    PRECISIONS,
    RECOMPUTE_MODES,
    SERVE_MEMORY_TERMS,
    TOPOLOGIES,
    TRAIN_MEMORY_TERMS,
    ChipSpec,
    ClusterSpec,
    InferJob,
    InferResult,
    Mapping,
    ModelSpec,
    Result,
    TrainJob,
)

PRECISION_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "fp4": 0.5}
"""Bytes per matmul operand element; fp8/fp4 runs keep weights and activations in that format
for the GEMMs (the optimizer state stays fp32, see kernels.train)."""

GRAD_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 4.0, "fp8": 4.0, "fp4": 4.0}
"""Bytes per gradient element kept and reduced: fp16 training keeps 16-bit gradients (ZeRO,
Rajbhandari et al. 2020); bf16 (and fp8 / fp4 recipes, whose weights are bf16) accumulate
and all-reduce fp32 main gradients (Megatron-LM turns ``accumulate_allreduce_grads_in_fp32``
on for bf16; Megatron-Core's distributed optimizer: 6 + 12/d bytes per parameter)."""

_REQUIRED_CHIP_FIELDS = ("sram_mb", "hbm_gb", "hbm_tbps", "tdp_w")


class UnknownSpecError(ValueError):
    """A catalog chip lacks a number the model needs (the catalog says 'unknown')."""


def _num(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def chip_array(chip: ChipSpec, scaleout_gbps: float | None = None,
               eff: Efficiency | Stack | None = None) -> np.ndarray:
    """Pack a chip. Units: FLOP/s, bytes, bytes/s (per direction for links).

    ``scaleout_gbps`` overrides the chip's NIC bandwidth (Gbit/s): scale-out is cluster-specific.
    ``eff``: the chip's efficiencies, or the software stack its generation runs under
    (default: the calibrated stack; see :func:`codesign.model.efficiency.for_chip`).
    Raises :class:`UnknownSpecError` naming the chip and field when a needed value is unknown.
    """
    missing = chip.unknown_fields(_REQUIRED_CHIP_FIELDS)
    if chip.tflops_bf16 is None and chip.tflops_fp8 is None and chip.tflops_fp32 is None:
        missing.append("tflops_bf16")
    nic = scaleout_gbps if scaleout_gbps is not None else chip.scaleout_gbps
    domain = chip.scaleup_domain if chip.scaleup_domain is not None else 1
    if nic is None:
        missing.append("scaleout_gbps")
    if chip.scaleup_gbps is None and domain > 1:
        missing.append("scaleup_gbps")
    if missing:
        raise UnknownSpecError(
            f"chip {chip.id or chip.name!r}: unknown {', '.join(missing)} "
            "(empty in the catalog); give a chip TOML with these values"
        )
    eff = efficiency.for_chip(chip, eff)
    a = np.zeros(layout.CHIP_LEN)
    a[layout.C_FLOPS_FP32] = _num(chip.tflops_fp32) * 1e12
    a[layout.C_FLOPS_BF16] = _num(chip.tflops_bf16) * 1e12
    a[layout.C_FLOPS_FP8] = _num(chip.tflops_fp8) * 1e12
    a[layout.C_FLOPS_FP4] = _num(chip.tflops_fp4) * 1e12
    a[layout.C_UNITS] = _num(chip.compute_units)
    a[layout.C_CLOCK_HZ] = _num(chip.clock_ghz) * 1e9
    a[layout.C_SRAM_B] = chip.sram_mb * 1e6
    a[layout.C_HBM_B] = chip.hbm_gb * 1e9
    a[layout.C_HBM_BPS] = chip.hbm_tbps * 1e12
    a[layout.C_UP_BPS] = (chip.scaleup_gbps or 0.0) * 1e9 / 2.0  # bidirectional -> per direction
    a[layout.C_DOMAIN] = domain
    a[layout.C_OUT_BPS] = nic * 1e9 / 8.0  # Gbit/s -> bytes/s
    a[layout.C_TDP_W] = chip.tdp_w
    a[layout.C_GEMM_EFF] = eff.gemm
    a[layout.C_GEMM_EFF_LOWP] = eff.gemm_lowp
    a[layout.C_ATTN_EFF] = eff.attention
    a[layout.C_MEM_EFF] = eff.memory
    a[layout.C_NET_EFF] = eff.network
    a[layout.C_KERNEL_S] = eff.kernel_s
    (a[layout.C_E_FP32], a[layout.C_E_BF16], a[layout.C_E_FP8], a[layout.C_E_FP4],
     a[layout.C_E_HBM], a[layout.C_E_LINK], a[layout.C_LEAK_W],
     a[layout.C_BUSY_W]) = power.energy_columns(chip)
    a[layout.C_THROTTLES] = 1.0 if chip.throttles else 0.0
    a[layout.C_MIN_TILE_M] = eff.min_tile_m
    a[layout.C_ELEM_B] = eff.elem_bytes
    return a


def cluster_array(cluster: ClusterSpec, overhead_w_per_chip: float | None = None
                  ) -> np.ndarray:
    """Pack a cluster (latencies in seconds, powers in W). ``overhead_w_per_chip`` is the
    non-accelerator IT power per chip (host + network, :mod:`codesign.model.cluster.facility`);
    default:
    the host share alone."""
    a = np.zeros(layout.CLUSTER_LEN)
    a[layout.K_N_CHIPS] = cluster.n_chips
    a[layout.K_TOPOLOGY] = TOPOLOGIES.index(cluster.topology)
    a[layout.K_OVERSUB] = cluster.oversubscription
    a[layout.K_UP_LAT_S] = cluster.scaleup_latency_us * 1e-6
    a[layout.K_OUT_LAT_S] = cluster.scaleout_latency_us * 1e-6
    a[layout.K_PUE] = cluster.pue
    a[layout.K_HOST_W] = (cluster.host_power_w_per_chip if overhead_w_per_chip is None
                          else overhead_w_per_chip)
    a[layout.K_HOST_BPS] = cluster.host_link_gbs * 1e9
    a[layout.K_HOST_MEM_B] = cluster.host_memory_gb_per_chip * 1e9
    a[layout.K_HOST_DRAM_BPS] = cluster.host_memory_gbs_per_chip * 1e9
    return a


def model_array(model: ModelSpec) -> np.ndarray:
    """Pack a model's shape."""
    a = np.zeros(layout.MODEL_LEN)
    a[layout.M_LAYERS] = model.layers
    a[layout.M_HIDDEN] = model.hidden
    a[layout.M_HEADS] = model.heads
    a[layout.M_KV_HEADS] = model.kv_heads
    a[layout.M_FFN] = model.ffn_hidden
    a[layout.M_VOCAB] = model.vocab
    a[layout.M_GATED] = 1.0 if model.gated_mlp else 0.0
    a[layout.M_EXPERTS] = model.moe_experts
    a[layout.M_TOPK] = model.moe_topk
    a[layout.M_MOE_FFN] = model.moe_ffn_hidden
    a[layout.M_SHARED] = model.moe_shared_experts
    a[layout.M_DENSE_LAYERS] = model.moe_dense_layers
    a[layout.M_KV_LATENT] = model.kv_latent_dim
    a[layout.M_HEAD_DIM] = model.head_dim
    a[layout.M_Q_LORA] = model.q_lora_rank
    a[layout.M_KV_LORA] = model.kv_lora_rank
    a[layout.M_ROPE_DIM] = model.rope_head_dim
    a[layout.M_V_HEAD_DIM] = model.v_head_dim
    a[layout.M_WINDOW] = model.sliding_window
    a[layout.M_WINDOW_LAYERS] = model.sliding_window_layers if model.sliding_window else 0
    return a


def job_array(job: TrainJob) -> np.ndarray:
    """Pack a training job."""
    a = np.zeros(layout.JOB_LEN)
    a[layout.J_SEQ] = job.seq_len
    a[layout.J_GBATCH] = job.global_batch
    a[layout.J_PREC] = PRECISIONS.index(job.precision)
    a[layout.J_BYTES] = PRECISION_BYTES[job.precision]
    a[layout.J_ATTN] = ATTENTION_IMPLS.index(job.attention)
    a[layout.J_MOE_IMB] = job.moe_imbalance
    a[layout.J_GRAD_B] = GRAD_BYTES[job.precision]
    return a


def infer_job_array(job: InferJob) -> np.ndarray:
    """Pack an inference job (latency limits in seconds, 0 = none)."""
    kv = job.kv_precision or ("fp8" if job.precision == "fp4" else job.precision)
    a = np.zeros(layout.IJOB_LEN)
    a[layout.I_ISL] = job.input_len
    a[layout.I_OSL] = job.output_len
    a[layout.I_CONC] = job.concurrency or 0
    a[layout.I_PREC] = PRECISIONS.index(job.precision)
    a[layout.I_W_BYTES] = PRECISION_BYTES[job.precision]
    a[layout.I_KV_BYTES] = PRECISION_BYTES[kv]
    a[layout.I_TTFT_SLO] = job.ttft_slo_s or 0.0
    a[layout.I_ITL_SLO] = job.itl_slo_s or 0.0
    a[layout.I_MOE_IMB] = job.moe_imbalance
    return a


def fixed_array(mapping: Mapping | None) -> np.ndarray:
    """Pack the fixed fields of a mapping; -1 marks a field the search chooses."""
    a = np.full(layout.MAP_LEN, -1, dtype=np.int64)
    if mapping is None:
        return a
    for name in ("tp", "pp", "dp", "cp", "ep", "vpp", "micro_batch"):
        value = getattr(mapping, name)
        if value < 0:
            raise ValueError(f"`Mapping.{name} >= 0` must hold (0 = search), but got {value}")
    if mapping.zero is not None and mapping.zero not in (0, 1, 2, 3):
        raise ValueError(f"`Mapping.zero` must be 0, 1, 2 or 3, but got {mapping.zero}")
    for idx, value in (
        (layout.P_TP, mapping.tp),
        (layout.P_PP, mapping.pp),
        (layout.P_DP, mapping.dp),
        (layout.P_CP, mapping.cp),
        (layout.P_EP, mapping.ep),
        (layout.P_VPP, mapping.vpp),
        (layout.P_MB, mapping.micro_batch),
    ):
        if value:
            a[idx] = value
    if mapping.recompute is not None:
        a[layout.P_RECOMPUTE] = RECOMPUTE_MODES.index(mapping.recompute)
    if mapping.zero is not None:
        a[layout.P_ZERO] = mapping.zero
    if mapping.sequence_parallel is not None:
        a[layout.P_SP] = int(mapping.sequence_parallel)
    if mapping.ep_overlap is not None:
        a[layout.P_EPO] = int(mapping.ep_overlap)
    if mapping.hybrid_shard is not None:
        a[layout.P_HSDP] = int(mapping.hybrid_shard)
    if mapping.offload is not None:
        if mapping.offload not in OFFLOAD_MODES:
            raise ValueError(f"`Mapping.offload` must be one of {', '.join(OFFLOAD_MODES)}, "
                             f"but got {mapping.offload!r}")
        a[layout.P_OFFLOAD] = OFFLOAD_MODES.index(mapping.offload)
    return a


def mapping_from_array(a: np.ndarray) -> Mapping:
    """Unpack a mapping chosen by the kernel."""
    return Mapping(
        tp=int(a[layout.P_TP]),
        pp=int(a[layout.P_PP]),
        dp=int(a[layout.P_DP]),
        cp=int(a[layout.P_CP]),
        ep=int(a[layout.P_EP]),
        vpp=int(a[layout.P_VPP]),
        micro_batch=int(a[layout.P_MB]),
        recompute=RECOMPUTE_MODES[int(a[layout.P_RECOMPUTE])],
        zero=int(a[layout.P_ZERO]),
        sequence_parallel=bool(a[layout.P_SP]),
        ep_overlap=bool(a[layout.P_EPO]),
        hybrid_shard=bool(a[layout.P_HSDP]),
        offload=OFFLOAD_MODES[int(a[layout.P_OFFLOAD])],
    )


STATUS_REASONS = {
    layout.S_INVALID: "no valid parallel mapping (degrees must divide heads, layers, batch, chips)",
    layout.S_OOM: "out of memory: no mapping fits in HBM",
    layout.S_NO_BW: "a parallel group needs a network link with zero bandwidth",
    layout.S_NO_COMPUTE: "the chip has no matmul throughput at this precision",
    layout.S_BAD_INPUT: "invalid input (zero, negative or non-finite spec value)",
    layout.S_NO_CANDIDATE: "no mapping candidate to evaluate",
    layout.S_SLO: "no mapping meets the latency limits (TTFT / ITL)",
    layout.S_POWER: ("the workload would draw more than the chip's TDP (cooling limit), at "
                     "its lowest clock if it throttles"),
}
"""Human-readable reason for each kernel status code."""


def result_from_arrays(
    status: int, mp: np.ndarray, out: np.ndarray, counts: np.ndarray, n_chips: int
) -> Result:
    """Unpack a mapping-search result for a cluster of ``n_chips``; infeasible results carry
    zeros and a reason."""
    n_cand = int(counts.sum())
    n_feas = int(counts[layout.S_OK])
    feasible = status == layout.S_OK and all(math.isfinite(float(x)) for x in out)
    if not feasible:
        reason = STATUS_REASONS.get(status, f"status {status}")
        if status == layout.S_OK:
            reason = "non-finite model output"
        return Result(False, f"{reason} ({n_cand} candidates tried)", Mapping(), 0.0, 0.0, 0.0,
                      0.0, 0.0, 0.0, 0.0, 0.0, n_cand, n_feas)
    tps = float(out[layout.O_TOKENS_PER_S])
    return Result(
        feasible=True,
        reason="",
        mapping=mapping_from_array(mp),
        step_time_s=float(out[layout.O_STEP_S]),
        tokens_per_s=tps,
        tokens_per_s_per_chip=tps / n_chips,
        mfu=float(out[layout.O_MFU]),
        memory_gb_per_chip=float(out[layout.O_MEM_B]) / 1e9,
        chip_power_w=float(out[layout.O_CHIP_W]),
        cluster_power_w=float(out[layout.O_CLUSTER_W]),
        tokens_per_joule=float(out[layout.O_TOK_PER_J]),
        n_candidates=n_cand,
        n_feasible=n_feas,
        clock_fraction=float(out[layout.O_CLOCK]),
        breakdown_s=train_breakdown_s(out),
        memory_gb=train_memory_gb(out),
        host_memory_gb=float(out[layout.O_MEM_HOST]) / 1e9,
    )


def train_breakdown_s(out: np.ndarray) -> dict[str, float]:
    """Seconds of a training step by part from a kernel output (``O_*``): compute, the
    exposed communication (tp + cp + ep, with cp and ep also alone), the pipeline bubble and
    point-to-point sends, the exposed data-parallel communication (ZeRO-3 / FSDP gathers
    alone too), the optimizer step, the time host memory adds (``host_offload_exposed``: the
    copies compute does not hide, the host Adam step's excess); ``moe_compute`` and
    ``attention_compute`` are the parts
    of ``compute`` spent in MoE layers' router, permutation and experts and in the
    attention core."""
    return {
        "compute": float(out[layout.O_T_COMPUTE]),
        "tp_cp_ep_comm": float(out[layout.O_T_TP]),
        "cp_ring_exposed": float(out[layout.O_T_CP]),
        "ep_all_to_all_exposed": float(out[layout.O_T_EP]),
        "pipeline_bubble": float(out[layout.O_T_BUBBLE]),
        "pipeline_p2p": float(out[layout.O_T_PP]),
        "dp_comm_exposed": float(out[layout.O_T_DP]),
        "fsdp_gather_exposed": float(out[layout.O_T_FSDP]),
        "host_offload_exposed": float(out[layout.O_T_HOST]),
        "optimizer": float(out[layout.O_T_OPT]),
        "moe_compute": float(out[layout.O_T_MOE]),
        "attention_compute": float(out[layout.O_T_ATTN]),
    }


def train_memory_gb(out: np.ndarray) -> dict[str, float]:
    """Memory per chip by term, GB (:data:`codesign.model.specs.TRAIN_MEMORY_TERMS`), from a
    kernel output."""
    cols = (layout.O_MEM_WEIGHTS, layout.O_MEM_GRADS, layout.O_MEM_OPT, layout.O_MEM_ACT,
            layout.O_MEM_LOGITS, layout.O_MEM_BUFFER)
    return {k: float(out[c]) / 1e9 for k, c in zip(TRAIN_MEMORY_TERMS, cols, strict=True)}


def infer_result_from_arrays(
    status: int, mp: np.ndarray, out: np.ndarray, counts: np.ndarray, n_chips: int
) -> InferResult:
    """Unpack a serving-mapping search for a cluster of ``n_chips``."""
    n_cand = int(counts.sum())
    n_feas = int(counts[layout.S_OK])
    if status != layout.S_OK or not all(math.isfinite(float(x)) for x in out):
        reason = STATUS_REASONS.get(status, f"status {status}")
        if status == layout.S_OK:
            reason = "non-finite model output"
        return InferResult(False, f"{reason} ({n_cand} candidates tried)", Mapping(), 0.0, 0.0,
                           0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, n_cand, n_feas)
    tps = float(out[layout.IO_TPS])
    m = mapping_from_array(mp)
    return InferResult(
        feasible=True,
        reason="",
        mapping=Mapping(tp=m.tp, pp=m.pp, dp=m.dp, cp=1, ep=m.ep, vpp=1,
                        micro_batch=m.micro_batch, recompute=None, zero=None,
                        sequence_parallel=None, ep_overlap=None, hybrid_shard=None),
        tokens_per_s=tps,
        tokens_per_s_per_chip=tps / n_chips,
        ttft_s=float(out[layout.IO_TTFT]),
        itl_s=float(out[layout.IO_ITL]),
        prefill_s=float(out[layout.IO_T_PREFILL]),
        decode_step_s=float(out[layout.IO_T_DECODE]),
        memory_gb_per_chip=float(out[layout.IO_MEM_B]) / 1e9,
        chip_power_w=float(out[layout.IO_CHIP_W]),
        cluster_power_w=float(out[layout.IO_CLUSTER_W]),
        tokens_per_joule=float(out[layout.IO_TOK_PER_J]),
        decode_flops_per_byte=float(out[layout.IO_DECODE_INTENSITY]),
        n_candidates=n_cand,
        n_feasible=n_feas,
        clock_fraction=float(out[layout.IO_CLOCK]),
        memory_gb={k: float(out[c]) / 1e9 for k, c in zip(
            SERVE_MEMORY_TERMS, (layout.IO_MEM_WEIGHTS, layout.IO_MEM_KV, layout.IO_MEM_BUFFER),
            strict=True)},
    )

