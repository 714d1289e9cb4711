"""Measure GEMM and attention throughput on this machine's accelerator, in the columns of
codesign/catalog/microbench.csv, for scripts/fit_microbench.py (issue 12: "bf16 and fp8 GEMM
throughput against M, N, K including small-M grouped GEMMs, and attention forward/backward
against sequence length and head dim").

    python scripts/measure_microbench.py --out measured.csv [--quick] [--device cuda]

Needs PyTorch (the accelerator machine has it; the project does not depend on it). Each point
is the median of ``--repeats`` timed runs after ``--warmup`` untimed ones, timed with device
events (CUDA) or the wall clock (CPU, for a smoke test only: its rows say so and are not for
fitting). What is measured:

* ``gemm``: ``torch.matmul`` in bf16, and ``torch._scaled_mm`` in fp8 e4m3 with per-tensor
  scales and bf16 output, over M = 16 ... 16384 and the (N, K) of common layers.
* ``grouped_gemm``: ``torch.bmm`` over ``groups`` equal experts of ``m`` tokens each (the
  balanced case of a grouped GEMM), bf16, small m.
* ``attention``: ``scaled_dot_product_attention`` with the flash backend (the math backend on
  CPU), bf16, 16k tokens per call (batch = 16384 / seq) and 16 heads, head width 64 and 128,
  causal and not, forward and backward. FLOPs count the pairs the mask keeps (the
  FlashAttention benchmarks' convention): forward 4 b h s^2 d (half of it causal), backward
  2.5 x the forward.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

COLUMNS = ("source", "chip", "kernel", "precision", "m", "n", "k", "groups", "batch", "heads",
           "seq_len", "head_dim", "causal", "direction", "tflops", "peak_dense_tflops", "note")
"""The header of codesign/catalog/microbench.csv."""
GEMM_M = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
GEMM_NK = ((4096, 4096), (8192, 8192), (14336, 4096), (4096, 14336), (2112, 7168),
           (7168, 2048))
"""(N, K) of common layers: Llama 3 8B/70B projections and MLP, DeepSeek-V3's MLA down-
projection (N 2112, K 7168) and expert down-projection (N 7168, K 2048)."""
GROUPED = ((8, (4096, 14336)), (64, (2048, 7168)), (256, (2048, 7168)))
"""(groups, (N, K)): Mixtral 8x7B's experts; 64 and 256 DeepSeek-V3-width experts."""
GROUPED_M = (16, 32, 64, 128, 256, 512, 1024)
ATTN_SEQ = (512, 1024, 2048, 4096, 8192, 16384, 32768)
ATTN_HEAD_DIM = (64, 128)
ATTN_TOKENS = 16384
ATTN_HEADS = 16
QUICK_LIMIT = 3
"""``--quick`` keeps the first values of each sweep (a smoke test, not a table to fit)."""
DEVICE_CHIPS = (("GB200", "gb200"), ("B200", "b200"), ("H200", "h200"), ("H800", "h800"),
                ("H100", "h100-sxm"), ("A100", "a100-sxm-80gb"), ("MI355X", "mi355x"),
                ("MI325X", "mi325x"), ("MI300X", "mi300x"))
"""Device-name fragment -> catalog chip id, the first that matches (GB200 before B200, whose
name it contains); ``--chip`` overrides it."""


def gemm_flops(m: int, n: int, k: int, groups: int = 1) -> float:
    """FLOPs of ``groups`` (m x k) @ (k x n) products."""
    return 2.0 * m * n * k * groups


def attention_flops(batch: int, heads: int, seq: int, head_dim: int, causal: bool,
                    direction: str) -> float:
    """FLOPs of fused attention over the pairs the mask keeps: forward 4 b h s^2 d (half under
    a causal mask), backward 2.5 x the forward (FlashAttention-2, sec. 3.2)."""
    fwd = 4.0 * batch * heads * seq * seq * head_dim * (0.5 if causal else 1.0)
    return fwd * (2.5 if direction == "bwd" else 1.0)


def sweeps(quick: bool) -> Iterator[dict]:
    """Every point to measure, as the row fields that name it."""
    cut = (lambda xs: xs[:QUICK_LIMIT]) if quick else (lambda xs: xs)
    for precision in ("bf16", "fp8"):
        for n, k in cut(GEMM_NK):
            for m in cut(GEMM_M):
                yield {"kernel": "gemm", "precision": precision, "m": m, "n": n, "k": k}
    for groups, (n, k) in cut(GROUPED):
        for m in cut(GROUPED_M):
            yield {"kernel": "grouped_gemm", "precision": "bf16", "m": m, "n": n, "k": k,
                   "groups": groups}
    for hd in ATTN_HEAD_DIM:
        for seq in cut(ATTN_SEQ):
            for causal in (0, 1):
                for direction in ("fwd", "bwd"):
                    yield {"kernel": "attention", "precision": "bf16",
                           "batch": max(1, ATTN_TOKENS // seq), "heads": ATTN_HEADS,
                           "seq_len": seq, "head_dim": hd, "causal": causal,
                           "direction": direction}


def flops_of(point: dict) -> float:
    """The FLOPs one call of ``point`` does."""
    if point["kernel"] == "attention":
        return attention_flops(point["batch"], point["heads"], point["seq_len"],
                               point["head_dim"], bool(point["causal"]), point["direction"])
    return gemm_flops(point["m"], point["n"], point["k"], point.get("groups", 1))


def chip_of(device_name: str) -> str | None:
    """The catalog chip id of a device name, or None."""
    for fragment, chip in DEVICE_CHIPS:
        if fragment in device_name:
            return chip
    return None


def peak_tflops(chip: str | None, precision: str) -> float | None:
    """The chip's dense peak at ``precision`` from the catalog (TFLOP/s), or None."""
    if chip is None:
        return None
    from codesign.model.catalog import get_chip

    spec = get_chip(chip)
    return {"bf16": spec.tflops_bf16, "fp8": spec.tflops_fp8}.get(precision)


def row(point: dict, seconds: float, chip: str, peak: float | None, source: str,
        note: str) -> dict[str, str]:
    """One microbench.csv row for ``point`` timed at ``seconds`` per call."""
    out = dict.fromkeys(COLUMNS, "")
    out.update({k: str(v) for k, v in point.items()})
    out.update({"source": source, "chip": chip, "note": note,
                "tflops": f"{flops_of(point) / seconds / 1e12:.1f}",
                "peak_dense_tflops": "" if peak is None else f"{peak:g}"})
    return out


def _timer(torch, device: str, warmup: int, repeats: int) -> Callable[[Callable], float]:
    """A function that times a callable: median seconds of ``repeats`` runs."""
    def time_it(fn: Callable) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            if device == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)
    return time_it


def _call(torch, point: dict, device: str) -> Callable | None:
    """A callable running ``point`` once on ``device`` (None where it cannot run there)."""
    bf16 = torch.bfloat16
    if point["kernel"] == "gemm" and point["precision"] == "bf16":
        a = torch.randn(point["m"], point["k"], device=device, dtype=bf16)
        b = torch.randn(point["k"], point["n"], device=device, dtype=bf16)
        return lambda: torch.matmul(a, b)
    if point["kernel"] == "gemm":  # fp8 e4m3, per-tensor scales, bf16 out
        if device != "cuda" or not hasattr(torch, "_scaled_mm"):
            return None
        a = torch.randn(point["m"], point["k"], device=device).to(torch.float8_e4m3fn)
        b = torch.randn(point["n"], point["k"], device=device).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=bf16)
    if point["kernel"] == "grouped_gemm":
        g = point["groups"]
        a = torch.randn(g, point["m"], point["k"], device=device, dtype=bf16)
        b = torch.randn(g, point["k"], point["n"], device=device, dtype=bf16)
        return lambda: torch.bmm(a, b)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    shape = (point["batch"], point["heads"], point["seq_len"], point["head_dim"])
    need_grad = point["direction"] == "bwd"
    q, k, v = (torch.randn(shape, device=device, dtype=bf16, requires_grad=need_grad)
               for _ in range(3))
    backend = SDPBackend.FLASH_ATTENTION if device == "cuda" else SDPBackend.MATH
    causal = bool(point["causal"])

    def forward():
        with sdpa_kernel(backend):
            return sdpa(q, k, v, is_causal=causal)
    if not need_grad:
        return forward
    out = forward()
    grad = torch.randn_like(out)

    def backward():
        torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)
    return backward


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="CSV to write (microbench.csv columns)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--chip", default=None, help="catalog chip id (default: from the device)")
    ap.add_argument("--quick", action="store_true", help=f"first {QUICK_LIMIT} of each sweep")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("measure_microbench.py needs PyTorch (pip install torch)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA/ROCm device is visible to PyTorch", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    chip = args.chip or chip_of(name) or name
    today = datetime.date.today().isoformat()
    source = (f"measured: scripts/measure_microbench.py on {name}, torch {torch.__version__}, "
              f"{today}")
    note = (f"median of {args.repeats} runs after {args.warmup} warm-up"
            + ("; CPU smoke test, not for fitting" if args.device == "cpu" else ""))
    time_it = _timer(torch, args.device, args.warmup, args.repeats)
    out_rows, skipped = [], 0
    for point in sweeps(args.quick):
        fn = _call(torch, point, args.device)
        if fn is None:
            skipped += 1
            continue
        seconds = time_it(fn)
        if not (seconds > 0 and math.isfinite(seconds)):
            skipped += 1
            continue
        r = row(point, seconds, chip, peak_tflops(chip_of(name), point["precision"]), source,
                note)
        out_rows.append(r)
        print(f"{r['kernel']:12s} {r['precision']:4s} m{r['m']:>6s} n{r['n']:>6s} "
              f"k{r['k']:>6s} g{r['groups']:>4s} s{r['seq_len']:>6s} d{r['head_dim']:>4s} "
              f"c{r['causal']:>2s} {r['direction']:4s} {r['tflops']:>8s} TFLOP/s", flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    with Path(args.out).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(out_rows)
    print(f"{len(out_rows)} rows -> {args.out} ({skipped} points not runnable here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
