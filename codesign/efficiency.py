"""Efficiency of the chip + software stack: the few free parameters of the performance model.

Each is a physically meaningful fraction (or time) that a datasheet does not give. The GEMM
and attention rates depend on the chip generation (its matrix units, and the maturity of the
kernels written for it), so they are chip data: one :class:`Efficiency` per generation in
:data:`TABLE`, picked by :func:`for_chip` (:data:`GENERATION_OF` names each catalog chip's
generation); the memory, network and kernel-launch figures are shared by every generation.
Searched designs (no catalog id) use :data:`DEFAULT`, fitted to every generation's rows at
once, so that every design of a study, baselines included, runs on the same software stack.

The values were fitted by ``scripts/calibrate.py`` to the training rows of calibration.csv,
each held inside the published range cited with its field (``BOUNDS`` in the script); the
ranges come from datasheets and published microbenchmarks (codesign/catalog/microbench.csv,
codesign/catalog/MICROBENCH.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codesign.specs import ChipSpec


@dataclass(frozen=True)
class Efficiency:
    """Sustained fractions of peak and fixed overheads (see each field)."""

    gemm: float = 0.764
    """Large bf16/fp16 GEMMs, fraction of dense peak (range 0.55-0.90: the best-shape bf16
    matmul reaches 80 % of dense peak on A100 and H100, 78 % on B200 and 51-60 % on MI300X in
    published sweeps, microbench.csv 'MAMF' rows; framework GEMMs of real layer shapes sit
    below that)."""
    gemm_lowp: float = 0.502
    """Large fp8/fp4 GEMMs, fraction of their dense peak (range 0.45-0.80: DeepGEMM fp8 on
    H800 reaches 55-76 % of the 1979 TFLOP/s peak for M >= 4096, B200 fp8 76 % best shape;
    microbench.csv)."""
    attention: float = 0.40
    """Fused (flash) attention forward, fraction of the 16-bit peak on long sequences with
    128-wide heads (range 0.35-0.75: FlashAttention-2 reaches ~70 % on A100 (Dao 2023),
    FlashAttention-3 60-63 % on H100 at 4k-16k tokens, FlashAttention-4 ~61 % on B200;
    microbench.csv)."""
    memory: float = 0.75
    """Streaming kernels, fraction of HBM peak (range 0.75-0.92: STREAM-like copies reach
    75-90 % of A100/H100 HBM peak)."""
    network: float = 0.90
    """Large collectives, fraction of link bandwidth (range 0.60-0.90: nccl-tests bus bandwidth
    vs link rate on NVLink and InfiniBand)."""
    kernel_s: float = 2e-6
    """Fixed time per kernel (launch + tail), s (range 2-10 us: CUDA launch latency is ~3-5 us,
    ~2 us with CUDA graphs)."""
    min_tile_m: float = 16.0
    """Smallest GEMM tile height (rows) the matrix units run at full rate: 16 for Ampere's
    ``mma.m16n8k16`` and CDNA's 16x16 MFMA, 64 for Hopper's ``wgmma.m64`` and Blackwell's
    smallest ``tcgen05.mma`` (CUDA PTX ISA), 128 for a TPU's 128x128 MXU (Jouppi et al. 2023)."""


DEFAULT = Efficiency()
"""The efficiencies of searched designs (and of chips of no known generation)."""

GENERATION_OF = {
    "a100-sxm-80gb": "ampere", "a100-sxm-40gb": "ampere",
    "h100-sxm": "hopper", "h100-sxm-96gb-500w": "hopper", "h800": "hopper", "h200": "hopper",
    "b200": "blackwell", "gb200": "blackwell",
    "mi300x": "cdna3", "mi325x": "cdna3",
    "tpu-v4": "tpu", "tpu-v5e": "tpu", "tpu-v5p": "tpu", "tpu-v6e": "tpu", "tpu-v7": "tpu",
}
"""Catalog chip id -> generation (chips.csv; the H800 and the 500 W H100 are GH100 silicon,
GB200 is B200 silicon, MI325X is MI300X silicon with HBM3e)."""

TABLE: dict[str, Efficiency] = {
    "ampere": replace(DEFAULT, min_tile_m=16.0),
    "hopper": replace(DEFAULT, min_tile_m=64.0),
    "blackwell": replace(DEFAULT, min_tile_m=64.0),
    "cdna3": replace(DEFAULT, min_tile_m=16.0),
    "tpu": replace(DEFAULT, min_tile_m=128.0),
}
"""Efficiencies by generation (fitted by scripts/calibrate.py; see the module doc)."""

EfficiencyTable = dict[str, Efficiency]


def generation(chip: ChipSpec) -> str:
    """The generation of a chip (:data:`GENERATION_OF`), "default" for designs and chips of
    no known generation."""
    return GENERATION_OF.get(chip.id, "default") if chip.id else "default"


def for_chip(chip: ChipSpec, eff: Efficiency | EfficiencyTable | None = None) -> Efficiency:
    """The efficiencies a chip runs at: ``eff`` itself if it is one :class:`Efficiency`,
    else its generation's entry of the table ``eff`` (default :data:`TABLE`), else
    :data:`DEFAULT`."""
    if isinstance(eff, Efficiency):
        return eff
    table = TABLE if eff is None else eff
    return table.get(generation(chip), table.get("default", DEFAULT))
