"""Efficiency of the chip + software stack: the few free parameters of the performance model.

Two parts, multiplied together for each chip (:func:`for_chip`):

* :class:`Silicon`, per chip generation (:data:`SILICON`, :data:`GENERATION_OF`): the best
  fraction of dense peak its matrix units reach in published microbenchmarks (the best GEMM
  shape of a brute-force search, fused attention on long sequences), and its smallest
  full-rate GEMM tile. These are chip data taken from codesign/catalog/microbench.csv (see
  MICROBENCH.md), not fitted to the LLM measurements.
* :class:`Stack`, the software stack, shared by every generation (:data:`STACK`): the share of
  those best rates that framework kernels of real layer shapes reach, HBM streaming and
  collective efficiency, the fixed time per kernel. Fitted by ``scripts/calibrate.py`` to the
  training rows of calibration.csv within the published ranges in the script's ``BOUNDS``;
  ``scripts/calibrate.py --leave-one-family-out`` refits it without each family to measure how
  it generalises.

Searched designs (no catalog id) use the "default" silicon, a Hopper-class chip (a mature
stack on current matrix units), so every design of a study, baselines included, runs on the
same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codesign.model.specs import ChipSpec


@dataclass(frozen=True)
class Efficiency:
    """Sustained fractions of peak and fixed overheads one chip runs at (what the kernels
    read; :func:`for_chip` builds it from :class:`Silicon` x :class:`Stack`)."""

    gemm: float = 0.764
    """Large bf16/fp16 GEMMs, fraction of dense peak."""
    gemm_lowp: float = 0.502
    """Large fp8/fp4 GEMMs, fraction of their dense peak."""
    attention: float = 0.40
    """Fused (flash) attention forward on long sequences with 128-wide heads, fraction of the
    16-bit peak."""
    memory: float = 0.75
    """Streaming kernels, fraction of HBM peak."""
    network: float = 0.90
    """Large collectives, fraction of link bandwidth."""
    kernel_s: float = 2e-6
    """Fixed time per kernel (launch + tail), s."""
    min_tile_m: float = 16.0
    """Smallest GEMM tile height (rows) the matrix units run at full rate."""
    elem_bytes: float = 12.0
    """Elementwise traffic per layer forward (norms, residuals, RoPE, activation functions),
    token-sized 16-bit reads and writes per hidden unit."""


@dataclass(frozen=True)
class Silicon:
    """What a generation's matrix units reach in published microbenchmarks (fractions of the
    dense peak at that precision) and their smallest full-rate GEMM tile."""

    gemm_best: float
    """bf16 GEMM, best shape."""
    gemm_lowp_best: float
    """fp8 GEMM, best shape."""
    attention_best: float
    """Fused attention forward, hd 128, the asymptote of long sequences."""
    min_tile_m: float
    """Rows of the smallest MMA: 16 for Ampere's ``mma.m16n8k16`` and CDNA's 16x16 MFMA, 64 for
    Hopper's ``wgmma.m64`` and Blackwell's smallest ``tcgen05.mma`` (CUDA PTX ISA), 128 for a
    TPU's 128x128 MXU (Jouppi et al. 2023)."""


@dataclass(frozen=True)
class Stack:
    """The software stack: shares of the silicon's best rates that framework kernels reach on
    real layer shapes, and the shared efficiencies (fitted, see the module doc)."""

    gemm_share: float = 0.95
    """Framework bf16 GEMMs / best-shape GEMM (range 0.60-1.00: real layer shapes, epilogues
    and framework overheads, never above the best shape)."""
    lowp_share: float = 0.71
    """Framework fp8 GEMMs / best-shape fp8 GEMM (range 0.55-1.00: fp8 recipes add casts and
    scaling, DeepGEMM's fine-grained scaling reaches 77-96 % of the best per-tensor fp8 shape,
    microbench.csv)."""
    attention_share: float = 0.63
    """Framework attention / best fused kernel (range 0.50-1.00: framework attention
    kernels vs FlashAttention-3/4, backward and varlen overheads)."""
    memory: float = 0.75
    """Streaming kernels, fraction of HBM peak (range 0.75-0.92: STREAM-like copies reach
    75-90 % of A100/H100 HBM peak)."""
    network: float = 0.90
    """Large collectives, fraction of link bandwidth (range 0.60-0.90: nccl-tests bus bandwidth
    vs link rate on NVLink and InfiniBand)."""
    kernel_s: float = 2e-6
    """Fixed time per kernel (launch + tail), s (range 2-10 us: CUDA launch latency is ~3-5 us,
    ~2 us with CUDA graphs)."""
    elem_bytes: float = 12.0
    """Elementwise traffic per layer forward, token-sized 16-bit reads and writes per hidden
    unit (range 12-48: 12 with Megatron's fused norm, bias-dropout-add and activation
    kernels; unfused eager kernels read and write each intermediate once more)."""


SILICON: dict[str, Silicon] = {
    # A100 SXM best-shape bf16 271.2 and 267.9 of 312 TFLOP/s (ml-engineering MAMF tables,
    # microbench.csv); FlashAttention-2 reaches "50-73% of the theoretical maximum FLOPs/s on
    # A100" (Dao 2023, abstract); no fp8
    "ampere": Silicon(gemm_best=0.86, gemm_lowp_best=0.86, attention_best=0.73, min_tile_m=16.0),
    # H100 SXM best-shape bf16 794.5 of 989.4 (0.80), fp8 1402.6 of 1978.9 (0.71); FA3
    # forward hd128, asymptote of the fitted sweep 622 TFLOP/s (0.63) (microbench.csv,
    # kernels/attention.py)
    "hopper": Silicon(gemm_best=0.80, gemm_lowp_best=0.71, attention_best=0.63, min_tile_m=64.0),
    # B200 / GB200 best-shape bf16 0.776 / 0.729, fp8 0.763 / 0.723 (mean); FA4 forward hd128,
    # asymptote of the fitted sweep 1402 of 2250 TFLOP/s (0.62; kernels/attention.py)
    "blackwell": Silicon(gemm_best=0.75, gemm_lowp_best=0.74, attention_best=0.62,
                         min_tile_m=64.0),
    # MI300X best-shape bf16 781.9 of 1307.4 (0.60; MI325X 0.60); no fp8 figure at full clock
    # and no attention figure: assumed the bf16 share, and Hopper's attention/GEMM ratio
    "cdna3": Silicon(gemm_best=0.60, gemm_lowp_best=0.60, attention_best=0.47, min_tile_m=16.0),
    # MI355X best-shape bf16 1565 of 2500 (0.63); the rest as CDNA3
    "cdna4": Silicon(gemm_best=0.63, gemm_lowp_best=0.63, attention_best=0.49, min_tile_m=16.0),
    # Gaudi 3 best-shape bf16 1288.8 of 1835 (0.70), fp8 1289.5 (0.70); attention as CDNA3's
    # ratio
    "gaudi": Silicon(gemm_best=0.70, gemm_lowp_best=0.70, attention_best=0.55, min_tile_m=16.0),
    # TPU v5e XLA bf16 8192^3 (0.92, jax Pallas matmul guide); TPUs list fp8 at the bf16 rate
    # (v5p, v6e) or twice it (v7): the same share assumed; no attention figure: Hopper's
    # attention/GEMM ratio assumed
    "tpu": Silicon(gemm_best=0.92, gemm_lowp_best=0.92, attention_best=0.72, min_tile_m=128.0),
    # designs and chips of no known generation: Hopper-class
    "default": Silicon(gemm_best=0.80, gemm_lowp_best=0.71, attention_best=0.63,
                       min_tile_m=16.0),
}
"""Published best-case rates per generation (see each entry's source)."""

GENERATION_OF = {
    "a100-sxm-80gb": "ampere", "a100-sxm-40gb": "ampere",
    "h100-sxm": "hopper", "h100-sxm-96gb-500w": "hopper", "h800": "hopper", "h200": "hopper",
    "b200": "blackwell", "gb200": "blackwell",
    "mi300x": "cdna3", "mi325x": "cdna3", "mi355x": "cdna4", "gaudi3": "gaudi",
    "tpu-v4": "tpu", "tpu-v5e": "tpu", "tpu-v5p": "tpu", "tpu-v6e": "tpu", "tpu-v7": "tpu",
}
"""Catalog chip id -> generation (chips.csv; the H800 and the 500 W H100 are GH100 silicon,
GB200 is B200 silicon, MI325X is MI300X silicon with HBM3e)."""

STACK = Stack(gemm_share=0.8467, lowp_share=0.7751, attention_share=0.5002, memory=0.8847,
              network=0.9, kernel_s=8.488e-06, elem_bytes=12.0)
"""The fitted software stack (scripts/calibrate.py: 8 neutral starts x 150 Nelder-Mead
iterations on the 141 throughput and latency rows; robust loss 0.1531). Three parameters sit
on an edge of their published range -- attention_share at 0.50, network at 0.90, elem_bytes
at 12 -- which says the model still misses mechanisms the fit leans on (the over-predicted
TPU MoE, MI300X serving and vLLM large-batch rows pull towards slower attention)."""


def compose(silicon: Silicon, stack: Stack) -> Efficiency:
    """The efficiencies of a chip of ``silicon`` under ``stack``."""
    return Efficiency(gemm=min(1.0, silicon.gemm_best * stack.gemm_share),
                      gemm_lowp=min(1.0, silicon.gemm_lowp_best * stack.lowp_share),
                      attention=min(1.0, silicon.attention_best * stack.attention_share),
                      memory=stack.memory, network=stack.network, kernel_s=stack.kernel_s,
                      min_tile_m=silicon.min_tile_m, elem_bytes=stack.elem_bytes)


DEFAULT = compose(SILICON["default"], STACK)
"""The efficiencies of searched designs (and of chips of no known generation)."""


def generation(chip: ChipSpec) -> str:
    """The generation of a chip (:data:`GENERATION_OF`), "default" for designs and chips of
    no known generation."""
    return GENERATION_OF.get(chip.id, "default") if chip.id else "default"


def for_chip(chip: ChipSpec, eff: Efficiency | Stack | None = None) -> Efficiency:
    """The efficiencies a chip runs at: ``eff`` itself if it is an :class:`Efficiency`, else
    its generation's :class:`Silicon` under the stack ``eff`` (default :data:`STACK`)."""
    if isinstance(eff, Efficiency):
        return eff
    return compose(SILICON[generation(chip)], STACK if eff is None else eff)

