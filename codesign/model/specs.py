"""The data model: frozen dataclasses for chips, clusters, LLMs, jobs and parallel mappings.

Every quantity carries its unit in its name (``_gb``, ``_tbps``, ``_gbps``, ``_w`` ...).
Nothing here computes performance; :mod:`codesign.model.pack` turns these into the flat arrays the
numba kernels read, and :mod:`codesign.model.perf` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "fp4")
"""Matmul precisions the model knows (fp16 runs at the bf16 rate on every catalog chip)."""

HBM_GENERATIONS = ("none", "HBM2", "HBM2e", "HBM3", "HBM3e", "HBM4")

TOPOLOGIES = ("fat-tree", "rail-optimized", "torus-2d", "torus-3d", "dragonfly")
"""Network topologies. fat-tree (with oversubscription), rail-optimized and dragonfly shape the
scale-out network between scale-up domains; torus-2d/3d make the scale-up domain a torus of
direct links (TPU-style) instead of a switched fabric."""

RECOMPUTE_MODES = ("none", "selective", "full", "offload")
OFFLOAD_MODES = ("none", "optimizer", "weights", "optimizer+weights")
"""What a training mapping keeps in host memory (the index is the kernels' ``P_OFFLOAD``
bits, :mod:`codesign.model.kernels.offload`): nothing; the optimizer states with Adam on the
host CPU (ZeRO-Offload); the 16-bit weights and gradients, streamed a layer at a time
(ZeRO-Infinity, Calculon); both. The layer inputs of recompute ``"offload"`` are separate."""
"""Activation recomputation: none; selective (Korthikanti et al. 2022: the attention core
under unfused attention; under fused attention the cheap, memory-heavy tensors frameworks
recompute: norms, the MLP activation function and latent attention's up-projections, as
Megatron-Core's ``--recompute-modules layernorm moe_act mla_up_proj``); full (each layer
from its input); offload (full, with each layer's input kept in host memory, as MaxText's
host-offloading remat policies)."""

ATTENTION_IMPLS = ("flash", "unfused")
"""Attention kernels: fused (FlashAttention and successors, the default since 2023) or the
unfused QK^T / softmax / dropout / AV sequence of earlier frameworks (Megatron-LM 2021-22)."""


@dataclass(frozen=True)
class ChipSpec:
    """One accelerator package as sold (a GB200 row is one Blackwell GPU).

    FLOPS are dense peaks. ``scaleup_gbps`` is the per-chip *bidirectional* scale-up bandwidth
    in GB/s, as vendors quote it; ``scaleout_gbps`` is the per-chip NIC bandwidth in Gbit/s.
    ``None`` means unknown (only catalog rows have unknowns; designs are always complete), and
    ``0`` means "none / not supported" (``tflops_fp8 = 0``: no fp8; ``hbm_stacks = 0``: no HBM).
    ``id`` is the catalog slug (empty for a searched design). ``throttles``: a workload that
    would draw more than ``tdp_w`` runs at a lower clock that fits (DVFS under a power limit,
    how shipping chips behave: their published TDP is a limit); False: it is infeasible (the
    searched designs, whose TDP is their own sustained peak).
    """

    name: str
    process_nm: float | None
    compute_units: int | None
    clock_ghz: float | None
    tflops_fp32: float | None
    tflops_bf16: float | None
    tflops_fp8: float | None
    tflops_fp4: float | None
    sram_mb: float | None
    hbm_gen: str | None
    hbm_stacks: int | None
    hbm_gb: float | None
    hbm_tbps: float | None
    scaleup_gbps: float | None
    scaleup_links: int | None
    scaleup_domain: int | None
    scaleout_gbps: float | None
    tdp_w: float | None
    die_area_mm2: float | None = None
    n_compute_dies: int | None = 1
    price_usd: float | None = None
    vendor: str = ""
    year: int | None = None
    id: str = ""
    throttles: bool = True
    shared_ports: int = 0
    """On-die Ethernet ports that serve both scale-up and scale-out (Maia 100: 12 x 400GbE;
    Gaudi 3: 24 x 200GbE): the chip needs no NIC, and the cluster splits the ports between
    its two networks (``ClusterSpec.scaleout_ports``). 0: a separate NIC (``scaleout_gbps``)."""
    port_gbps: float = 0.0
    """Speed of one shared port, Gbit/s per direction."""

    def unknown_fields(self, names: tuple[str, ...]) -> list[str]:
        """The fields among ``names`` whose value is unknown (None)."""
        return [n for n in names if getattr(self, n) is None]

    def tflops(self, precision: str) -> float | None:
        """Dense peak TFLOP/s for a matmul precision (fp16 at the bf16 rate); None if unknown."""
        if precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {PRECISIONS}, but got {precision!r}")
        if precision == "fp16":
            return self.tflops_bf16
        return getattr(self, f"tflops_{precision}")


@dataclass(frozen=True)
class ClusterSpec:
    """How chips are put together.

    ``scaleup_domain`` of the chip says how many chips share the scale-up fabric; the cluster
    says how many chips there are and how the scale-out network is built.
    ``oversubscription`` is the fat-tree taper above the leaf (1.0 = non-blocking).
    ``host_power_w_per_chip`` is the host share per accelerator (CPU, DRAM, board; default an
    Arm Cobalt-100-class host for 4 accelerators, see ``codesign.model.tech.Facility``); NICs,
    switches and optics are added by the facility model.
    """

    n_chips: int
    topology: str = "fat-tree"
    oversubscription: float = 1.0
    scaleup_latency_us: float = 2.0
    scaleout_latency_us: float = 10.0
    pue: float = 1.2
    host_power_w_per_chip: float = 110.0
    power_budget_mw: float | None = None
    """Facility power budget, MW: when set, the cluster is as many chips as it powers at
    their TDP (``codesign.model.cluster.facility.chips_for_budget``) and ``n_chips`` is that
    count."""
    site_mw: float | None = None
    """With a power budget: the budget is split over sites of this many MW each (whole sites
    only; a job never spans two sites), e.g. 10 GW over 1 GW campuses."""
    job_chips: int | None = None
    """The chips one job uses: the cluster (each site) runs as many identical jobs as fit,
    the rest of its chips idle. None: one job per site (per cluster)."""
    scaleup_fabric: str | None = None
    """How the scale-up domain is wired: ``"switched"`` (NVLink-switch class, a per-chip
    cost), ``"ethernet"`` (Ethernet switches of the facility's radix, copper within a rack,
    optics beyond), ``"direct"`` (point-to-point all-to-all, no switch); None: by the
    topology (a torus wires its own links) and the chip (shared ports: Ethernet)."""
    chips_per_rack: int | None = None
    """Accelerators per rack: links inside it are copper, links leaving it optical
    (:mod:`codesign.model.cluster.build`; None: 8)."""
    scaleout_ports: int | None = None
    """Of a shared-port chip's ports, how many face scale-out (None: a quarter)."""
    ocs: bool = False
    """A torus whose racks are joined through optical circuit switches (TPU v4/v5p)."""
    cooling: str | None = None
    """How the racks are cooled: ``"air"`` or ``"liquid"`` (direct-to-chip), which bounds a
    rack's power and a chip's TDP (:mod:`codesign.model.cluster.cooling`); None: not stated,
    no limit."""
    host_cpu: str = ""
    """The host CPU's catalog id ("" = the generic host of ``host_power_w_per_chip``)."""
    host_usd_per_chip: float | None = None
    """The host's price per accelerator, USD (None: ``Prices.host_usd_per_chip``)."""
    host_link_gbs: float = 32.0
    """GB/s one accelerator moves to or from host memory, per direction (the lesser of its
    host link and its share of host DRAM bandwidth); default PCIe 4.0 x16 (31.5 GB/s), the
    figure the model used before hosts were a choice."""
    host_memory_gb_per_chip: float = 256.0
    """Host DRAM per accelerator, GB: the second memory tier offloading fills; default a DGX
    H100's 2 TB over 8 GPUs (docs.nvidia.com DGX BasePOD, as platforms.toml)."""
    host_memory_gbs_per_chip: float = 76.8
    """Host DRAM bandwidth per accelerator, GB/s (the host CPU's Adam step streams through
    it); default a DGX H100's 2 x 307.2 GB/s (8-channel DDR5-4800, hosts.csv) over 8 GPUs."""
    resilience: Any = None
    """How a training job survives failures: a
    :class:`codesign.model.reliability.Resilience` (checkpoint storage and interval, restart,
    hot spares per scale-up domain); None: its defaults."""


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer (dense or mixture-of-experts).

    ``ffn_hidden`` is the dense MLP inner width; ``gated_mlp`` selects the 3-matrix SwiGLU MLP.
    For MoE models, ``moe_experts`` routed experts of width ``moe_ffn_hidden`` with ``moe_topk``
    active per token, plus ``moe_shared_experts`` always-on experts; ``moe_dense_layers`` leading
    layers stay dense.

    Attention: ``heads`` query heads of width ``head_dim`` (0 = ``hidden / heads``; Qwen3 and
    gpt-oss use wider attention than ``hidden``), ``kv_heads`` key/value heads (grouped-query
    attention when fewer). Multi-head latent attention (DeepSeek-V2/V3) when ``kv_lora_rank``
    > 0: queries through a rank-``q_lora_rank`` bottleneck (0 = full-rank), keys and values
    through a shared rank-``kv_lora_rank`` latent, query/key heads of ``head_dim`` (the
    "nope" part) + ``rope_head_dim`` (decoupled RoPE, shared key) and value heads of
    ``v_head_dim`` (0 = ``head_dim``); the KV cache holds ``kv_latent_dim`` = ``kv_lora_rank +
    rope_head_dim`` per token and layer. ``sliding_window`` > 0: ``sliding_window_layers`` of
    the layers attend only to the last ``sliding_window`` tokens (gpt-oss: 18 of 36 layers,
    128 tokens).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn_hidden: int
    vocab: int
    gated_mlp: bool = True
    moe_experts: int = 0
    moe_topk: int = 0
    moe_ffn_hidden: int = 0
    moe_shared_experts: int = 0
    moe_dense_layers: int = 0
    tied_embeddings: bool = False
    kv_latent_dim: int = 0
    """Multi-head latent attention: the width of the compressed KV cached per token and layer
    (``kv_lora_rank + rope_head_dim``, 576 for DeepSeek-V3), shared by all heads; 0 =
    standard multi-head / grouped-query attention (``2 kv_heads head_dim``). Given alone (the
    form before ``kv_lora_rank`` existed) it is the whole latent (``kv_lora_rank``)."""
    head_dim: int = 0
    """Width of one query/key head (the non-RoPE part under MLA); 0 = ``hidden // heads``."""
    q_lora_rank: int = 0
    """MLA query bottleneck rank (0 = full-rank query projection)."""
    kv_lora_rank: int = 0
    """MLA key/value latent rank (0 = not MLA unless ``kv_latent_dim`` is given)."""
    rope_head_dim: int = 0
    """MLA decoupled-RoPE width per query head (and of the one shared RoPE key)."""
    v_head_dim: int = 0
    """Width of one value head; 0 = ``head_dim``."""
    sliding_window: int = 0
    """Tokens a local-attention layer attends to (0 = every layer attends to the whole
    context)."""
    sliding_window_layers: int = 0
    """Layers that use ``sliding_window`` (the others attend to the whole context)."""

    def __post_init__(self) -> None:
        if self.head_dim <= 0:
            object.__setattr__(self, "head_dim", self.hidden // max(self.heads, 1))
        if self.v_head_dim <= 0:
            object.__setattr__(self, "v_head_dim", self.head_dim)
        if self.kv_lora_rank > 0:
            latent = self.kv_lora_rank + self.rope_head_dim
            if self.kv_latent_dim not in (0, latent):
                raise ValueError(
                    "`kv_latent_dim == kv_lora_rank + rope_head_dim` must hold, but got "
                    f"(kv_latent_dim={self.kv_latent_dim}, kv_lora_rank={self.kv_lora_rank}, "
                    f"rope_head_dim={self.rope_head_dim})")
            object.__setattr__(self, "kv_latent_dim", latent)
        elif self.kv_latent_dim > 0:
            object.__setattr__(self, "kv_lora_rank",
                               max(1, self.kv_latent_dim - self.rope_head_dim))
        if self.sliding_window_layers > self.layers:
            raise ValueError("`sliding_window_layers <= layers` must hold, but got "
                             f"(sliding_window_layers={self.sliding_window_layers}, "
                             f"layers={self.layers})")

    @property
    def is_moe(self) -> bool:
        """True when the model has routed experts."""
        return self.moe_experts > 0

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def qk_head_dim(self) -> int:
        """Width of one query/key head in the score product (RoPE part included under MLA)."""
        return self.head_dim + (self.rope_head_dim if self.is_mla else 0)

    def attention_params_per_layer(self) -> int:
        """Q, K, V and output projection weights of one layer (biases and norms ignored)."""
        h, n = self.hidden, self.heads
        if self.is_mla:
            q_in = self.q_lora_rank if self.q_lora_rank > 0 else h
            q = (h * self.q_lora_rank if self.q_lora_rank > 0 else 0) + q_in * n * self.qk_head_dim
            kv = (h * (self.kv_lora_rank + self.rope_head_dim)
                  + self.kv_lora_rank * n * (self.head_dim + self.v_head_dim))
            return q + kv + n * self.v_head_dim * h
        q = h * n * self.head_dim
        kv = h * self.kv_heads * (self.head_dim + self.v_head_dim)
        return q + kv + n * self.v_head_dim * h

    def mlp_params(self, width: int) -> int:
        """Weights of one MLP (or expert) of inner width ``width``."""
        return (3 if self.gated_mlp else 2) * self.hidden * width

    def _params(self, routed_experts: int) -> int:
        """Weights with ``routed_experts`` routed experts per MoE layer (plus shared ones)."""
        n_moe = self.layers - self.moe_dense_layers if self.is_moe else 0
        n_dense = self.layers - n_moe
        per_moe = self.mlp_params(self.moe_ffn_hidden) * (routed_experts + self.moe_shared_experts)
        router = self.hidden * self.moe_experts if self.is_moe else 0
        emb = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return (
            self.layers * self.attention_params_per_layer()
            + n_dense * self.mlp_params(self.ffn_hidden)
            + n_moe * (per_moe + router)
            + emb
        )

    def params_total(self) -> int:
        """All weights, embeddings included (untied output layer unless ``tied_embeddings``)."""
        return self._params(self.moe_experts)

    def params_active(self) -> int:
        """Weights a single token touches (top-k routed + shared experts for MoE)."""
        return self._params(self.moe_topk)


@dataclass(frozen=True)
class TrainJob:
    """One training run: a model, sequence length, global batch (sequences), matmul precision
    and attention implementation (one of :data:`ATTENTION_IMPLS`)."""

    model: ModelSpec
    seq_len: int
    global_batch: int
    precision: str = "bf16"
    attention: str = "flash"
    train_tokens: float | None = None
    """Tokens of the whole training run (for its cost and energy); None = unknown."""
    moe_imbalance: float = 1.0
    """MoE routing imbalance: tokens of the busiest expert over the mean (>= 1; an expert
    parallel group waits for its busiest rank). 1.0 = perfectly balanced."""

    def tokens_per_step(self) -> int:
        """Tokens processed per optimizer step."""
        return self.seq_len * self.global_batch


@dataclass(frozen=True)
class InferJob:
    """Serving a model: requests of ``input_len`` prompt tokens and ``output_len`` generated
    tokens (a mean for variable-length traffic), ``concurrency`` requests in flight for the
    whole system (None: as many as fit, the max-throughput setting), weights and matmuls in
    ``precision``, KV cache in ``kv_precision`` (default: ``precision``, at least fp8),
    optional latency limits: time to first token ``ttft_slo_s`` and inter-token latency
    ``itl_slo_s`` (seconds), and the MoE routing imbalance (busiest expert / mean, >= 1)."""

    model: ModelSpec
    input_len: int
    output_len: float
    concurrency: int | None = None
    precision: str = "bf16"
    kv_precision: str | None = None
    ttft_slo_s: float | None = None
    itl_slo_s: float | None = None
    moe_imbalance: float = 1.0


@dataclass(frozen=True)
class Mapping:
    """A parallel layout. ``0`` in any integer field (or ``None``) means "search this field".

    ``recompute`` is one of :data:`RECOMPUTE_MODES`; ``zero`` is the optimizer-state sharding
    stage (0-3). ``vpp`` is the number of interleaved virtual stages per pipeline rank.
    """

    tp: int = 0
    pp: int = 0
    dp: int = 0
    cp: int = 0
    ep: int = 0
    vpp: int = 0
    micro_batch: int = 0
    recompute: str | None = None
    zero: int | None = None
    sequence_parallel: bool | None = None
    ep_overlap: bool | None = None
    """The expert-parallel all-to-all runs under another micro-batch's compute (DeepSeek's
    DualPipe, Megatron-Core's ``--overlap-moe-expert-parallel-comm``); searched when None."""
    hybrid_shard: bool | None = None
    """ZeRO-3 shards within the scale-up domain and replicates across domains (PyTorch FSDP's
    HYBRID_SHARD, MaxText's multi-slice data parallelism); searched when None."""
    offload: str | None = None
    """Model states kept in host memory, one of :data:`OFFLOAD_MODES`; searched when None
    (only for mappings HBM does not hold without it)."""

    def as_dict(self) -> dict[str, object]:
        """Plain dict with the contract keys of ``codesign evaluate --json``."""
        return {
            "tp": self.tp,
            "pp": self.pp,
            "dp": self.dp,
            "cp": self.cp,
            "ep": self.ep,
            "vpp": self.vpp,
            "micro_batch": self.micro_batch,
            "recompute": self.recompute,
            "zero": self.zero,
            "sequence_parallel": self.sequence_parallel,
            "ep_overlap": self.ep_overlap,
            "hybrid_shard": self.hybrid_shard,
            "offload": self.offload,
        }


@dataclass(frozen=True)
class InferResult:
    """What the evaluator predicts for serving: the best replica mapping (``mapping.tp/pp/ep``;
    ``mapping.dp`` = replicas, ``mapping.micro_batch`` = sequences decoded together per
    replica), output tokens/s of the whole system, latencies in seconds, memory and power.
    Infeasible results carry zeros and a reason."""

    feasible: bool
    reason: str
    mapping: Mapping
    tokens_per_s: float
    tokens_per_s_per_chip: float
    ttft_s: float
    itl_s: float
    prefill_s: float
    decode_step_s: float
    memory_gb_per_chip: float
    chip_power_w: float
    cluster_power_w: float
    tokens_per_joule: float
    decode_flops_per_byte: float
    n_candidates: int
    n_feasible: int
    power_w: dict[str, float] = field(default_factory=dict)
    """``chip_power_w`` by part, W (see :data:`POWER_PARTS`)."""
    clock_fraction: float = 1.0
    """Clock the chip sustains / its peak clock: below 1 when it throttles to its TDP."""
    memory_gb: dict[str, float] = field(default_factory=dict)
    """``memory_gb_per_chip`` by term, GB (see :data:`SERVE_MEMORY_TERMS`)."""


TRAIN_MEMORY_TERMS = ("weights", "gradients", "optimizer_states", "activations", "logits",
                      "buffers")
"""Terms of a training result's ``memory_gb`` (they sum to ``memory_gb_per_chip``): the
16-bit weights, the gradients (fp32 main gradients in bf16 training), the fp32 master weights
and Adam moments, each sharded by the ZeRO stage; the activations of the micro-batches in
flight on the first pipeline stage (with the working set of one recomputed layer); the
output layer's logits of one micro-batch; framework workspace, communication buffers and
ZeRO-3's gathered layers (:mod:`codesign.model.kernels.memory`)."""

SERVE_MEMORY_TERMS = ("weights", "kv_cache", "buffers")
"""Terms of a serving result's ``memory_gb``."""


POWER_PARTS = ("arithmetic", "sram_operands", "hbm", "links", "clocks_control", "leakage")
"""Parts of a chip's power in ``Result.power_w`` (they sum to ``chip_power_w``): the MAC
arithmetic; the operand traffic from SRAM and register files into the MAC arrays; HBM
traffic; link traffic; clocks and control while kernels run; leakage
(:mod:`codesign.model.chip.power`)."""


def mapping_short(m: dict[str, Any] | None) -> str:
    """One-line form of a mapping dict (:meth:`Mapping.as_dict`):
    ``tp8 pp35 dp1 cp1 vpp3 mb1 full z0`` for training, ``tp2 pp1 replicas4 batch64`` for
    serving (``ep`` shown when > 1, ``+overlap`` when its all-to-all is overlapped); "" for
    None."""
    if not m:
        return ""
    ep = f" ep{m['ep']}" if (m.get("ep") or 1) > 1 else ""
    if m.get("ep_overlap"):
        ep += "+overlap"
    hs = " hsdp" if m.get("hybrid_shard") else ""
    if m.get("recompute") is None:  # a serving mapping: replicas and batch per replica
        return f"tp{m['tp']} pp{m['pp']}{ep} replicas{m['dp']} batch{m['micro_batch']}"
    return (f"tp{m['tp']} pp{m['pp']} dp{m['dp']} cp{m['cp']}{ep} vpp{m['vpp']} "
            f"mb{m['micro_batch']} {m['recompute']} z{m['zero']}{hs}")


@dataclass(frozen=True)
class Result:
    """What the evaluator predicts for one (chip, cluster, job) with its best mapping.

    Times in seconds, powers in watts, energy per token in tokens per joule. ``feasible`` is
    False with a human-readable ``reason`` when no mapping fits; the numeric fields are then 0.
    """

    feasible: bool
    reason: str
    mapping: Mapping
    step_time_s: float
    tokens_per_s: float
    tokens_per_s_per_chip: float
    mfu: float
    memory_gb_per_chip: float
    chip_power_w: float
    cluster_power_w: float
    tokens_per_joule: float
    n_candidates: int
    n_feasible: int
    breakdown_s: dict[str, float] = field(default_factory=dict)
    power_w: dict[str, float] = field(default_factory=dict)
    """``chip_power_w`` by part, W (see :data:`POWER_PARTS`)."""
    clock_fraction: float = 1.0
    """Clock the chip sustains / its peak clock: below 1 when it throttles to its TDP."""
    memory_gb: dict[str, float] = field(default_factory=dict)
    """``memory_gb_per_chip`` by term, GB (see :data:`TRAIN_MEMORY_TERMS`); for a result
    that is out of memory, the terms of the fastest mapping if memory were no limit."""
    host_memory_gb: float = 0.0
    """Host memory the mapping fills per chip, GB (offloaded states and layer inputs; not
    part of ``memory_gb_per_chip``, which is HBM)."""
    n_ruled_out: int = 0
    """Mappings the search's exact bounds ruled out without evaluating them (with
    ``n_candidates``, every mapping of the space is decided); counted only when asked
    (``evaluate(..., count_ruled_out=True)``), else 0."""
