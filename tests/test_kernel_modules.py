"""The mechanism kernels (codesign.model.kernels.{common, gemm, attention, collectives, moe,
pipeline, memory, dvfs, layer, offload}): every numba function against its pure-Python
``.py_func`` and the model each module's docstring states.

QuantEcon style: each jitted function runs next to its ``.py_func`` on seeded random inputs
and on edge inputs, and the two must agree (results and the arrays they fill). A registry
names an input generator for every ``@njit`` function of these modules, and a contract test
fails when a kernel is added without one. On top of that, the documented properties: closed
forms (Korthikanti et al. 2022 Table 2, ring and all-to-all costs, the ZeRO memory table),
orderings, brute-force references (tile heights, key pairs, pipeline stage splits) and the fit
to the published microbenchmarks in ``codesign/catalog/microbench.csv``.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import math
from importlib import resources

import kernel_helpers as kh
import numpy as np
import pytest

from codesign.model import pack
from codesign.model.catalog import get_chip, get_model, model_ids
from codesign.model.kernels import (
    attention,
    collectives,
    common,
    dvfs,
    gemm,
    layer,
    memory,
    moe,
    offload,
    pipeline,
)
from codesign.model.kernels import layout as L
from codesign.model.specs import PRECISIONS, ClusterSpec, TrainJob

RTOL = kh.RTOL
call_both = kh.call_both
MODULES = (common, gemm, attention, collectives, moe, pipeline, memory, dvfs, layer, offload)
PACKABLE_CHIPS, TINY = kh.PACKABLE_CHIPS, kh.TINY
N_RANDOM = 200


# ---- random inputs -----------------------------------------------------------------------
def _chip(rng: np.random.Generator) -> np.ndarray:
    """A packed catalog chip (NIC 400 Gb/s) with its speeds perturbed."""
    a = pack.chip_array(get_chip(str(rng.choice(PACKABLE_CHIPS))), scaleout_gbps=400.0)
    for i in (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_HBM_BPS, L.C_UP_BPS,
              L.C_OUT_BPS, L.C_SRAM_B, L.C_UNITS, L.C_CLOCK_HZ):
        a[i] *= rng.lognormal(0.0, 0.3)
    a[L.C_UNITS] = max(1.0, round(a[L.C_UNITS]))
    return a


def _cluster(rng: np.random.Generator) -> np.ndarray:
    return pack.cluster_array(ClusterSpec(
        n_chips=int(rng.integers(1, 4096)),
        topology=str(rng.choice(["fat-tree", "rail-optimized", "torus-2d", "torus-3d",
                                 "dragonfly"])),
        oversubscription=float(rng.choice([1.0, 2.0, 3.0])),
        scaleup_latency_us=float(rng.uniform(0.5, 5.0)),
        scaleout_latency_us=float(rng.uniform(2.0, 20.0)),
    ))


def _model_spec(rng: np.random.Generator):
    name = str(rng.choice([*model_ids(), "tiny"]))
    return TINY if name == "tiny" else get_model(name)


def _model(rng: np.random.Generator) -> np.ndarray:
    return pack.model_array(_model_spec(rng))


def _pos(rng, scale: float, sigma: float = 1.0) -> float:
    return float(scale * rng.lognormal(0.0, sigma))


def _gemm_args(rng):
    """(m, k, n, peak, eff, hbm, mem_eff, sram, el_b, units, tile, min_tm)."""
    m, k, n = (float(x) for x in rng.integers(1, 40000, size=3))
    if rng.random() < 0.3:
        m = float(rng.uniform(0.1, 64.0))  # fractional mean tokens per expert
    return (m, k, n, _pos(rng, 989e12), float(rng.uniform(0.3, 1.0)), _pos(rng, 3.35e12),
            float(rng.uniform(0.5, 1.0)), _pos(rng, 50e6, 2.0),
            float(rng.choice([0.5, 1.0, 2.0, 4.0])),
            float(rng.choice([0.0, 1.0, 108.0, 132.0, 148.0, 1024.0])),
            float(rng.choice([0.0, 100.0, 16384.0, 32768.0, 65536.0])),
            float(rng.choice([0.0, 16.0, 64.0, 128.0])))


def _moe_args(rng):
    experts = float(rng.choice([4, 8, 64, 128, 256]))
    ep = float(rng.choice([e for e in (1, 2, 4, 8, 16) if experts % e == 0]))
    tp = float(rng.choice([1, 2, 4, 8]))
    tok = float(rng.choice([512, 2048, 8192, 32768]))
    g = _gemm_args(rng)
    return (tok, tok / float(rng.choice([1.0, tp])), float(rng.choice([512, 4096, 7168])),
            experts, float(rng.choice([1, 2, 8])), float(rng.choice([256, 1408, 2048])),
            float(rng.choice([0, 1, 2])), float(rng.choice([1.0, 2.0])), ep, tp,
            float(rng.uniform(1.0, 2.0)), *g[3:8], g[8], max(2.0, g[8]), *g[9:12])


def _collective_args(rng):
    """(volume, n, stride, domain, up_bps, out_bps, up_lat, out_lat)."""
    return (_pos(rng, 1e8, 2.0), int(rng.integers(1, 300)), int(rng.choice([1, 2, 3, 4, 8, 16])),
            float(rng.choice([1, 2, 4, 8, 16, 64, 72, 256])), _pos(rng, 4.5e11),
            _pos(rng, 5e10), _pos(rng, 2e-6), _pos(rng, 1e-5))


def _act_args(rng):
    """layer_activation_bytes' arguments."""
    h = float(rng.choice([512, 4096, 7168, 12288]))
    tp = float(rng.choice([1, 2, 4, 8]))
    return (float(rng.choice([1024, 4096, 32768])), h, h * rng.uniform(0.5, 2.0),
            h * rng.uniform(0.1, 1.0), h * rng.uniform(0.1, 1.0), h * rng.uniform(0.5, 1.5),
            float(rng.choice([0.0, 0.0, 2112.0])), h * rng.uniform(1.0, 8.0),
            bool(rng.random() < 0.5), tp, float(rng.choice([1.0, tp])),
            bool(rng.random() < 0.3), float(rng.choice([0.0, 100.0, 3000.0])),
            bool(rng.random() < 0.5))


def _serving_args(rng):
    m = _model(rng)
    tp = float(rng.choice([1, 2, 4, 8, 16]))
    dqk, dv, nkv, kv_lora = attention.head_dims(m)
    split, whole = attention.projection_params(m)
    return (m[L.M_LAYERS], m[L.M_HIDDEN], m[L.M_HEADS], nkv, dqk, dqk, dv, m[L.M_FFN],
            m[L.M_GATED] > 0.5, m[L.M_EXPERTS], m[L.M_DENSE_LAYERS], m[L.M_MOE_FFN],
            m[L.M_SHARED], m[L.M_VOCAB], kv_lora + m[L.M_ROPE_DIM] if kv_lora > 0 else 0.0,
            split + whole * tp, tp, float(rng.choice([1, 2, 4])),
            float(rng.choice([1, 2, 8])) if m[L.M_EXPERTS] > 0 else 1.0,
            float(rng.integers(1, 200000)), float(rng.choice([0.5, 1.0, 2.0])),
            float(rng.choice([1.0, 2.0])))


def _next_clock_args(rng):
    chip = _chip(rng)
    chip[L.C_TDP_W] = float(rng.uniform(100, 1500))
    lo = float(rng.uniform(0.0, 0.9))
    state = np.array([rng.choice([0.0, lo]), float(rng.uniform(lo, 1.0)),
                      float(rng.choice([dvfs.CLOCK_FLOOR, lo, 1.0])),
                      float(rng.integers(-1, dvfs.CLOCK_BISECTIONS + 1))])
    return (chip, float(rng.uniform(50, 2000)), np.zeros_like(chip), state,
            np.zeros(L.OUT_LEN), L.O_CLOCK)


def _bad_platform(rng):
    chip, cluster = _chip(rng), _cluster(rng)
    for _ in range(int(rng.integers(0, 3))):
        if rng.random() < 0.5:
            chip[int(rng.integers(L.CHIP_LEN))] = float(rng.choice([np.nan, 0.0, -1.0, 1.5]))
        else:
            cluster[int(rng.integers(L.CLUSTER_LEN))] = float(rng.choice([np.nan, 0.5, -1.0]))
    return chip, cluster, int(rng.integers(0, 5))


def _choices_args(rng):
    pow2 = bool(rng.random() < 0.5)
    lo = int(rng.integers(1 if pow2 else 0, 3))  # a power-of-2 range starts at 1 or more
    return int(rng.choice([-1, -1, 0, 3])), lo, int(rng.integers(0, 70)), pow2


def _layer_args(rng):
    """(chip, model, job, tp, cp, ep, b, sp, rc, peak, eff_gemm, peak_attn, act_b, fp8)."""
    spec = _model_spec(rng)
    chip, model = _chip(rng), pack.model_array(spec)
    job = pack.job_array(TrainJob(spec, seq_len=int(rng.choice([1024, 4096, 32768])),
                                  global_batch=8, precision=str(rng.choice(PRECISIONS)),
                                  attention=str(rng.choice(["flash", "unfused"]))))
    prec = int(job[L.J_PREC])
    peak, eff = common.matmul_peak(chip, prec)
    peak_attn = chip[L.C_FLOPS_FP32] if prec == 0 else chip[L.C_FLOPS_BF16]
    tp = int(rng.choice([1, 2, 4, 8]))
    ep = int(rng.choice([1, 2, 4])) if model[L.M_EXPERTS] > 0 else 1
    return (chip, model, job, tp, int(rng.choice([1, 2, 4])), ep, int(rng.choice([1, 2])),
            int(rng.integers(0, 2)), int(rng.integers(0, 4)), peak, eff, peak_attn,
            max(job[L.J_BYTES], 2.0), bool(job[L.J_BYTES] < 2.0))


def _train_act_args(rng):
    """(model, tp, sp, rc, unfused, sb, seq, latent_w, moe_act, act_b, fp8, in_flight, n_d,
    n_m)."""
    model = _model(rng)
    return (model, int(rng.choice([1, 2, 4, 8])), int(rng.integers(0, 2)),
            int(rng.integers(0, 4)), bool(rng.integers(0, 2)), _pos(rng, 4096.0),
            float(rng.choice([2048.0, 8192.0])), float(rng.choice([0.0, 576.0])),
            _pos(rng, 1e4), float(rng.choice([2.0, 4.0])), bool(rng.integers(0, 2)),
            float(rng.uniform(1.0, 16.0)), float(rng.integers(0, 8)), float(rng.integers(0, 8)))


def _train_memory_args(rng):
    """(model, job, tp, cp, pp, vpp, b, sp, rc, zero, off, m, dpc, p_nonexp, p_exp, sh, sh_e,
    big_p, n_d, n_m, out)."""
    spec = _model_spec(rng)
    job = pack.job_array(TrainJob(spec, seq_len=int(rng.choice([1024, 4096, 32768])),
                                  global_batch=8, precision=str(rng.choice(PRECISIONS)),
                                  attention=str(rng.choice(["flash", "unfused"]))))
    zero = int(rng.integers(0, 4))
    off = int(rng.integers(0, 4))
    return (pack.model_array(spec), job, int(rng.choice([1, 2, 8])), int(rng.choice([1, 2])),
            int(rng.choice([1, 4])), int(rng.choice([1, 2])), int(rng.choice([1, 4])),
            int(rng.integers(0, 2)), int(rng.integers(0, 4)), zero, off,
            int(rng.integers(1, 32)), float(rng.choice([1, 8, 64])), _pos(rng, 1e9, 2.0),
            float(rng.choice([0.0, 1e10])), float(rng.choice([1, 8])),
            float(rng.choice([1, 4])), _pos(rng, 1e8), float(rng.integers(0, 8)),
            float(rng.integers(0, 8)), np.zeros(L.OUT_LEN))


def _stage_args(layers: int, rng):
    pp = int(rng.integers(1, layers + 1))
    return float(layers), pp, float(rng.integers(0, layers + 1))


def _stage_time_args(rng):
    """(mix, pp, f_d, f_m, b_d, b_m, logits_f, logits_b, rs_mb)."""
    layers, pp, dense = _stage_args(int(rng.integers(1, 128)), rng)
    mix = pipeline.stage_layers(layers, pp, dense)
    return (mix, pp, *(_pos(rng, 1e-3) for _ in range(6)),
            float(rng.choice([0.0, _pos(rng, 1e-2)])))


RANDOM_INPUTS = {
    # common
    "matmul_peak": lambda r: (_chip(r), int(r.integers(0, 5))),
    "energy_per_flop": lambda r: (_chip(r), int(r.integers(0, 5))),
    "platform_ok": _bad_platform,
    "worst_status": lambda r: (r.integers(0, 3, size=L.N_STATUS) * r.integers(0, 50,
                                                                             size=L.N_STATUS),),
    "choices": _choices_args,
    # gemm
    "tile_elems": lambda r: (_chip(r),),
    "tile_height": lambda r: (float(r.uniform(0.1, 3000.0)), float(r.choice([0, 16, 32, 64,
                                                                              128]))),
    "grouped_gemm_cost": lambda r: (float(r.choice([1, 2, 8, 32, 256])), *_gemm_args(r)),
    "gemm_cost": _gemm_args,
    "gemm_time": _gemm_args,
    # attention
    "key_pairs": lambda r: (float(r.integers(1, 9000)), float(r.integers(9000, 20000)),
                            bool(r.random() < 0.7), float(r.choice([0, 0, 128, 4096]))),
    "flash_util": lambda r: (float(r.integers(1, 32768)), _pos(r, 1e7, 2.0),
                             bool(r.random() < 0.5), float(r.choice([0, 1024])),
                             float(r.choice([32, 64, 96, 128, 192, 256]))),
    "flash_cost": lambda r: (float(r.integers(1, 16)), float(r.integers(128, 32768)),
                             float(r.integers(32768, 65536)), float(r.choice([1, 8, 16, 128])),
                             float(r.choice([64, 128, 192])), float(r.choice([64, 128])),
                             float(r.choice([1, 8, 16])), bool(r.random() < 0.7),
                             float(r.choice([0, 0, 4096])), _pos(r, 989e12), float(r.uniform(
                                 0.3, 1.0)), _pos(r, 3.35e12), float(r.uniform(0.5, 1.0)),
                             float(r.choice([2.0, 4.0]))),
    "layers_flash_cost": lambda r: (float(r.integers(1, 16)), float(r.integers(128, 32768)),
                                    float(r.integers(32768, 65536)),
                                    float(r.choice([1, 8, 64])), float(r.choice([64, 128])),
                                    float(r.choice([64, 128])), float(r.choice([1, 8])),
                                    float(r.choice([0, 128, 4096])),
                                    float(r.choice([0.0, 0.5, 1.0])), _pos(r, 989e12),
                                    float(r.uniform(0.3, 1.0)), _pos(r, 3.35e12),
                                    float(r.uniform(0.5, 1.0)), float(r.choice([2.0, 4.0]))),
    "window_share": lambda r: (_model(r),),
    "unfused_cost": lambda r: (float(r.integers(1, 16)), float(r.integers(128, 8192)),
                               float(r.integers(8192, 16384)), float(r.choice([1, 8, 96])),
                               float(r.choice([64, 128])), float(r.choice([64, 128])),
                               _pos(r, 989e12), float(r.uniform(0.3, 1.0)), _pos(r, 3.35e12),
                               float(r.uniform(0.5, 1.0))),
    "decode_cost": lambda r: (float(r.integers(1, 512)), float(r.integers(1, 512)),
                              float(r.integers(1, 131072)), float(r.choice([1, 8, 128])),
                              float(r.choice([1, 8])), float(r.choice([128, 192])),
                              float(r.choice([128])), float(r.choice([0.0, 576.0])),
                              float(r.choice([1.0, 2.0])), _pos(r, 989e12),
                              float(r.uniform(0.3, 1.0)), _pos(r, 3.35e12),
                              float(r.uniform(0.5, 1.0))),
    "head_dims": lambda r: (_model(r),),
    "projection_params": lambda r: (_model(r),),
    # collectives
    "allreduce_time": lambda r: (_pos(r, 1e8, 2.0), int(r.integers(0, 5000)), _pos(r, 1e11),
                                 _pos(r, 1e-5)),
    "ranks_in_domain": lambda r: (int(r.integers(1, 500)), int(r.choice([1, 2, 3, 4, 8])),
                                  float(r.choice([1, 2, 4, 6, 8, 72, 256]))),
    "group_allreduce_time": _collective_args,
    "ring_allgather_time": lambda r: (_pos(r, 1e8, 2.0), int(r.integers(0, 5000)),
                                      _pos(r, 1e11), _pos(r, 1e-5)),
    "alltoall_time": _collective_args,
    "scaleup_bw": lambda r: (float(r.integers(1, 300)), _pos(r, 4.5e11),
                             int(r.integers(0, 5)), float(r.choice([1, 8, 16, 27, 64, 256]))),
    "scaleout_link": lambda r: (_chip(r), _cluster(r)),
    "level": lambda r: (float(r.integers(1, 600)), float(r.choice([1, 8, 64, 72])),
                        _pos(r, 4.5e11), int(r.integers(0, 5)), float(r.uniform(0.5, 1.0)),
                        _pos(r, 5e10), _pos(r, 2e-6), _pos(r, 1e-5)),
    "divisors": lambda r: (int(r.choice([-1, -1, -1, 3])), int(r.integers(0, 5000)),
                           int(r.integers(0, 300)), bool(r.integers(0, 2))),
    "mla_latent_width": lambda r: (_model(r),),
    "moe_token_bytes": lambda r: (_model(r), float(r.choice([1, 2, 8])),
                                  bool(r.integers(0, 2))),
    "gradient_sync": lambda r: (int(r.integers(0, 4)), int(r.integers(0, 2)),
                                float(r.choice([2.0, 4.0])), _pos(r, 1e9, 2.0),
                                float(r.choice([0.0, 1e8])), float(r.choice([1, 8, 64])),
                                float(r.choice([1, 2, 8])), float(r.choice([1, 2, 8])),
                                float(r.choice([1, 2])), float(r.choice([1, 2, 4])),
                                float(r.choice([1, 2, 8])), float(r.choice([8, 72])),
                                _pos(r, 4.5e11), int(r.integers(0, 5)),
                                float(r.uniform(0.5, 1.0)), _pos(r, 5e10), _pos(r, 2e-6),
                                _pos(r, 1e-5)),
    # offload
    "offload_ok": lambda r: (int(r.integers(-1, 5)), int(r.integers(0, 4))),
    "resident_states": lambda r: (_pos(r, 1e10), _pos(r, 2e10), _pos(r, 1e11),
                                  int(r.integers(0, 4)), _pos(r, 1e9), 2.0,
                                  float(r.choice([2.0, 4.0]))),
    "layer_host_time": lambda r: (float(r.choice([0.0, 1e8])), _pos(r, 1e9),
                                  int(r.integers(0, 4)), _pos(r, 1e-2), _pos(r, 2e-2), 2.0,
                                  float(r.choice([2.0, 4.0])), _pos(r, 6.4e10),
                                  _pos(r, 3e12)),
    "host_adam_time": lambda r: (_pos(r, 1e10), bool(r.integers(0, 2)), 30.0, 2.0,
                                 float(r.choice([2.0, 4.0])), _pos(r, 6.4e10),
                                 _pos(r, 7.7e10)),
    # moe
    "moe_mlp_cost": _moe_args,
    "a2a_volume": lambda r: (float(r.integers(1, 65536)), float(r.choice([1, 2, 8])),
                             float(r.choice([4096, 7168])), float(r.choice([1, 2, 8])),
                             float(r.choice([1.0, 2.0])), float(r.uniform(1.0, 2.0))),
    "exposed_a2a": lambda r: (_pos(r, 1e-3), _pos(r, 1e-3), int(r.integers(0, 2))),
    # pipeline
    "stage_layers": lambda r: _stage_args(int(r.integers(1, 128)), r),
    "stage_time": _stage_time_args,
    "pipe_time": lambda r: (int(r.integers(1, 64)), int(r.integers(1, 32)),
                            int(r.choice([1, 2, 4])), _pos(r, 1e-2), _pos(r, 1e-4)),
    # memory
    "layer_activation_bytes": _act_args,
    "model_state_bytes": lambda r: (_pos(r, 1e9, 2.0), int(r.integers(0, 4)),
                                    float(r.integers(1, 1024)), float(r.choice([2.0, 4.0]))),
    "in_flight_micro_batches": lambda r: (int(r.integers(1, 64)), int(r.integers(1, 128)),
                                          int(r.choice([1, 2, 4, 8]))),
    "serving_weight_kv_bytes": _serving_args,
    "train_activation_bytes": _train_act_args,
    "train_memory": _train_memory_args,
    # layer
    "gemm_flops_per_token": lambda r: (_model(r),),
    "layer_costs": _layer_args,
    "costs_to": lambda r: (np.zeros(layer.COSTS_LEN + 1),
                           tuple(float(x) for x in r.normal(size=layer.COSTS_LEN)),
                           float(r.integers(0, 9))),
    "costs_from": lambda r: (r.normal(size=layer.COSTS_LEN + 1),),
    # dvfs
    "voltage": lambda r: (float(r.uniform(0.0, 1.2)),),
    "at_clock": lambda r: (_chip(r), float(r.uniform(dvfs.CLOCK_FLOOR, 1.0)), np.zeros(
        L.CHIP_LEN)),
    "next_clock": _next_clock_args,
}
"""An input generator for every @njit function of the modules under test, by name."""


EDGE_INPUTS = {
    "choices": [(-1, 1, 0, True), (-1, 5, 4, False), (7, 1, 2, True), (-1, 0, 0, False)],
    "worst_status": [(np.zeros(L.N_STATUS, np.int64),), (np.eye(L.N_STATUS, dtype=np.int64)[
        L.S_POWER] + np.eye(L.N_STATUS, dtype=np.int64)[L.S_OOM] * 9,)],
    "divisors": [(-1, 1, 1, False), (-1, 0, 5, True), (-1, 7, 0, True), (-1, 1920, 1920, False),
                 (-1, 126, 126, True), (5, 12, 3, False)],
    "tile_height": [(0.0, 0.0), (1.0, 0.0), (128.0, 256.0), (1e9, 64.0)],
    "gemm_cost": [(0.0, 1.0, 1.0, 1e15, 0.8, 1e12, 0.9, 5e7, 2.0, 132.0, 32768.0, 64.0),
                  (1.0, 1.0, 1.0, 1e15, 0.8, 1e12, 0.9, 1.0, 2.0, 132.0, 32768.0, 64.0),
                  (1e6, 1e6, 1e6, 1e15, 0.8, 1e12, 0.9, 5e7, 2.0, 0.0, 0.0, 0.0)],
    "key_pairs": [(1.0, 1.0, True, 0.0), (5.0, 5.0, True, 5.0), (5.0, 5.0, True, 1.0),
                  (3.0, 10.0, True, 4.0), (0.0, 10.0, True, 0.0)],
    "flash_util": [(128.0, 0.0, True, 0.0, 128.0), (1.0, 1.0, False, 0.0, 512.0)],
    "allreduce_time": [(1e9, 0, 1e11, 1e-5), (1e9, 1, 1e11, 1e-5), (0.0, 8, 1e11, 0.0)],
    "ring_allgather_time": [(1e9, 0, 1e11, 1e-5), (1e9, 1, 1e11, 1e-5), (0.0, 8, 1e11, 0.0)],
    "group_allreduce_time": [(1e9, 1, 1, 8.0, 1e11, 1e10, 1e-6, 1e-5),
                             (1e9, 7, 1, 8.0, 1e11, 1e10, 1e-6, 1e-5),
                             (1e9, 8, 16, 8.0, 1e11, 1e10, 1e-6, 1e-5)],
    "alltoall_time": [(1e9, 1, 1, 8.0, 1e11, 1e10, 1e-6, 1e-5),
                      (1e9, 8, 1, 8.0, 1e11, 0.0, 1e-6, 1e-5),  # inside: the NIC unused
                      (1e9, 8, 8, 8.0, 0.0, 1e10, 1e-6, 1e-5)],  # one per domain
    "ranks_in_domain": [(1, 1, 1.0), (7, 1, 8.0), (12, 3, 8.0), (16, 32, 8.0)],
    "exposed_a2a": [(0.0, 1.0, 1), (1.0, 0.0, 1), (0.0, 0.0, 0)],
    "stage_layers": [(1.0, 1, 0.0), (1.0, 1, 1.0), (61.0, 16, 3.0), (8.0, 8, 8.0)],
    "in_flight_micro_batches": [(1, 1, 1), (8, 1, 4), (8, 64, 1)],
    "voltage": [(0.0,), (1.0,), (dvfs.CLOCK_FLOOR,)],
}


def _jitted_functions(module) -> list[str]:
    """Names of the numba functions a module defines (not the ones it imports)."""
    return sorted(name for name, obj in vars(module).items()
                  if hasattr(obj, "py_func") and obj.py_func.__module__ == module.__name__)


CASES = [(m.__name__.rsplit(".", 1)[1], name) for m in MODULES for name in _jitted_functions(m)]


def test_every_kernel_has_an_input_generator():
    """Contract: a kernel added to these modules must be added to RANDOM_INPUTS (and so gets
    the jitted-vs-py_func check below); no generator names a kernel that is gone."""
    names = [name for _, name in CASES]
    assert len(names) == len(set(names))  # names are unique across the modules
    assert set(names) == set(RANDOM_INPUTS), (set(names) ^ set(RANDOM_INPUTS))
    assert set(EDGE_INPUTS) <= set(RANDOM_INPUTS)
    assert len(names) >= 37


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_kernel_matches_py_func(module, name):
    fn = getattr(importlib.import_module(f"codesign.model.kernels.{module}"), name)
    rng = np.random.default_rng(sum(map(ord, name)))  # deterministic per kernel
    for _ in range(N_RANDOM):
        call_both(fn, *RANDOM_INPUTS[name](rng))
    for args in EDGE_INPUTS.get(name, []):
        call_both(fn, *args)


# ---- common --------------------------------------------------------------------------------
def test_matmul_peak_and_energy_follow_the_precision():
    chip = pack.chip_array(get_chip("h100-sxm"), scaleout_gbps=400.0)
    cols = [(L.C_FLOPS_FP32, L.C_GEMM_EFF, L.C_E_FP32), (L.C_FLOPS_BF16, L.C_GEMM_EFF, L.C_E_BF16),
            (L.C_FLOPS_BF16, L.C_GEMM_EFF, L.C_E_BF16),
            (L.C_FLOPS_FP8, L.C_GEMM_EFF_LOWP, L.C_E_FP8),
            (L.C_FLOPS_FP4, L.C_GEMM_EFF_LOWP, L.C_E_FP4)]
    for prec, (peak_col, eff_col, e_col) in enumerate(cols):  # fp32, fp16, bf16, fp8, fp4
        peak, eff = common.matmul_peak(chip, prec)
        assert (peak, eff) == (chip[peak_col], chip[eff_col]) or np.isnan(chip[peak_col])
        assert common.energy_per_flop(chip, prec) == chip[e_col] or np.isnan(chip[e_col])


def test_platform_ok_accepts_catalog_chips_and_rejects_each_bad_number():
    chip = pack.chip_array(get_chip("h100-sxm"), scaleout_gbps=400.0)
    cluster = pack.cluster_array(ClusterSpec(n_chips=8))
    assert common.platform_ok(chip, cluster, 2)
    bad_chip = [(L.C_HBM_BPS, 0.0), (L.C_SRAM_B, 0.0), (L.C_HBM_B, np.nan), (L.C_TDP_W, -1.0),
                (L.C_KERNEL_S, -1e-9), (L.C_GEMM_EFF, 0.0), (L.C_GEMM_EFF, 1.01),
                (L.C_ATTN_EFF, np.nan), (L.C_MEM_EFF, 2.0), (L.C_NET_EFF, 0.0),
                (L.C_E_HBM, -1.0), (L.C_E_LINK, -1.0), (L.C_LEAK_W, -1.0), (L.C_BUSY_W, np.nan),
                (L.C_E_BF16, -1e-12)]
    for col, value in bad_chip:
        c = chip.copy()
        c[col] = value
        assert not common.platform_ok(c, cluster, 2), col
        assert not common.platform_ok.py_func(c, cluster, 2), col
    for col, value in [(L.K_OVERSUB, 0.99), (L.K_PUE, 0.9), (L.K_HOST_W, -1.0),
                       (L.K_UP_LAT_S, -1e-9), (L.K_OUT_LAT_S, np.nan)]:
        k = cluster.copy()
        k[col] = value
        assert not common.platform_ok(chip, k, 2), col
    # only the efficiency of the job's own precision is checked
    c = chip.copy()
    c[L.C_GEMM_EFF_LOWP] = 0.0
    assert common.platform_ok(c, cluster, 2) and not common.platform_ok(c, cluster, 3)


def test_worst_status_prefers_the_closest_miss_then_the_most_frequent():
    rng = np.random.default_rng(3)
    for _ in range(300):
        counts = rng.integers(0, 4, size=L.N_STATUS) * rng.integers(0, 2, size=L.N_STATUS)
        got = common.worst_status(counts)
        if counts[L.S_SLO] > 0:
            assert got == L.S_SLO
        elif counts[L.S_POWER] > 0:
            assert got == L.S_POWER
        elif counts[1:].max() == 0:
            assert got == L.S_NO_CANDIDATE
        else:
            assert got == 1 + int(np.argmax(counts[1:]))  # ties: the lowest code


# ---- gemm ----------------------------------------------------------------------------------
def _h100() -> np.ndarray:
    return pack.chip_array(get_chip("h100-sxm"))


def test_tile_elems_of_catalog_chips():
    """16 x whole MACs per unit: 128 x 256 tiles on H100 (2048 MAC/SM), 128 x 128 on A100."""
    assert gemm.tile_elems(_h100()) == 128 * 256
    assert gemm.tile_elems(pack.chip_array(get_chip("a100-sxm-80gb"))) == 128 * 128
    chip = _h100()
    for col, value in ((L.C_UNITS, 0.0), (L.C_UNITS, np.nan), (L.C_CLOCK_HZ, 0.0)):
        c = chip.copy()
        c[col] = value
        assert gemm.tile_elems(c) == 0.0


def test_tile_height_pads_least_ties_to_the_taller():
    for m in [*range(1, 600), 1000, 4097, 8191]:
        for min_tm in (0.0, 16.0, 32.0, 64.0, 128.0):
            cands = [t for t in (128.0, 64.0, 32.0, 16.0) if t >= min_tm]
            best = min(cands, key=lambda t: (math.ceil(m / t) * t, -t))
            assert gemm.tile_height(float(m), min_tm) == best, (m, min_tm)


def _util(m, k, n, units=132.0, tile=32768.0, min_tm=64.0) -> float:
    """Achieved share of peak x efficiency of a compute-bound GEMM (from the kernel)."""
    peak, eff = 1e15, 0.8
    t = gemm.gemm_time(m, k, n, peak, eff, 1e20, 1.0, 1e12, 2.0, units, tile, min_tm)
    return 2.0 * m * k * n / (peak * eff) / t


def _util_doc(m, k, n, units, tile, min_tm, groups=1.0) -> float:
    """The module docstring's utilisation, written out: tiles tm x (tile / 128) with tm the
    height of 16..128 (>= min_tm) that pads m least (ties: the taller), k / K_BLOCK work units
    per tile, shared out in whole rounds over the units; 1 without unit information."""
    if not (units >= 1 and tile >= 128):
        return 1.0
    tm = min((t for t in (128.0, 64.0, 32.0, 16.0) if t >= min_tm or t == 128.0),
             key=lambda t: (math.ceil(m / t) * t, -t))
    tn = tile / 128.0
    tiles = groups * math.ceil(m / tm) * math.ceil(n / tn)
    work = tiles * math.ceil(k / gemm.K_BLOCK)
    return min(1.0, groups * m * n / (tiles * tm * tn) * work / (math.ceil(work / units) * units))


def test_gemm_util_at_most_one_and_work_units_split_k():
    rng = np.random.default_rng(5)
    for _ in range(500):
        m, k, n = (float(x) for x in rng.integers(1, 20000, size=3))
        units = float(rng.choice([1.0, 108.0, 132.0, 148.0]))
        tile = float(rng.choice([16384.0, 32768.0]))
        min_tm = float(rng.choice([0.0, 64.0]))
        u = _util(m, k, n, units, tile, min_tm)
        assert 0 < u <= 1 + 1e-12
        assert u == pytest.approx(_util_doc(m, k, n, units, tile, min_tm), rel=1e-9)
        # a longer reduction only adds work units: wave quantisation never gets worse than
        # that of the tiles alone
        assert u >= _util_doc(m, 1.0, n, units, tile, min_tm) * (1 - 1e-12)


def test_skinny_gemm_with_long_k_is_not_wave_limited():
    """m = 64, n = 2112 on H100: 9 output tiles for 132 units, but k = 7168 gives each 112
    k-blocks, 1008 work units: split-K keeps ~95 % of the units busy, not 9/132."""
    m, k, n = 64.0, 7168.0, 2112.0
    tiles = math.ceil(n / 256.0)
    assert tiles == 9
    u = _util(m, k, n)
    pad = n / (tiles * 256.0)
    assert u == pytest.approx(pad * tiles * 112 / (math.ceil(tiles * 112 / 132) * 132), rel=1e-12)
    assert u > 0.9 * pad > 10 * tiles / 132 * pad
    # with one k-block per tile the same shape is wave-limited
    assert _util(m, 64.0, n) == pytest.approx(pad * tiles / 132, rel=1e-12)


def test_grouped_gemm_shares_rounds_and_reads_each_groups_weights():
    rng = np.random.default_rng(6)
    for _ in range(300):
        args = _gemm_args(rng)
        groups = float(rng.choice([1, 2, 8, 64]))
        m, k, n, peak, eff, hbm, mem_eff, sram, el_b, units, tile, min_tm = args
        t_g, b_g = gemm.grouped_gemm_cost(groups, *args)
        t_1, b_1 = gemm.gemm_cost(*args)
        assert (t_1, b_1) == gemm.grouped_gemm_cost(1.0, *args)
        assert t_1 == gemm.gemm_time(*args)
        assert b_g == pytest.approx(groups * b_1, rel=1e-12)  # every group's operands
        assert t_g <= groups * t_1 * (1 + 1e-12)  # one launch never loses to separate ones
        x = max(1.0, math.sqrt(sram / (6.0 * el_b)))
        traffic = el_b * (m * k * max(1.0, n / x) + k * n * max(1.0, m / x) + m * n)
        assert b_1 == pytest.approx(traffic, rel=1e-12)
        u = _util_doc(m, k, n, units, tile, min_tm, groups)
        exp = max(2 * groups * m * k * n / (peak * eff * u), groups * traffic / (hbm * mem_eff))
        assert t_g == pytest.approx(exp, rel=1e-9)


def _microbench() -> list[dict[str, str]]:
    text = resources.files("codesign.model.catalog").joinpath("microbench.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def test_gemm_follows_the_published_cublas_h100_sweep():
    """vLLM PR #23280: torch.mm (cuBLAS) bf16 on H100 SXM, N = 2112, K = 7168 (DeepSeek-V3),
    M = 1..8192. The model's throughput rises with M like the measurement up to 4096 and is
    within a factor 1.6 of every measured point from M = 128."""
    rows = [r for r in _microbench() if r["chip"] == "h100-sxm" and r["kernel"] == "gemm"
            and r["precision"] == "bf16" and "vllm-project/vllm/pull/23280" in r["source"]]
    rows.sort(key=lambda r: int(r["m"]))
    assert [int(r["m"]) for r in rows] == [1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    chip = pack.chip_array(get_chip("h100-sxm"))
    model, measured = [], []
    for r in rows:
        m, n, k = float(r["m"]), float(r["n"]), float(r["k"])
        assert (n, k) == (2112.0, 7168.0)
        t = gemm.gemm_time(m, k, n, chip[L.C_FLOPS_BF16], chip[L.C_GEMM_EFF], chip[L.C_HBM_BPS],
                           chip[L.C_MEM_EFF], chip[L.C_SRAM_B], 2.0, chip[L.C_UNITS],
                           gemm.tile_elems(chip), chip[L.C_MIN_TILE_M])
        model.append(2 * m * k * n / t / 1e12)
        measured.append(float(r["tflops"]))
    up_to_4096 = [i for i, r in enumerate(rows) if int(r["m"]) <= 4096]
    for i, j in itertools.pairwise(up_to_4096):
        assert measured[j] >= measured[i]  # the published ordering ...
        assert model[j] >= model[i] * (1 - 1e-12), (rows[j]["m"], model)  # ... and the model's
    for r, mod, meas in zip(rows, model, measured, strict=True):
        if int(r["m"]) >= 128:
            assert 1 / 1.6 <= mod / meas <= 1.6, (r["m"], mod, meas)


# ---- attention -----------------------------------------------------------------------------
def test_key_pairs_counts_the_mask_by_brute_force():
    for s_q, s_kv in ((1, 1), (4, 4), (7, 7), (3, 10), (16, 40), (33, 33)):
        for window in (0, 1, 2, 5, 8, 16, 100):
            first = s_kv - s_q
            full = sum(first + i + 1 for i in range(s_q))
            win = sum(min(first + i + 1, window) for i in range(s_q)) if window else full
            exp = win if 0 < window < s_kv else full
            got = attention.key_pairs(float(s_q), float(s_kv), True, float(window))
            assert got == exp, (s_q, s_kv, window)
            assert attention.key_pairs(float(s_q), float(s_kv), False, float(window)) == (
                s_q * s_kv)


def _util_fa(s: float, causal: bool, hd: float = 128.0, window: float = 0.0) -> float:
    return attention.flash_util(s, attention.key_pairs(s, s, causal, window), causal, window, hd)


def test_flash_util_orderings():
    seqs = [256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 65536.0]
    for causal in (False, True):
        utils = [_util_fa(s, causal) for s in seqs]
        assert all(0 < u < 1 for u in utils)
        assert all(b > a for a, b in itertools.pairwise(utils))  # longer: more efficient
    for s in seqs:
        assert _util_fa(s, True) < _util_fa(s, False)  # the causal mask costs efficiency
        assert _util_fa(s, True, window=1024.0) < _util_fa(s, True)  # ragged window edge
        heads = [_util_fa(s, False, hd) for hd in (32.0, 64.0, 96.0, 128.0)]
        assert all(b > a for a, b in itertools.pairwise(heads))  # narrower: slower
        assert _util_fa(s, False, 256.0) == _util_fa(s, False, 128.0)  # capped at 128
        assert _util_fa(s, False, 64.0) == pytest.approx(0.75 * _util_fa(s, False), rel=1e-12)
    assert attention.flash_util(1024.0, 0.0, True, 0.0, 128.0) == 0.0


def test_flash_util_fits_the_published_fa3_h100_sweep():
    """FlashAttention-3 forward on H100, hd 128, non-causal, 512..16k tokens (pytorch/benchmark
    @ff65cb67): the model's efficiency relative to 16k is within 5 % of the measured
    throughput relative to 16k at every length."""
    rows = [r for r in _microbench() if r["chip"] == "h100-sxm" and r["kernel"] == "attention"
            and r["note"].startswith("flash_v3") and "ff65cb67" in r["source"]
            and r["head_dim"] == "128" and r["causal"] == "0" and r["direction"] == "fwd"]
    seqs = sorted(int(r["seq_len"]) for r in rows)
    assert seqs == [512, 1024, 2048, 4096, 8192, 16384]
    ref = next(float(r["tflops"]) for r in rows if r["seq_len"] == "16384")
    for r in rows:
        s = float(r["seq_len"])
        model = _util_fa(s, False) / _util_fa(16384.0, False)
        measured = float(r["tflops"]) / ref
        assert model == pytest.approx(measured, rel=0.05), (s, model, measured)


def test_flash_cost_is_the_roofline_of_its_efficiency():
    rng = np.random.default_rng(8)
    for _ in range(300):
        args = RANDOM_INPUTS["flash_cost"](rng)
        b, s_q, s_kv, heads, dqk, dv, kvh, causal, window, peak, eff, hbm, mem_eff, act_b = args
        t_f, t_b, flops, byts = attention.flash_cost(*args)
        pairs = attention.key_pairs(s_q, s_kv, causal, window)
        assert flops == pytest.approx(2 * b * heads * (dqk + dv) * pairs, rel=1e-12)
        assert byts == pytest.approx(act_b * b * (s_q * heads + s_kv * kvh) * (dqk + dv),
                                     rel=1e-12)
        rate = peak * eff * attention.flash_util(s_q, pairs, causal, window, 0.5 * (dqk + dv))
        t_mem = byts / (hbm * mem_eff)
        assert t_f == pytest.approx(max(flops / rate, t_mem), rel=1e-12)
        assert t_b == pytest.approx(max(attention.BWD_FLOPS_RATIO * flops / (
            rate * attention.BWD_EFF_RATIO), 2 * t_mem), rel=1e-12)
        assert t_b >= t_f


def test_unfused_cost_runs_the_full_score_matrix_through_hbm():
    rng = np.random.default_rng(9)
    for _ in range(200):
        args = RANDOM_INPUTS["unfused_cost"](rng)
        b, s_q, s_kv, heads, dqk, dv, peak, eff, hbm, mem_eff = args
        t_f, t_b, flops, byts = attention.unfused_cost(*args)
        assert flops == 2 * b * heads * (dqk + dv) * s_q * s_kv  # masked, not skipped
        assert byts == attention.UNFUSED_SCORE_BYTES * heads * s_q * s_kv * b
        assert t_f == pytest.approx(flops / (peak * eff) + byts / (hbm * mem_eff), rel=1e-12)
        assert t_b == 2 * t_f
        # linear in the queries: a chunk of s_q / 2 queries costs half
        half = attention.unfused_cost(b, s_q / 2, s_kv, heads, dqk, dv, peak, eff, hbm, mem_eff)
        assert half[0] == pytest.approx(t_f / 2, rel=1e-12)


def test_decode_cost_reads_each_cache_once():
    peak, eff, hbm, mem_eff = 989e12, 0.6, 3.35e12, 0.8
    # standard GQA: 8 KV heads of 128 + 128 per token, 2-byte cache, memory-bound
    t, flops, byts = attention.decode_cost(64.0, 64.0, 8192.0, 32.0, 8.0, 128.0, 128.0, 0.0,
                                           2.0, peak, eff, hbm, mem_eff)
    assert byts == 2.0 * 64 * 8192 * 8 * 256
    assert flops == 2.0 * 64 * 8192 * 32 * 256
    assert t == pytest.approx(byts / (hbm * mem_eff), rel=1e-12)
    # MLA: one latent of 576 per token whatever the heads; the absorbed query multiplies work
    t, flops, byts = attention.decode_cost(64.0, 64.0, 8192.0, 128.0, 1.0, 192.0, 128.0, 576.0,
                                           1.0, peak, eff, hbm, mem_eff)
    assert byts == 64 * 8192 * 576
    assert flops == 4.0 * 64 * 8192 * 576 * 128
    assert t == pytest.approx(max(flops / (peak * eff), byts / (hbm * mem_eff)), rel=1e-12)


@pytest.mark.parametrize("name", [*model_ids(), "tiny"])
def test_head_dims_and_projection_params_match_the_model_spec(name):
    m = TINY if name == "tiny" else get_model(name)
    arr = pack.model_array(m)
    dqk, dv, nkv, kv_lora = attention.head_dims(arr)
    assert (dqk, dv) == (m.qk_head_dim, m.v_head_dim)
    if m.is_mla:
        assert kv_lora == m.kv_lora_rank and nkv == m.heads  # up-projected per query head
    else:
        assert kv_lora == 0.0 and nkv == m.kv_heads
    split, whole = attention.projection_params(arr)
    assert split + whole == m.attention_params_per_layer()
    assert whole == (m.hidden * (m.q_lora_rank + m.kv_lora_rank + m.rope_head_dim)
                     if m.is_mla else 0)


def test_projection_params_deepseek_v3_by_hand():
    """DeepSeek-V3 MLA, h 7168, 128 heads of 128 (+64 RoPE), q rank 1536, kv rank 512:
    W_qa 7168x1536, W_qb 1536x(128x192), W_kva 7168x576, W_kvb 512x(128x256), W_o 16384x7168."""
    split, whole = attention.projection_params(pack.model_array(get_model("deepseek-v3")))
    assert whole == 7168 * 1536 + 7168 * 576
    assert split == 1536 * 128 * 192 + 512 * 128 * 256 + 128 * 128 * 7168


# ---- collectives ---------------------------------------------------------------------------
def test_ring_allgather_time_closed_form():
    rng = np.random.default_rng(10)
    for _ in range(300):
        vol, n, bw, lat = RANDOM_INPUTS["ring_allgather_time"](rng)
        t = collectives.ring_allgather_time(vol, n, bw, lat)
        exp = (n - 1) / n * vol / bw + (n - 1) * lat if n > 1 else 0.0
        assert t == pytest.approx(exp, rel=1e-12)
        if n > 1:  # half an all-reduce ring: the bandwidth term of a reduce-scatter
            ring = 2 * (n - 1) / n * vol / bw + 2 * (n - 1) * lat
            assert 2 * t == pytest.approx(ring, rel=1e-12)


def test_ranks_in_domain_is_the_largest_divisor_that_fits():
    for n in range(1, 130):
        for stride in (1, 2, 3, 4, 8, 16):
            for domain in (1.0, 2.0, 4.0, 6.0, 8.0, 72.0):
                fit = max(1, int(domain // stride))
                exp = max(d for d in range(1, n + 1) if n % d == 0 and d <= fit)
                assert collectives.ranks_in_domain(n, stride, domain) == exp


def test_alltoall_time_uses_the_scaleup_fabric_for_peers_in_the_domain():
    up, out, up_lat, out_lat = 4.5e11, 5e10, 2e-6, 1e-5
    rng = np.random.default_rng(11)
    for _ in range(300):
        vol = _pos(rng, 1e8, 2.0)
        n = int(rng.integers(2, 257))
        stride = int(rng.choice([1, 2, 4, 8]))
        domain = float(rng.choice([1, 2, 4, 8, 16, 72]))
        t = collectives.alltoall_time(vol, n, stride, domain, up, out, up_lat, out_lat)
        k = collectives.ranks_in_domain(n, stride, domain)
        t_in = vol * (k - 1) / n / up
        t_out = vol * (n - k) / n / out
        assert t == pytest.approx(max(t_in, t_out) + (k - 1) * up_lat + (n - k) * out_lat,
                                  rel=1e-12)
        if stride * n <= domain:  # the whole group in one domain: never touches the NIC
            assert k == n
            for nic, nic_lat in ((0.0, 1.0), (1.0, 1e3), (np.inf, 0.0)):
                assert collectives.alltoall_time(vol, n, stride, domain, up, nic, up_lat,
                                                 nic_lat) == t
            assert t == pytest.approx(vol * (n - 1) / n / up + (n - 1) * up_lat, rel=1e-12)
        if domain // stride <= 1:  # one rank per domain: everything over the NIC
            assert t == pytest.approx(vol * (n - 1) / n / out + (n - 1) * out_lat, rel=1e-12)
        # its own share stays: a group of one sends nothing
    assert collectives.alltoall_time(1e9, 1, 1, 8.0, up, out, up_lat, out_lat) == 0.0


def test_group_inside_a_domain_never_touches_the_nic():
    up, up_lat = 4.5e11, 2e-6
    for n in (2, 4, 8):
        for stride in (1, 2, 4):
            if n * stride > 8:
                continue
            t = collectives.group_allreduce_time(1e9, n, stride, 8.0, up, 0.0, up_lat, 1e3)
            assert t == collectives.allreduce_time(1e9, n, up, up_lat)
            bw, lat = collectives.level(float(n * stride), 8.0, up, L.TOPO_FAT_TREE, 0.9,
                                        1e10, up_lat, 5e-6)
            assert (bw, lat) == (up * 0.9, up_lat)
    bw, lat = collectives.level(16.0, 8.0, up, L.TOPO_FAT_TREE, 0.9, 1e10, up_lat, 5e-6)
    assert (bw, lat) == (1e10, 5e-6)  # spans domains: the scale-out link as given


@pytest.mark.parametrize(
    ("topology", "bw_factor", "lat_factor"),
    [("fat-tree", 1 / 2, 1.0), ("rail-optimized", 1.0, collectives.RAIL_LATENCY_FACTOR),
     ("torus-2d", 1.0, 1.0), ("torus-3d", 1.0, 1.0),
     ("dragonfly", collectives.DRAGONFLY_GLOBAL_TAPER, 1.0)],
)
def test_scaleout_link_by_topology(topology, bw_factor, lat_factor):
    chip = pack.chip_array(get_chip("h100-sxm"), scaleout_gbps=400.0)
    cluster = pack.cluster_array(ClusterSpec(n_chips=64, topology=topology, oversubscription=2.0,
                                             scaleout_latency_us=10.0))
    bw, lat = collectives.scaleout_link(chip, cluster)
    assert bw == pytest.approx(chip[L.C_OUT_BPS] * chip[L.C_NET_EFF] * bw_factor, rel=1e-12)
    assert lat == pytest.approx(10e-6 * lat_factor, rel=1e-12)


# ---- moe -----------------------------------------------------------------------------------
def test_exposed_a2a_bounds():
    share = moe.COMM_SM_SHARE
    assert 0 < share < 1
    rng = np.random.default_rng(12)
    for _ in range(500):
        t_a2a, t_comp = _pos(rng, 1e-3, 2.0), _pos(rng, 1e-3, 2.0)
        assert moe.exposed_a2a(t_a2a, t_comp, 0) == t_a2a  # no overlap: all of it
        x = moe.exposed_a2a(t_a2a, t_comp, 1)
        hidden = min(t_a2a, t_comp)
        assert x <= t_a2a
        assert x >= share * hidden
        assert x == pytest.approx(t_a2a - hidden + share * hidden, rel=1e-12)
        assert x < t_a2a  # positive a2a, positive compute: the overlap always pays
        # more compute to hide under never exposes more
        assert moe.exposed_a2a(t_a2a, 2 * t_comp, 1) <= x
    assert moe.exposed_a2a(0.0, 1.0, 1) == 0.0
    assert moe.exposed_a2a(1.0, 0.0, 1) == 1.0


def test_a2a_volume_closed_form():
    assert moe.a2a_volume(4096.0, 8.0, 7168.0, 2.0, 2.0, 1.25) == 2.0 * 4096 * 8 * 7168 / 2 * 1.25


def test_moe_mlp_cost_parts():
    """moe_mlp_cost returns (expert + shared GEMM s, router + permutation s, FLOPs, HBM bytes,
    tokens per local expert); the FLOPs are two per active weight: the routed experts' first
    GEMM is ``up_mats`` x f_moe wide (2 gated, 1 not) and their second f_moe, the router
    h x experts on this chip's tokens."""
    rng = np.random.default_rng(13)
    for _ in range(200):
        args = list(_moe_args(rng))
        res = moe.moe_mlp_cost(*args)
        assert isinstance(res, tuple) and len(res) == 5
        tok, tok_sp, h, experts, topk, f, shared, up_mats, ep, tp, imb = args[:11]
        assert res[4] == pytest.approx(tok * topk * ep / experts, rel=1e-12)
        assert min(res) >= 0 and res[2] > 0 and res[3] > 0
        flops = (2.0 * tok * (topk + shared) * (up_mats + 1.0) * h * f / tp
                 + 2.0 * tok_sp * h * experts)
        assert res[2] == pytest.approx(flops, rel=1e-12)
        # the busiest rank sets the pace: imbalance scales the routed experts' GEMMs only
        args2 = list(args)
        args2[10] = 2.0 * imb
        args2[6] = 0.0  # no shared experts
        args3 = list(args2)
        args3[10] = imb
        res2 = moe.moe_mlp_cost(*args2)
        res3 = moe.moe_mlp_cost(*args3)
        assert res2[0] == pytest.approx(2.0 * res3[0], rel=1e-12)
        assert res2[1] == res3[1] == res[1]  # router + permutation: no experts involved
        assert res2[2] == res3[2]
        # shared experts: a dense MLP over all tokens on top of the routed ones
        assert res[0] > res3[0] if shared > 0 else res[0] == res3[0]


def test_moe_mlp_cost_flops_of_a_gated_and_a_plain_mlp():
    """Mixtral-like layer on one chip (gated: w1, w3 then w2 = 3 GEMMs of h x f per routed
    token) and the same layer ungated (2): 6 h f and 4 h f FLOPs per routed token, plus the
    router's 2 h experts per token (the bug of the previous commit counted one matrix too many)."""
    tok, h, experts, topk, f = 4096.0, 4096.0, 8.0, 2.0, 14336.0
    router = 2.0 * tok * h * experts
    for up_mats, mats in ((2.0, 3.0), (1.0, 2.0)):
        res = moe.moe_mlp_cost(tok, tok, h, experts, topk, f, 0.0, up_mats, 1.0, 1.0, 1.0,
                               989e12, 0.8, 3.35e12, 0.9, 50e6, 2.0, 2.0, 132.0, 32768.0, 64.0)
        assert res[2] == pytest.approx(2.0 * mats * tok * topk * h * f + router, rel=1e-12)


# ---- pipeline ------------------------------------------------------------------------------
def _stages_by_hand(layers: int, pp: int, dense: int):
    """(layers, dense layers) of every stage: the first layers % pp stages hold one more."""
    q, r = divmod(layers, pp)
    stages, start = [], 0
    for i in range(pp):
        n = q + (1 if i < r else 0)
        stages.append((n, max(0, min(n, dense - start))))
        start += n
    return stages


def test_stage_layers_against_a_brute_force_split():
    for layers in range(1, 41):
        for pp in range(1, layers + 1):
            for dense in range(layers + 1):
                res = pipeline.stage_layers(float(layers), pp, float(dense))
                assert isinstance(res, tuple) and len(res) == 5
                st = _stages_by_hand(layers, pp, dense)
                assert (res[0], res[1]) == st[0]
                assert (res[2], res[3]) == st[-1]
                no_dense = [n for n, d in st[:-1] if d == 0]
                assert res[4] == (max(no_dense) if no_dense else 0.0), (layers, pp, dense)
                assert sum(n for n, _ in st) == layers


def test_pipe_time_closed_form():
    for m, pp, vpp in itertools.product((1, 4, 32), (1, 2, 8), (1, 2, 4)):
        t, bubble = pipeline.pipe_time(m, pp, vpp, 0.01, 0.001)
        assert bubble == pytest.approx((pp - 1) / vpp * 0.011, rel=1e-12)
        assert t == pytest.approx(m * 0.011 + bubble, rel=1e-12)


# ---- memory --------------------------------------------------------------------------------
def _mha(sb, h, mlp_mult=4.0, tp=1.0, tsp=1.0, fp8=False, selective=False, latent=0.0):
    """Multi-head attention (q = k = v = o = h) and a 4h GELU MLP."""
    return memory.layer_activation_bytes(sb, h, h, h, h, h, latent, mlp_mult * h, False, tp,
                                         tsp, fp8, 0.0, selective)


@pytest.mark.parametrize(("s", "b", "h", "a"), [(2048, 1, 12288, 96), (4096, 4, 4096, 32),
                                                 (1024, 8, 512, 8)])
def test_layer_activation_bytes_is_korthikanti_table_2(s, b, h, a):
    """Korthikanti et al. 2022, Table 2 (bytes per layer): no parallelism sbh(34 + 5as/h)
    (the caller adds the 5as^2b scores of unfused attention), tensor parallel
    sbh(10 + 24/t), tensor + sequence parallel sbh(34/t)."""
    sbh = s * b * h
    assert _mha(s * b, h) + 5 * a * s * s * b == pytest.approx(sbh * (34 + 5 * a * s / h),
                                                                rel=1e-12)
    for t in (1.0, 2.0, 4.0, 8.0):
        assert _mha(s * b, h, tp=t) == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)
        assert _mha(s * b, h, tp=t, tsp=t) == pytest.approx(sbh * 34 / t, rel=1e-12)


def test_layer_activation_bytes_fp8_halves_exactly_the_gemm_inputs():
    """fp8 recipes keep the 1-byte copy of each GEMM input: the two norms' outputs (QKV and
    first-MLP inputs, 2 x 2sbh), the attention output (2 sb o) and the second MLP GEMM's
    input (2 sb f) go from 2 bytes to 1, nothing else changes."""
    rng = np.random.default_rng(14)
    for _ in range(200):
        args = list(_act_args(rng))
        args[11] = False
        bf16 = memory.layer_activation_bytes(*args)
        args[11] = True
        fp8 = memory.layer_activation_bytes(*args)
        sb, h, _q, _k, _v, o, _lat, f, _g, tp, tsp, _fp8, _moe, sel = args
        gemm_inputs_16bit = (0.0 if sel else 2 * 2 * sb * h / tsp) + 2 * sb * o / tp + (
            0.0 if sel else 2 * sb * f / tp)
        assert bf16 - fp8 == pytest.approx(gemm_inputs_16bit / 2, rel=1e-9)


def test_layer_activation_bytes_selective_drops_exactly_the_documented_tensors():
    """Selective recompute under fused attention drops the norms' outputs, the activation
    function's output (the second MLP GEMM's input) and, under MLA (latent > 0), the
    up-projected Q, K and V; nothing else."""
    rng = np.random.default_rng(15)
    for _ in range(300):
        args = list(_act_args(rng))
        args[13] = False
        keep_all = memory.layer_activation_bytes(*args)
        args[13] = True
        sel = memory.layer_activation_bytes(*args)
        sb, h, q, k, v, _o, lat, f, _g, tp, tsp, fp8, _moe, _s = args
        el = 1.0 if fp8 else 2.0
        dropped = 2 * el * h * sb / tsp + el * f * sb / tp
        if lat > 0:
            dropped += 2 * (q + k + v) * sb / tp
        assert keep_all - sel == pytest.approx(dropped, rel=1e-9)
    # a gated MLP keeps one more f-wide tensor (gate and up outputs) than a GELU MLP
    g = memory.layer_activation_bytes(4096.0, 4096.0, 4096.0, 4096.0, 4096.0, 4096.0, 0.0,
                                      14336.0, True, 1.0, 1.0, False, 0.0, False)
    n = memory.layer_activation_bytes(4096.0, 4096.0, 4096.0, 4096.0, 4096.0, 4096.0, 0.0,
                                      14336.0, False, 1.0, 1.0, False, 0.0, False)
    assert g - n == 2 * 4096 * 14336


def test_layer_activation_bytes_gqa_and_moe_extra():
    """Grouped-query attention keeps narrower K and V (2 bytes x kv width each); MoE extras
    are per token and already split over tp."""
    sb, h = 4096.0, 4096.0
    base = memory.layer_activation_bytes(sb, h, h, h, h, h, 0.0, 4 * h, False, 1.0, 1.0, False,
                                         0.0, False)
    gqa = memory.layer_activation_bytes(sb, h, h, h / 4, h / 4, h, 0.0, 4 * h, False, 1.0, 1.0,
                                        False, 0.0, False)
    assert base - gqa == 2 * sb * 2 * (h - h / 4)
    extra = memory.layer_activation_bytes(sb, h, h, h, h, h, 0.0, 4 * h, False, 4.0, 4.0,
                                          False, 300.0, False)
    plain = memory.layer_activation_bytes(sb, h, h, h, h, h, 0.0, 4 * h, False, 4.0, 4.0,
                                          False, 0.0, False)
    assert extra - plain == sb * 300.0


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_model_state_bytes_is_the_zero_table(zero):
    """Rajbhandari et al. 2020: 2 + g + 12 bytes per parameter; ZeRO-1 shards the optimizer
    states, ZeRO-2 also the gradients, ZeRO-3 also the weights."""
    p, dp, g = 7e9, 64.0, 4.0
    w, grads, opt = memory.model_state_bytes(p, zero, dp, g)
    assert w == 2 * p / (dp if zero >= 3 else 1)
    assert grads == g * p / (dp if zero >= 2 else 1)
    assert opt == 12 * p / (dp if zero >= 1 else 1)
    assert sum(memory.model_state_bytes(p, zero, 1.0, g)) == (2 + g + 12) * p


def test_in_flight_micro_batches():
    for pp, m, vpp in itertools.product((1, 2, 4, 8), (1, 2, 8, 64), (1, 2, 4)):
        n = memory.in_flight_micro_batches(pp, m, vpp)
        exp = min(pp, m) * ((1 + (pp - 1) / (pp * vpp)) if vpp > 1 else 1.0)
        assert n == pytest.approx(exp, rel=1e-12)
        assert n <= 2 * min(pp, m)


@pytest.mark.parametrize("name", [n for n in model_ids() if not get_model(n).tied_embeddings])
def test_serving_weights_on_one_chip_are_all_parameters(name):
    m = get_model(name)
    arr = pack.model_array(m)
    dqk, dv, nkv, kv_lora = attention.head_dims(arr)
    split, whole = attention.projection_params(arr)
    latent = kv_lora + m.rope_head_dim if kv_lora > 0 else 0.0
    w, kv = memory.serving_weight_kv_bytes(
        m.layers, m.hidden, m.heads, nkv, dqk, dqk, dv, m.ffn_hidden, m.gated_mlp,
        m.moe_experts, m.moe_dense_layers, m.moe_ffn_hidden, m.moe_shared_experts, m.vocab,
        latent, split + whole, 1.0, 1.0, 1.0, 1000.0, 2.0, 2.0)
    assert w == pytest.approx(2.0 * m.params_total(), rel=1e-12)
    width = latent if latent > 0 else nkv * (dqk + dv)
    assert kv == pytest.approx(m.layers * width * 2.0 * 1000, rel=1e-12)
    # tp splits KV heads until it exceeds them; pp splits the layers (rounded up)
    w2, kv2 = memory.serving_weight_kv_bytes(
        m.layers, m.hidden, m.heads, nkv, dqk, dqk, dv, m.ffn_hidden, m.gated_mlp,
        m.moe_experts, m.moe_dense_layers, m.moe_ffn_hidden, m.moe_shared_experts, m.vocab,
        latent, split + whole * 2.0, 2.0, 4.0, 1.0, 1000.0, 2.0, 2.0)
    assert w2 < w / 2
    exp_kv = math.ceil(m.layers / 4) * (latent if latent > 0 else max(1.0, nkv / 2) * (
        dqk + dv)) * 2.0 * 1000
    assert kv2 == pytest.approx(exp_kv, rel=1e-12)


# ---- dvfs ----------------------------------------------------------------------------------
def test_voltage_line_and_floor():
    s = np.linspace(0.0, 1.0, 101)
    v = np.array([dvfs.voltage(x) for x in s])
    assert np.all(np.diff(v) >= 0) and v[-1] == pytest.approx(1.0)
    assert v.min() == dvfs.VOLTAGE_FLOOR
    knee = (dvfs.VOLTAGE_FLOOR - dvfs.VOLTAGE_INTERCEPT) / (1 - dvfs.VOLTAGE_INTERCEPT)
    for x, vx in zip(s, v, strict=True):
        if x >= knee:
            assert vx == pytest.approx(dvfs.VOLTAGE_INTERCEPT + (1 - dvfs.VOLTAGE_INTERCEPT) * x)


@pytest.mark.parametrize("fit", [0.95, 0.61, 0.45, 0.3001])
def test_next_clock_bisection_finds_the_highest_clock_that_fits(fit):
    """Power rising with the clock (any monotone law): the search ends on the highest clock
    within the bisection resolution at or below the one that just fits."""
    chip = pack.chip_array(get_chip("h100-sxm"))
    chip[L.C_TDP_W] = 700.0

    def power(s):
        return 700.0 * (s / fit) ** 2.3

    for fn in (dvfs.next_clock, dvfs.next_clock.py_func):
        state, out, scaled = np.array([0.0, 1.0, 1.0, 0.0]), np.zeros(L.OUT_LEN), chip.copy()
        steps = 0
        while fn(chip, power(state[2]), scaled, state, out, L.O_CLOCK):
            steps += 1
            assert scaled[L.C_CLOCK_HZ] == pytest.approx(chip[L.C_CLOCK_HZ] * state[2])
        assert steps <= dvfs.CLOCK_BISECTIONS + 2
        res = (1 - dvfs.CLOCK_FLOOR) / 2**dvfs.CLOCK_BISECTIONS
        assert fit - res <= out[L.O_CLOCK] <= fit
        assert power(out[L.O_CLOCK]) <= 700.0


def test_at_clock_scales_only_the_clocked_parts():
    chip = pack.chip_array(get_chip("h100-sxm"), scaleout_gbps=400.0)
    scaled = np.zeros_like(chip)
    dvfs.at_clock(chip, 1.0, scaled)
    np.testing.assert_array_equal(scaled, chip)  # the peak clock: unchanged
    s = 0.5
    dvfs.at_clock(chip, s, scaled)
    v = dvfs.voltage(s)
    changed = {L.C_FLOPS_FP32: s, L.C_FLOPS_BF16: s, L.C_FLOPS_FP8: s, L.C_FLOPS_FP4: s,
               L.C_CLOCK_HZ: s, L.C_E_FP32: v * v, L.C_E_BF16: v * v, L.C_E_FP8: v * v,
               L.C_E_FP4: v * v, L.C_BUSY_W: s * v * v, L.C_LEAK_W: v}
    for i in range(L.CHIP_LEN):
        exp = chip[i] * changed.get(i, 1.0)
        assert scaled[i] == pytest.approx(exp, rel=1e-12, nan_ok=True), i
    # the tile size (MACs per unit) does not change with the clock
    assert gemm.tile_elems(scaled) == gemm.tile_elems(chip)
