"""Efficiency of the chip + software stack: the few free parameters of the performance model.

Each is a physically meaningful fraction (or time) that a datasheet does not give. The values
below were fitted by ``scripts/calibrate.py`` against the 63 training rows of calibration.csv
(Megatron-LM 2021-22, NeMo 24.07 and MosaicML runs on A100 and H100), each held inside the
published range cited with it. Fit result: robust mean |log error| 0.160, median absolute error
8.3 %, KOR22 iteration times 3.0 % mean absolute error. Several parameters end on or near a
bound of their range (attention, memory, low-precision GEMM and kernel time at the low end,
network at the high end): the rows that pull them (MosaicML's 2023 H100 runs at long
sequence lengths, DeepSpeed ZeRO-3 at 1.5k-2.2k GPUs) ask for effects these knobs do not
represent, and the bounds keep the fit physical rather than follow them. A chip may override
them (see :func:`codesign.pack.chip_array`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Efficiency:
    """Sustained fractions of peak and fixed overheads (see each field)."""

    gemm: float = 0.764
    """Large bf16/fp16 GEMMs, fraction of dense peak (range 0.65-0.90: cuBLAS reaches roughly
    65-75 % of H100 SXM and 80-90 % of A100 dense peak on large GEMMs)."""
    gemm_lowp: float = 0.502
    """Large fp8/fp4 GEMMs, fraction of their dense peak (range 0.50-0.80: H100 fp8 GEMMs reach
    about 55-70 % of the 1979 TFLOP/s peak at 700 W, clock throttling and scaling overheads)."""
    attention: float = 0.40
    """Fused (flash) attention, fraction of the 16-bit peak (range 0.40-0.75: FlashAttention-2,
    Dao 2023, 50-73 % forward on A100 and ~35-50 % in early H100 ports; FlashAttention-3 ~75 %
    on H100)."""
    memory: float = 0.75
    """Streaming kernels, fraction of HBM peak (range 0.75-0.92: STREAM-like copies reach
    75-90 % of A100/H100 HBM peak)."""
    network: float = 0.90
    """Large collectives, fraction of link bandwidth (range 0.60-0.90: nccl-tests bus bandwidth
    vs link rate on NVLink and InfiniBand)."""
    kernel_s: float = 2e-6
    """Fixed time per kernel (launch + tail), s (range 2-10 us: CUDA launch latency is ~3-5 us,
    ~2 us with CUDA graphs)."""


DEFAULT = Efficiency()
"""The calibrated defaults every chip uses unless it says otherwise."""
