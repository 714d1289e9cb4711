"""codesign.model.kernels.train: every numba kernel against its pure-Python ``.py_func`` twin.

QuantEcon style: the kernels take flat arrays, write into preallocated outputs and return status
codes, so each one is run jitted and as plain Python on the same inputs (seeded random draws
around catalog chips and models, plus edge inputs) and the two must agree. On top of that:
invariants that hold by construction of the model (finite, positive outputs of feasible results,
breakdown <= step time, monotonicity in hardware speed and efficiency), an explicit Python
enumeration of the full candidate space whose best step time the branch-and-bound mapping search
must match exactly, and one end-to-end run with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import kernel_helpers as kh
import numpy as np
import pytest

from codesign.model import pack
from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout as L
from codesign.model.kernels.collectives import allreduce_time, group_allreduce_time, scaleup_bw
from codesign.model.kernels.common import choices as _choices
from codesign.model.kernels.dvfs import CLOCK_FLOOR, at_clock, next_clock, voltage
from codesign.model.kernels.gemm import gemm_time
from codesign.model.kernels.layer import gemm_flops_per_token as _gemm_flops_per_token
from codesign.model.kernels.memory import BUFFER_B
from codesign.model.kernels.train import eval_at_clock, eval_mapping
from codesign.model.kernels.train_search import (
    MAX_CP,
    MAX_MICRO_BATCH,
    MIN_TOKENS_PER_CP_RANK,
    search_mappings,
    search_population,
)
from codesign.model.specs import TOPOLOGIES, ClusterSpec, TrainJob

REPO = Path(__file__).resolve().parents[1]
RTOL = kh.RTOL
PACKABLE_CHIPS, MODELS, EFF_COLS = kh.PACKABLE_CHIPS, kh.MODELS, kh.EFF_COLS
TINY, TINY_MOE = kh.TINY, kh.TINY_MOE
chip_arr, case, mapping, random_case = kh.chip_arr, kh.case, kh.mapping, kh.random_case

run_eval = partial(kh.run_eval, out_len=L.OUT_LEN)
run_search = partial(kh.run_search, out_len=L.OUT_LEN)
eval_both = partial(kh.eval_both, eval_mapping, out_len=L.OUT_LEN)
eval_at_both = partial(kh.eval_both, eval_at_clock, out_len=L.OUT_LEN)
search_both = partial(kh.search_both, search_mappings, out_len=L.OUT_LEN)


def assert_ok_outputs(arrays, mp, out) -> None:
    """Invariants of every S_OK result, by construction of the model."""
    chip, cluster, _model, job = arrays
    assert np.all(np.isfinite(out)), out
    step = out[L.O_STEP_S]
    assert step > 0
    assert out[L.O_TOKENS_PER_S] > 0
    np.testing.assert_allclose(out[L.O_TOKENS_PER_S], job[L.J_SEQ] * job[L.J_GBATCH] / step,
                               rtol=RTOL)
    assert 0 < out[L.O_MFU] < 1
    assert 0 < out[L.O_MEM_B] <= chip[L.C_HBM_B]
    assert 0 <= out[L.O_BUSY] <= 1
    assert 0 <= out[L.O_CHIP_W] <= chip[L.C_TDP_W] * (1 + RTOL)
    np.testing.assert_allclose(
        out[L.O_CLUSTER_W],
        cluster[L.K_N_CHIPS] * (out[L.O_CHIP_W] + cluster[L.K_HOST_W]) * cluster[L.K_PUE],
        rtol=RTOL,
    )
    np.testing.assert_allclose(out[L.O_TOK_PER_J], out[L.O_TOKENS_PER_S] / out[L.O_CLUSTER_W],
                               rtol=RTOL)
    n_used = mp[L.P_TP] * mp[L.P_PP] * mp[L.P_DP] * mp[L.P_CP]
    assert out[L.O_N_USED] == n_used <= cluster[L.K_N_CHIPS]
    parts = [L.O_T_COMPUTE, L.O_T_TP, L.O_T_BUBBLE, L.O_T_DP, L.O_T_OPT, L.O_T_PP]
    assert all(out[i] >= 0 for i in parts)
    assert out[L.O_T_COMPUTE] > 0
    # the breakdown leaves out only the logits of the last stage: never more than the step
    assert sum(out[i] for i in parts) <= step * (1 + 1e-12)


# ---- scalar kernels ------------------------------------------------------------------------
def test_gemm_time_matches_py_func_and_roofline():
    rng = np.random.default_rng(1)
    for _ in range(300):
        m, k, n = rng.integers(1, 65536, size=3).astype(float)
        peak = 989e12 * rng.lognormal(0, 1)
        eff = float(rng.uniform(0.3, 1.0))
        hbm = 3.35e12 * rng.lognormal(0, 1)
        mem_eff = float(rng.uniform(0.5, 1.0))
        sram = 80e6 * rng.lognormal(0, 2)
        el_b = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
        units = float(rng.choice([0.0, 1.0, 108.0, 132.0, 1000.0]))
        tile = float(rng.choice([0.0, 100.0, 16390.86, 32767.01, 32768.0, 65536.0]))
        min_tm = float(rng.choice([0.0, 16.0, 64.0, 128.0]))
        args = (m, k, n, peak, eff, hbm, mem_eff, sram, el_b, units, tile, min_tm)
        t = gemm_time(*args)
        assert t == pytest.approx(gemm_time.py_func(*args), rel=RTOL)
        # roofline bounds: at least the compute time and the compulsory traffic time
        assert t >= 2 * m * k * n / (peak * eff) * (1 - 1e-12)
        assert t >= el_b * (m * k + k * n + m * n) / (hbm * mem_eff) * (1 - 1e-12)
        # tile and wave quantisation only ever lose throughput
        assert t >= gemm_time(m, k, n, peak, eff, hbm, mem_eff, sram, el_b, 0.0, 0.0,
                              min_tm) * (1 - 1e-12)
        # faster compute, higher efficiency, faster HBM or more SRAM never make a GEMM slower
        for i, factor in ((3, 2.0), (4, 1.0 / eff), (5, 2.0), (6, 1.0 / mem_eff), (7, 2.0)):
            faster = list(args)
            faster[i] *= factor
            assert gemm_time(*faster) <= t * (1 + 1e-12), i


def test_gemm_time_edge_inputs():
    h100 = (1e15, 0.8, 1e12, 0.85)  # peak, eff, HBM, memory efficiency
    # an SRAM smaller than one element: tile side clamps to 1 (every operand re-read), finite
    args = (64.0, 64.0, 64.0, *h100, 1.0, 2.0, 132.0, 32768.0, 64.0)
    t = gemm_time(*args)
    assert np.isfinite(t) and t == gemm_time.py_func(*args)
    # memory-bound skinny GEMM (decode-like): the output-stationary traffic formula
    skinny = gemm_time(1.0, 8192.0, 8192.0, *h100, 50e6, 2.0, 0.0, 0.0, 0.0)
    x = (50e6 / (6 * 2.0)) ** 0.5  # tile side; A (1 x 8192) is re-read 8192 / x times
    traffic = 2.0 * (8192 * 8192 / x + 8192 * 8192 + 8192)
    assert skinny == pytest.approx(traffic / (1e12 * 0.85), rel=1e-12)
    # compute-bound square GEMM without unit information: peak x efficiency
    square = gemm_time(8192.0, 8192.0, 8192.0, 1e15, 0.8, 1e13, 0.85, 50e6, 2.0, 0.0, 0.0, 0.0)
    assert square == pytest.approx(2 * 8192.0**3 / (1e15 * 0.80), rel=1e-12)
    # an empty product costs nothing
    assert gemm_time(0.0, 4096.0, 4096.0, *h100, 50e6, 2.0, 132.0, 32768.0, 64.0) == 0.0


@pytest.mark.parametrize(
    ("m", "k", "n", "min_tm", "util"),
    [
        # (tile, k-block) work units: 128 x 256 tiles, k / 64 blocks each, on 132 units
        (128 * 132, 8192, 256, 64, 1.0),  # 132 tiles x 128 k-blocks: 128 full rounds
        (128 * 66, 8192, 512, 64, 1.0),  # same work, other shape
        (128, 8192, 256, 64, 128 / 132),  # one tile split over k: 128 of 132 units busy
        (128 * 133, 8192, 256, 64, 133 * 128 / (129 * 132)),  # one round of 17024 partly idle
        (128, 8192, 128, 64, 0.5 * 128 / 132),  # half a tile padded, split over k
        (128 * 264, 8192, 256 * 2, 64, 1.0),  # 528 tiles x 128 blocks: whole rounds
        # one k-block per tile: no split-K, plain wave quantisation over tiles
        (128, 64, 256, 64, 1 / 132),  # one tile: 131 units idle
        (128 * 133, 64, 256, 64, 133 / 264),  # one tile too many: a second, almost empty wave
        (128, 64, 128, 64, 1 / 264),  # half a tile on one unit
        (128 * 264, 64, 256 * 2, 64, 1.0),  # exactly four waves
        (128 * 132, 100, 256, 64, 1.0),  # k = 100: two k-blocks per tile, two full rounds
        # tile height: the one of 16..128 (>= min_tm) that pads m least
        (16, 64, 256 * 132, 0, 1.0),  # 16-row tiles: 132 of them, one full wave
        (16, 64, 256 * 132, 64, 0.25),  # Hopper's 64-row minimum: 132 tiles padded 4x
        (48, 64, 256, 0, 3 / 132),  # 48 rows: three 16-row tiles on 3 of 132 units
        (96, 64, 256 * 132, 0, 1.0),  # 96 = 3 x 32 (ties to the taller): 3 full rounds
        (16 * 132, 64, 256, 0, 0.25),  # 2112 = 33 x 64 exactly: 64-row tiles, 33 units
    ],
)
def test_gemm_time_wave_quantisation(m, k, n, min_tm, util):
    """util = (m n) / (padded tiles) x work units / (rounds x units), the work units being
    (tile, k-block) pairs (split-K / stream-K): see codesign.model.kernels.gemm."""
    peak, eff = 1e15, 0.8
    args = (float(m), float(k), float(n), peak, eff, 1e18, 1.0, 1e12, 2.0, 132.0,
            128.0 * 256.0, float(min_tm))
    assert gemm_time(*args) == pytest.approx(2 * m * k * n / (peak * eff * util), rel=1e-12)
    assert gemm_time.py_func(*args) == pytest.approx(gemm_time(*args), rel=RTOL)


def test_allreduce_time_is_the_faster_of_ring_and_tree():
    rng = np.random.default_rng(2)
    for n in (0, 1):  # no peers: nothing to do
        assert allreduce_time(1e9, n, 1e11, 1e-5) == 0.0
        assert allreduce_time.py_func(1e9, n, 1e11, 1e-5) == 0.0
    for _ in range(300):
        vol = 1e9 * rng.lognormal(0, 4)
        n = int(rng.integers(2, 4096))
        bw = 4.5e11 * rng.lognormal(0, 1)
        lat = 1e-5 * rng.lognormal(0, 1)
        t = allreduce_time(vol, n, bw, lat)
        assert t == pytest.approx(allreduce_time.py_func(vol, n, bw, lat), rel=RTOL)
        ring = 2 * (n - 1) / n * vol / bw + 2 * (n - 1) * lat
        tree = 2 * vol / bw + 2 * math.log2(n) * lat
        assert t == pytest.approx(min(ring, tree), rel=RTOL)
        # more bandwidth or less latency never hurts; bandwidths are used as given (no derating)
        assert allreduce_time(vol, n, 2 * bw, lat) <= t
        assert allreduce_time(vol, n, bw, lat / 2) <= t
        assert t >= 2 * (n - 1) / n * vol / bw * (1 - 1e-12)  # the bandwidth lower bound
    # two ranks: the ring (V/B + 2a) always wins; many ranks, tiny message: the tree wins
    assert allreduce_time(1e9, 2, 1e11, 0.0) == pytest.approx(1e9 / 1e11, rel=RTOL)
    assert allreduce_time(1e3, 1024, 1e11, 1e-5) == pytest.approx(2e3 / 1e11 + 20 * 1e-5,
                                                                  rel=RTOL)


def _group_reference(vol, n, stride, domain, up, out, up_lat, out_lat):
    """Hierarchical all-reduce written out: k = the largest divisor of n that fits the
    domain's share of the group (domain // stride), inside first, then n/k shards outside."""
    if n <= 1:
        return 0.0
    k = max(d for d in range(1, n + 1) if n % d == 0 and d <= max(1, domain // stride))
    t = allreduce_time(vol, k, up, up_lat)
    if n // k > 1:
        t += allreduce_time(vol / k, n // k, out, out_lat)
    return t


def test_group_allreduce_time_matches_py_func_and_limits():
    rng = np.random.default_rng(3)
    up, out, up_lat, out_lat = 4.5e11, 5e10, 2e-6, 1e-5
    assert group_allreduce_time(1e9, 1, 1, 8, up, out, up_lat, out_lat) == 0.0
    for _ in range(300):
        vol = 1e9 * rng.lognormal(0, 1)
        n = int(rng.integers(1, 300))
        stride = int(rng.choice([1, 2, 3, 4, 8, 16]))
        domain = int(rng.choice([1, 2, 4, 6, 8, 16, 72, 256]))
        args = (vol, n, stride, domain, up, out, up_lat, out_lat)
        t = group_allreduce_time(*args)
        assert t == pytest.approx(group_allreduce_time.py_func(*args), rel=RTOL)
        assert np.isfinite(t) and t >= 0
        assert t == pytest.approx(_group_reference(*args), rel=RTOL)
        if n > 1 and stride * n <= domain:  # whole group inside one scale-up domain
            assert t == pytest.approx(allreduce_time(vol, n, up, up_lat), rel=RTOL)
        if n > 1 and domain // stride <= 1:  # one rank per domain: all over the NIC
            assert t == pytest.approx(allreduce_time(vol, n, out, out_lat), rel=RTOL)


SWITCHED = (L.TOPO_FAT_TREE, L.TOPO_RAIL, L.TOPO_DRAGONFLY)


@pytest.mark.parametrize(
    ("topo", "domain", "expected"),
    [
        (L.TOPO_TORUS2, 16, {2: 1 / 2, 4: 1 / 2, 8: 1.0, 16: 1.0}),  # 4 x 4
        (L.TOPO_TORUS2, 64, {2: 1 / 2, 8: 1 / 2, 16: 1.0, 64: 1.0}),  # 8 x 8
        (L.TOPO_TORUS2, 256, {16: 1 / 2, 32: 1.0, 256: 1.0}),  # 16 x 16
        (L.TOPO_TORUS3, 8, {2: 1 / 3, 4: 2 / 3, 8: 1.0}),  # 2 x 2 x 2
        (L.TOPO_TORUS3, 27, {3: 1 / 3, 9: 2 / 3, 27: 1.0}),  # 3 x 3 x 3
        *((t, d, {g: 1.0 for g in (1, 2, 8, 72)}) for t in SWITCHED for d in (8, 72)),
    ],
)
def test_scaleup_bw_switched_and_torus(topo, domain, expected):
    for group, share in expected.items():
        assert scaleup_bw(group, 3e11, topo, domain) == pytest.approx(3e11 * share, rel=RTOL)
        assert scaleup_bw.py_func(group, 3e11, topo, domain) == pytest.approx(
            3e11 * share, rel=RTOL)
    # wider groups span more dimensions: never less bandwidth, never more than the links
    shares = [scaleup_bw(g, 1.0, topo, domain) for g in range(1, domain + 1)]
    assert all(a <= b for a, b in itertools.pairwise(shares))
    assert 0 < min(shares) and max(shares) <= 1.0


@pytest.mark.parametrize(("domain", "side"), [(64, 4), (125, 5), (1000, 10), (4096, 16)])
def test_scaleup_bw_torus3d_group_filling_one_dimension(domain, side):
    assert scaleup_bw(side, 1.0, L.TOPO_TORUS3, domain) == pytest.approx(1 / 3, rel=RTOL)
    assert scaleup_bw(side * side, 1.0, L.TOPO_TORUS3, domain) == pytest.approx(2 / 3, rel=RTOL)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((-1, 1, 8, True), [1, 2, 4, 8]),
        ((-1, 1, 6, True), [1, 2, 4]),
        ((-1, 1, 1, True), [1]),
        ((-1, 0, 2, False), [0, 1, 2]),
        ((-1, 1, 5, False), [1, 2, 3, 4, 5]),
        ((-1, 1, 0, False), []),  # empty range: no candidate
        ((3, 1, 8, True), [3]),  # a fixed value is taken as is, even outside the range
        ((0, 1, 8, False), [0]),
    ],
)
def test_choices_matches_py_func(args, expected):
    got = _choices(*args)
    assert got.dtype == np.int64
    assert got.tolist() == expected
    assert _choices.py_func(*args).tolist() == expected


@pytest.mark.parametrize("model", [*MODELS, "llama3-405b", "mtnlg-530b", TINY, TINY_MOE],
                         ids=lambda m: m if isinstance(m, str) else m.name)
def test_gemm_flops_per_token_counts_the_active_weights(model):
    m = get_model(model) if isinstance(model, str) else model
    arr = pack.model_array(m)
    # two FLOPs per active weight that a GEMM touches: everything but the input embedding
    emb_in = 0 if m.tied_embeddings else m.vocab * m.hidden
    expected = 2.0 * (m.params_active() - emb_in)
    assert _gemm_flops_per_token(arr) == pytest.approx(expected, rel=1e-12)
    assert _gemm_flops_per_token.py_func(arr) == pytest.approx(expected, rel=1e-12)


# ---- eval_mapping: random realistic inputs -------------------------------------------------
def test_eval_mapping_matches_py_func_on_random_cases():
    rng = np.random.default_rng(20240601)
    seen: dict[int, int] = {}
    ok_with = dict.fromkeys(("tp", "pp", "dp", "cp", "ep", "vpp"), 0)
    ok_mode = dict.fromkeys(("epo", "hsdp", "offload", "selective"), 0)
    ok_topo = dict.fromkeys(range(len(TOPOLOGIES)), 0)
    ok_unfused = 0
    throttled = 0
    for _ in range(600):
        arrays, mp = random_case(rng)
        status, out = eval_both(arrays, mp)
        at_peak, _ = eval_at_both(arrays, mp)  # the evaluator inside, also as Python
        assert status == at_peak or at_peak == L.S_POWER
        seen[status] = seen.get(status, 0) + 1
        if status == L.S_OK:
            assert_ok_outputs(arrays, mp, out)
            throttled += int(out[L.O_CLOCK] < 1.0)
            assert (out[L.O_CLOCK] < 1.0) == (at_peak == L.S_POWER)
            for k in ok_with:
                ok_with[k] += int(mp[getattr(L, f"P_{k.upper()}")] > 1)
            ok_mode["epo"] += int(mp[L.P_EPO] == 1)
            ok_mode["hsdp"] += int(mp[L.P_HSDP] == 1)
            ok_mode["offload"] += int(mp[L.P_RECOMPUTE] == 3)
            ok_mode["selective"] += int(mp[L.P_RECOMPUTE] == 1)
            ok_topo[int(arrays[1][L.K_TOPOLOGY])] += 1
            ok_unfused += int(arrays[3][L.J_ATTN] == 1)
        elif status in (L.S_INVALID, L.S_NO_BW, L.S_NO_COMPUTE, L.S_BAD_INPUT):
            assert not np.any(out), "early returns leave out zeroed"
    # the draw must exercise the interesting outcomes, not only rejections
    assert seen.get(L.S_OK, 0) >= 60, seen
    for s in (L.S_INVALID, L.S_OOM, L.S_NO_COMPUTE):
        assert seen.get(s, 0) >= 5, seen
    assert min(ok_with.values()) >= 5, ok_with  # every parallelism kind feasible somewhere
    assert min(ok_mode.values()) >= 3, ok_mode  # overlap, hybrid sharding, recompute modes
    assert min(ok_topo.values()) >= 5, ok_topo  # every topology feasible somewhere
    assert ok_unfused >= 5
    assert throttled >= 5  # perturbed TDPs: some chips run below their peak clock


def _pruning_rate(chip: np.ndarray, job: np.ndarray) -> float:
    """Sustained GEMM FLOP/s the search's branch and bound assumes for the job's precision."""
    prec = int(job[L.J_PREC])
    col = (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4)[prec]
    eff = chip[L.C_GEMM_EFF] if prec <= 2 else chip[L.C_GEMM_EFF_LOWP]
    return chip[col] * eff


def test_search_lower_bound_never_exceeds_a_feasible_step():
    """The bound that lets the search prune (fwd + bwd GEMM FLOPs of the whole step at
    sustained peak, spread over the chips in use) is below every feasible step time: pruning
    can never drop the optimum."""
    rng = np.random.default_rng(12)
    n_ok = 0
    for _ in range(600):
        arrays, mp = random_case(rng)
        st, out = run_eval(eval_mapping, arrays, mp)
        if st != L.S_OK:
            continue
        n_ok += 1
        chip, _cluster, model, job = arrays
        n_used = mp[L.P_TP] * mp[L.P_CP] * mp[L.P_PP] * mp[L.P_DP]
        work = 3.0 * _gemm_flops_per_token(model) * job[L.J_SEQ] * job[L.J_GBATCH]
        bound = work / (_pruning_rate(chip, job) * n_used)
        assert bound < out[L.O_STEP_S], (mp.tolist(), bound, out[L.O_STEP_S])
    assert n_ok >= 60


# ---- eval_mapping: edge inputs ---------------------------------------------------------------
def test_zero_scaleup_bandwidth_rejects_groups_inside_the_domain():
    arrays = case(chip_arr(C_UP_BPS=0.0), n_chips=16)
    assert arrays[0][L.C_DOMAIN] == 8
    assert eval_both(arrays, mapping(tp=2, dp=1))[0] == L.S_NO_BW
    assert eval_both(arrays, mapping(tp=8, dp=2))[0] == L.S_NO_BW
    assert eval_both(arrays, mapping(dp=2, mb=1))[0] == L.S_NO_BW  # DP inside the domain
    # one chip needs no network at all
    st, out = eval_both(case(chip_arr(C_UP_BPS=0.0), n_chips=8, model=TINY), mapping())
    assert st == L.S_OK
    assert_ok_outputs(case(chip_arr(C_UP_BPS=0.0), n_chips=8, model=TINY), mapping(), out)


def test_zero_scaleup_bandwidth_pipeline_inside_domain_is_no_bw():
    arrays = case(chip_arr(C_UP_BPS=0.0), n_chips=8, model=TINY)
    st, _ = eval_both(arrays, mapping(pp=2))
    assert st == L.S_NO_BW


@pytest.mark.parametrize("model", [TINY, "llama3-8b"], ids=["fits-one-chip", "needs-many"])
def test_zero_scaleup_bandwidth_search_finds_tp1_or_reports_no_bw(model):
    arrays = case(chip_arr(C_UP_BPS=0.0), n_chips=8, model=model)
    st, mp, out, counts = run_search(search_mappings, arrays)
    assert st in (L.S_OK, L.S_NO_BW)
    if st == L.S_OK:
        assert mp[L.P_TP] == 1 and mp[L.P_DP] == 1 and mp[L.P_PP] == 1
        assert_ok_outputs(arrays, mp, out)
    else:
        assert counts[L.S_OK] == 0


def test_zero_nic_bandwidth_limits_mappings_to_one_domain():
    chip = chip_arr(C_OUT_BPS=0.0)
    arrays = case(chip, n_chips=32)
    assert eval_both(arrays, mapping(dp=16, mb=2))[0] == L.S_NO_BW  # crosses domains
    assert eval_both(arrays, mapping(tp=16, dp=2))[0] == L.S_NO_BW  # tp wider than the domain
    assert eval_both(arrays, mapping(pp=16, dp=2))[0] == L.S_NO_BW
    st, out = eval_both(arrays, mapping(tp=8, dp=1, rc=2, zero=1))  # fits the domain
    assert st == L.S_OK
    assert_ok_outputs(arrays, mapping(tp=8, dp=1, rc=2, zero=1), out)
    # the search then uses at most one scale-up domain of the 32 chips
    st, mp, out, counts = search_both(arrays)
    assert st == L.S_OK
    assert out[L.O_N_USED] <= 8
    assert counts[L.S_NO_BW] > 0
    assert_ok_outputs(arrays, mp, out)


def test_one_chip():
    arrays = case(n_chips=1, model=TINY, gbatch=8)
    st, out = eval_both(arrays, mapping(mb=2))
    assert st == L.S_OK
    assert_ok_outputs(arrays, mapping(mb=2), out)
    assert out[L.O_T_TP] == out[L.O_T_DP] == out[L.O_T_BUBBLE] == out[L.O_T_PP] == 0.0
    assert eval_both(arrays, mapping(tp=2))[0] == L.S_INVALID  # needs two chips
    st, mp, out, counts = search_both(arrays)
    assert st == L.S_OK
    assert mp[L.P_TP] == mp[L.P_PP] == mp[L.P_DP] == 1
    assert counts[L.S_OK] == counts.sum()  # every candidate runs on the one chip
    assert_ok_outputs(arrays, mp, out)


def test_huge_model_does_not_fit():
    arrays = case(n_chips=8, model="mtnlg-530b", gbatch=64)
    st, mp, out, counts = search_both(arrays)
    assert st == L.S_OOM
    assert counts[L.S_OK] == 0 and counts[L.S_OOM] == counts[1:].max()
    assert not np.any(mp) and not np.any(out)
    res = pack.result_from_arrays(st, mp, out, counts, 8)
    assert not res.feasible
    assert res.reason.startswith(pack.STATUS_REASONS[L.S_OOM])
    assert f"{counts.sum()} candidates" in res.reason
    # a single mapping whose model states alone (18 bytes per parameter: 530B / 8 chips x 18
    # = 1.2 TB) exceed the 80 GB of HBM is S_OOM before anything is timed: every timing
    # output 0, its memory by term reported (the offload search bounds with them)
    mp = mapping(tp=8, zero=3)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OOM and out[L.O_STEP_S] == 0 and out[L.O_CHIP_W] == 0
    assert not np.any(out[L.O_T_COMPUTE:L.O_T_PP + 1])
    states = out[L.O_MEM_WEIGHTS] + out[L.O_MEM_GRADS] + out[L.O_MEM_OPT]
    assert states == pytest.approx(530e9 / 8 * (2 + 4 + 12), rel=0.02)  # tp 8, dp 1
    roomy = arrays[0].copy()
    roomy[L.C_HBM_B], roomy[L.C_TDP_W] = 1e18, np.inf
    st, out = eval_both((roomy, *arrays[1:]), mp)
    assert st == L.S_OK
    states = out[L.O_MEM_WEIGHTS] + out[L.O_MEM_GRADS] + out[L.O_MEM_OPT]
    big_model = get_model("mtnlg-530b")
    embedding = big_model.vocab * big_model.hidden
    assert (18.0 * (big_model.params_total() - embedding) / 8 <= states
            <= 18.0 * big_model.params_total() / 8)
    assert states + BUFFER_B > arrays[0][L.C_HBM_B]


def test_no_fp8_compute_at_fp8():
    arrays = case(chip_arr("a100-sxm-80gb"), precision="fp8")
    assert arrays[0][L.C_FLOPS_FP8] == 0.0
    assert eval_both(arrays, mapping(tp=8, dp=1))[0] == L.S_NO_COMPUTE
    st, _mp, _out, counts = search_both(arrays)
    assert st == L.S_NO_COMPUTE
    assert counts[L.S_NO_COMPUTE] == counts.sum() > 0
    # an unknown (NaN) fp4 peak is "no compute" too, not NaN outputs
    arrays = case(chip_arr("h100-sxm"), precision="fp4")
    assert np.isnan(arrays[0][L.C_FLOPS_FP4]) or arrays[0][L.C_FLOPS_FP4] == 0.0
    assert eval_both(arrays, mapping(tp=8, dp=1))[0] == L.S_NO_COMPUTE


@pytest.mark.parametrize("col", range(L.CHIP_LEN), ids=lambda c: f"chip[{c}]")
def test_nan_in_chip_never_reaches_a_feasible_result(col):
    chip = chip_arr(C_DOMAIN=4.0)
    chip[col] = np.nan
    arrays = case(chip, n_chips=8, model=TINY, gbatch=16)
    for mp in (mapping(), mapping(tp=2, dp=2, mb=2), mapping(pp=2, dp=2), mapping(dp=8, zero=3),
               mapping(tp=4, pp=2)):
        st, out = eval_both(arrays, mp)
        if st == L.S_OK:
            assert_ok_outputs(arrays, mp, out)
    st, mp, out, counts = search_both(arrays)
    assert counts.sum() > 0
    if st == L.S_OK:
        assert_ok_outputs(arrays, mp, out)


@pytest.mark.parametrize("col", [L.K_PUE, L.K_HOST_W], ids=["pue", "host_w"])
def test_nan_in_cluster_never_reaches_a_feasible_result(col):
    arrays = case(n_chips=8, model=TINY, gbatch=16)
    arrays[1][col] = np.nan
    st, out = eval_both(arrays, mapping(dp=8, mb=2))
    assert st != L.S_OK or np.all(np.isfinite(out))


INVALID_MAPPINGS = [
    ({"tp": 0}, "tp = 0"),
    ({"pp": 0}, "pp = 0"),
    ({"dp": 0}, "dp = 0"),
    ({"cp": 0}, "cp = 0"),
    ({"mb": 0}, "micro-batch = 0"),
    ({"vpp": 0}, "vpp = 0"),
    ({"ep": 0}, "ep = 0"),
    ({"tp": -2}, "negative tp"),
    ({"rc": 4}, "recompute out of range"),
    ({"rc": -1}, "negative recompute"),
    ({"zero": 4}, "ZeRO stage out of range"),
    ({"sp": 2}, "sequence parallel not 0/1"),
    ({"tp": 3}, "tp does not divide 32 heads"),
    ({"tp": 16}, "more chips than the cluster has (tp)"),
    ({"dp": 3}, "dp * micro-batch does not divide the batch of 32"),
    ({"dp": 4, "mb": 16}, "dp * micro-batch > batch"),
    ({"dp": 16}, "more chips than the cluster has (dp)"),
    ({"pp": 33}, "more stages than layers"),
    ({"cp": 3}, "cp does not divide the sequence"),
    ({"pp": 1, "vpp": 2}, "interleaving without a pipeline"),
    ({"pp": 4, "vpp": 2, "mb": 16}, "interleaving with 2 micro-batches on 4 stages"),
    ({"pp": 2, "vpp": 32}, "more virtual stages than layers"),
    ({"ep": 2}, "expert parallel on a dense model"),
    ({"epo": 1, "dp": 2, "mb": 2}, "all-to-all overlap on a dense model"),
    ({"epo": 2}, "all-to-all overlap not 0/1"),
    ({"hsdp": 1, "dp": 8, "zero": 2}, "hybrid sharding without ZeRO-3"),
    ({"hsdp": 1, "dp": 8, "zero": 3}, "hybrid sharding inside one scale-up domain"),
    ({"hsdp": 2, "dp": 8, "zero": 3}, "hybrid sharding not 0/1"),
]


@pytest.mark.parametrize(("kw", "what"), INVALID_MAPPINGS, ids=[w for _, w in INVALID_MAPPINGS])
def test_invalid_mapping_values(kw, what):
    arrays = case(n_chips=8, gbatch=32)
    st, out = eval_both(arrays, mapping(**kw))
    assert st == L.S_INVALID, what
    assert not np.any(out)


SEARCHABLE_INVALID = [(kw, w) for kw, w in INVALID_MAPPINGS  # negative = "search this field"
                      if not any(kw.get(k, 1) <= 0 for k in ("tp", "pp", "dp", "cp"))
                      and min(kw.values()) >= 0]


@pytest.mark.parametrize(("kw", "what"), SEARCHABLE_INVALID,
                         ids=[w for _, w in SEARCHABLE_INVALID])
def test_search_with_fixed_invalid_values_finds_nothing(kw, what):
    arrays = case(n_chips=8, gbatch=32)
    st, mp, out, counts = search_both(arrays, mapping(**kw))
    assert st in (L.S_INVALID, L.S_NO_CANDIDATE), what
    assert counts[L.S_OK] == 0
    assert st == L.S_NO_CANDIDATE or counts[L.S_INVALID] == counts.sum()
    assert not np.any(mp) and not np.any(out)


@pytest.mark.parametrize("field", ["tp", "pp", "dp", "cp"])
def test_search_with_fixed_zero_degree_is_a_status(field):
    arrays = case(n_chips=8, gbatch=32)
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    fixed[getattr(L, f"P_{field.upper()}")] = 0
    st, _mp, _out, counts = run_search(search_mappings, arrays, fixed)
    assert st in (L.S_INVALID, L.S_NO_CANDIDATE)
    assert counts[L.S_OK] == 0


def test_invalid_moe_expert_parallel():
    arrays = case(n_chips=64, model="mixtral-8x7b", gbatch=64)
    assert eval_both(arrays, mapping(dp=6, ep=3, mb=1))[0] == L.S_INVALID  # 8 experts % 3
    assert eval_both(arrays, mapping(dp=2, ep=4, mb=1))[0] == L.S_INVALID  # (cp dp) % ep
    # expert parallelism folds over cp x dp: ep = 4 on dp = 2, cp = 2 is a valid layout
    assert eval_both(arrays, mapping(dp=2, cp=2, ep=4, mb=1))[0] != L.S_INVALID
    # the all-to-all overlap needs expert parallelism and two micro-batches to overlap
    assert eval_both(arrays, mapping(dp=8, ep=1, mb=1, epo=1))[0] == L.S_INVALID
    assert eval_both(arrays, mapping(dp=8, ep=8, mb=8, epo=1))[0] == L.S_INVALID  # m = 1
    assert eval_both(arrays, mapping(dp=8, ep=8, mb=4, epo=1))[0] != L.S_INVALID  # m = 2


@pytest.mark.parametrize(
    ("target", "col", "value"),
    [
        ("chip", L.C_HBM_BPS, 0.0),
        ("chip", L.C_SRAM_B, -1.0),
        ("chip", L.C_HBM_B, 0.0),
        ("chip", L.C_TDP_W, -5.0),
        ("chip", L.C_DOMAIN, 0.0),
        ("cluster", L.K_N_CHIPS, 0.0),
        ("cluster", L.K_OVERSUB, 0.5),
        ("model", L.M_LAYERS, 0.0),
        ("model", L.M_HEADS, np.nan),
        ("job", L.J_SEQ, 0.0),
        ("job", L.J_BYTES, 0.0),
        ("chip", L.C_GEMM_EFF, 0.0),
        ("chip", L.C_GEMM_EFF, 1.5),
        ("chip", L.C_ATTN_EFF, np.nan),
        ("chip", L.C_MEM_EFF, -0.5),
        ("chip", L.C_NET_EFF, 2.0),
        ("chip", L.C_KERNEL_S, -1e-6),
        ("cluster", L.K_UP_LAT_S, -1e-6),
        ("cluster", L.K_OUT_LAT_S, np.nan),
        ("cluster", L.K_PUE, 0.9),
    ],
)
def test_bad_input_is_a_status(target, col, value):
    arrays = list(case(n_chips=8, model=TINY, gbatch=16))
    arrays[("chip", "cluster", "model", "job").index(target)][col] = value
    assert eval_both(tuple(arrays), mapping())[0] == L.S_BAD_INPUT


def test_low_precision_efficiency_is_checked_only_for_low_precision_jobs():
    chip = chip_arr(C_GEMM_EFF_LOWP=0.0)
    assert eval_both(case(chip, model=TINY, gbatch=16, precision="fp8"), mapping())[0] == (
        L.S_BAD_INPUT)
    st, out = eval_both(case(chip, model=TINY, gbatch=16), mapping())  # bf16: not used
    assert st == L.S_OK
    assert_ok_outputs(case(chip, model=TINY, gbatch=16), mapping(), out)




# ---- monotonicity and orderings (hold by construction of the model) --------------------------
FASTER = [
    ("hbm_bw", L.C_HBM_BPS),
    ("sram", L.C_SRAM_B),
    ("scaleup_bw", L.C_UP_BPS),
    ("nic_bw", L.C_OUT_BPS),
]


def _valid_random_ok(rng, n: int, zero_stages, cps=(1,), epo=None):
    """``n`` random (arrays, mapping, out) with status S_OK, ZeRO stage in ``zero_stages`` and
    context parallel degree in ``cps`` (and the all-to-all overlap ``epo`` if given)."""
    found = []
    while len(found) < n:
        arrays, mp = random_case(rng)
        mp[L.P_ZERO] = int(rng.choice(zero_stages))
        mp[L.P_CP] = int(rng.choice(cps))
        if epo is not None:
            mp[L.P_EPO] = epo
        st, out = run_eval(eval_mapping, arrays, mp)
        if st == L.S_OK:
            found.append((arrays, mp, out))
    return found


def _peak_cols(job: np.ndarray) -> list[int]:
    """Peak columns a job reads: its GEMM precision and the 16-bit attention rate."""
    prec = int(job[L.J_PREC])
    gemm = (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4)[prec]
    return sorted({gemm, L.C_FLOPS_FP32 if prec == 0 else L.C_FLOPS_BF16})


def _run_changed(arrays, mp, target: int, changes: dict[int, float]):
    """eval_mapping with some columns of arrays[target] multiplied (efficiencies capped at 1)."""
    changed = [a.copy() for a in arrays]
    for col, factor in changes.items():
        changed[target][col] *= factor
        if target == 0 and col in EFF_COLS:
            changed[target][col] = min(1.0, changed[target][col])
    return run_eval(eval_mapping, tuple(changed), mp)


def _check_faster_hardware(cases) -> None:
    for arrays, mp, out in cases:
        _chip, _cluster, _model, job = arrays
        # lift the power limit: at a fixed TDP a faster chip may exceed it (S_POWER), which is
        # a separate, physical effect; the baseline is re-run unthrottled
        _chip[L.C_TDP_W] = np.inf
        _, out = run_eval(eval_mapping, arrays, mp)
        step = out[L.O_STEP_S]
        all_peaks = dict.fromkeys(
            (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4), 2.0)
        changes = [(name, {col: 2.0}) for name, col in FASTER]
        changes += [("peak", dict.fromkeys(_peak_cols(job), 2.0)), ("all peaks", all_peaks)]
        changes += [(f"eff[{col}]", {col: 1.25}) for col in EFF_COLS]
        changes += [("kernel_s", {L.C_KERNEL_S: 0.5})]
        for name, change in changes:
            st2, out2 = _run_changed(arrays, mp, 0, change)
            assert st2 == L.S_OK, name
            assert out2[L.O_MEM_B] == out[L.O_MEM_B], name  # memory does not depend on speed
            assert out2[L.O_STEP_S] <= step * (1 + 1e-12), (name, mp.tolist())
        for col in (L.K_UP_LAT_S, L.K_OUT_LAT_S, L.K_OVERSUB):
            st2, out2 = _run_changed(arrays, mp, 1, {col: 2.0})
            assert st2 == L.S_OK
            assert out2[L.O_STEP_S] >= step * (1 - 1e-12)
        st2, out2 = _run_changed(arrays, mp, 0, {L.C_HBM_B: 2.0})
        assert st2 == L.S_OK and out2[L.O_STEP_S] == step  # capacity: what fits, not speed


def test_faster_hardware_never_slows_a_fixed_mapping():
    """Doubling HBM bandwidth, peak FLOP/s (all precisions at once), SRAM or link bandwidth, or
    raising any efficiency, never increases step time; doubling latencies or the fat-tree taper
    never decreases it (ZeRO 0-2). The overlapped all-to-all is off here: it breaks the
    property (test_faster_hardware_never_slows_an_overlapped_all_to_all below)."""
    _check_faster_hardware(_valid_random_ok(np.random.default_rng(7), 150, [0, 1, 2], epo=0))


def test_faster_hardware_never_slows_an_overlapped_all_to_all():
    """The same property on the mappings of the test above that overlap the all-to-all
    (same draw, P_EPO = 1 as drawn)."""
    cases = [c for c in _valid_random_ok(np.random.default_rng(7), 150, [0, 1, 2])
             if c[1][L.P_EPO] == 1]
    assert len(cases) >= 3
    _check_faster_hardware(cases)


def test_links_never_slow_a_fixed_mapping_with_zero3_or_cp():
    rng = np.random.default_rng(8)
    for arrays, mp, out in _valid_random_ok(rng, 100, [0, 1, 2, 3], cps=(1, 2, 4)):
        arrays[0][L.C_TDP_W] = np.inf  # timing only: lift the power limit (and re-run)
        _, out = run_eval(eval_mapping, arrays, mp)
        for _name, col in [*FASTER[2:], ("net_eff", L.C_NET_EFF)]:  # links and their use
            st2, out2 = _run_changed(arrays, mp, 0, {col: 1.5})
            assert st2 == L.S_OK and out2[L.O_STEP_S] <= out[L.O_STEP_S] * (1 + 1e-12)


@pytest.mark.parametrize("col", [L.C_FLOPS_BF16, L.C_HBM_BPS, L.C_ATTN_EFF, L.C_GEMM_EFF],
                         ids=["peak", "hbm_bw", "attn_eff", "gemm_eff"])
def test_faster_chip_never_slows_a_fixed_zero3_mapping(col):
    arrays = case(chip_arr(), n_chips=64, model="llama3-8b", seq=2048, gbatch=64)
    mp = mapping(tp=1, dp=64, mb=1, rc=1, zero=3)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OK
    faster = arrays[0].copy()
    faster[col] = faster[col] * 2.0 if col not in EFF_COLS else 1.0
    st2, out2 = eval_both((faster, *arrays[1:]), mp)
    assert st2 == L.S_OK
    assert out2[L.O_STEP_S] <= out[L.O_STEP_S]


def test_faster_chip_never_slows_a_fixed_cp_mapping():
    """Context parallel overlaps the K/V ring with attention: faster attention exposes more of
    the ring but never makes the step slower."""
    arrays = case(chip_arr(), n_chips=64, model="llama3-8b", seq=8192, gbatch=16)
    mp = mapping(tp=8, cp=4, dp=2, mb=1, rc=2, zero=1)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OK
    for col in (L.C_FLOPS_BF16, L.C_ATTN_EFF, L.C_HBM_BPS):
        faster = arrays[0].copy()
        faster[col] = faster[col] * 2.0 if col != L.C_ATTN_EFF else 1.0
        st2, out2 = eval_both((faster, *arrays[1:]), mp)
        assert st2 == L.S_OK
        assert out2[L.O_STEP_S] <= out[L.O_STEP_S]


def test_topologies_never_beat_a_non_blocking_switched_fabric():
    """Same chip, same mapping: rail-optimised (lower latency) is never slower than a
    non-blocking fat-tree; dragonfly (tapered global links) and 2D/3D tori (a group gets only the
    links of the dimensions it spans) are never faster."""
    rng = np.random.default_rng(13)
    for arrays, mp, _out in _valid_random_ok(rng, 100, [0, 1, 2, 3], cps=(1, 2)):
        chip, cluster, model, job = arrays
        steps = {}
        for t in range(len(TOPOLOGIES)):
            cl = cluster.copy()
            cl[L.K_TOPOLOGY], cl[L.K_OVERSUB] = t, 1.0
            st, out = run_eval(eval_mapping, (chip, cl, model, job), mp)
            assert st == L.S_OK
            steps[TOPOLOGIES[t]] = out[L.O_STEP_S]
        fat = steps["fat-tree"]
        assert steps["rail-optimized"] <= fat * (1 + 1e-12)
        for name in ("dragonfly", "torus-2d", "torus-3d"):
            assert steps[name] >= fat * (1 - 1e-12), (name, mp.tolist())


def test_unfused_attention_never_faster_and_never_smaller():
    """The unfused kernel streams the s^2 scores through HBM and stores them: at 16-bit and
    fp8 (where it is bound by that traffic) never faster than flash (with ZeRO-3 and context
    parallelism see test_kernel_train_physics' overlap xfail), and strictly more memory in every
    precision and recompute mode: without recompute it keeps the scores, selective recompute
    under it drops exactly the scores (under flash it drops the norm and activation-function
    outputs as well), full and offloaded recompute rebuild the scores in their working set,
    and its frameworks keep fp32 logits.

    In fp32 the unfused products are compute-bound at the GEMM efficiency while flash pays
    its per-block overhead (attention.flash_util) and a 2.87x backward, so there the unfused
    kernel may be the faster one: no ordering is asserted for fp32 step times. Likewise on a
    perturbed chip with more HBM bandwidth per 16-bit FLOP than any packable catalog chip
    (MI250X's 0.0084 B/FLOP is the most) the score traffic is cheap and the unfused kernel
    may win at short sequences (test_unfused_attention_wins_only_where_traffic_is_cheap):
    the ordering is asserted within the catalog's range."""
    max_b_per_flop = max(chip_arr(c)[L.C_HBM_BPS] / chip_arr(c)[L.C_FLOPS_BF16]
                         for c in PACKABLE_CHIPS)
    rng = np.random.default_rng(14)
    n = 0
    by_rc = dict.fromkeys(range(4), 0)
    timed = 0
    while n < 100:
        arrays, mp = random_case(rng)
        chip, cluster, model, job = arrays
        chip[L.C_TDP_W] = np.inf  # timing and memory only: lift the power limit
        flash, unfused = job.copy(), job.copy()
        flash[L.J_ATTN], unfused[L.J_ATTN] = 0.0, 1.0
        chip_big = chip.copy()
        chip_big[L.C_HBM_B] = 1e15  # compare the two kernels on the same mapping
        st_f, out_f = run_eval(eval_mapping, (chip_big, cluster, model, flash), mp)
        if st_f != L.S_OK:
            continue
        n += 1
        by_rc[int(mp[L.P_RECOMPUTE])] += 1
        st_u, out_u = eval_both((chip_big, cluster, model, unfused), mp)
        assert st_u == L.S_OK
        b_per_flop = chip[L.C_HBM_BPS] / chip[L.C_FLOPS_BF16]
        if (job[L.J_PREC] >= 1 and not (mp[L.P_CP] > 1 and mp[L.P_ZERO] == 3)
                and b_per_flop <= max_b_per_flop):
            timed += 1
            assert out_u[L.O_T_ATTN] > out_f[L.O_T_ATTN], mp.tolist()
            assert out_u[L.O_STEP_S] >= out_f[L.O_STEP_S] * (1 - 1e-12), mp.tolist()
        assert out_u[L.O_MEM_B] > out_f[L.O_MEM_B], mp.tolist()
        assert out_u[L.O_MEM_ACT] > out_f[L.O_MEM_ACT], mp.tolist()
        assert out_u[L.O_MEM_LOGITS] == 2.0 * out_f[L.O_MEM_LOGITS]  # fp32 against 16-bit
    assert min(by_rc.values()) >= 5, by_rc
    assert timed >= 40


def test_unfused_attention_wins_only_where_traffic_is_cheap():
    """Unfused attention is bound by its score traffic through HBM: on H100 at a 1k causal
    sequence it is the slower kernel, and on a chip with 4x the bandwidth per FLOP (beyond
    any catalog chip) and flash at its short-sequence worst (1k causal, 0.49 of its rate is
    useful work), it becomes the faster one."""
    def attn_times(**chip_kw):
        out = {}
        for attn in (0.0, 1.0):
            arrays = case(chip_arr(C_HBM_B=1e15, C_TDP_W=np.inf, **chip_kw), n_chips=8,
                          model=get_model("gpt3-175b"), seq=1024, gbatch=8)
            arrays[3][L.J_ATTN] = attn
            st, o = run_eval(eval_mapping, arrays, mapping(8, 1, 1, 1, 1, 1, 1, 0, 0, 1))
            assert st == L.S_OK
            out[attn] = o[L.O_T_ATTN]
        return out
    h100 = attn_times()
    assert h100[1.0] > 1.5 * h100[0.0], h100
    rich = attn_times(C_HBM_BPS=4 * 3.35e12)
    assert rich[1.0] < rich[0.0], rich


@pytest.mark.parametrize("attention", ["flash", "unfused"])
def test_context_parallel_splits_the_attention_core_over_its_ranks(attention):
    """A context-parallel rank computes 1/cp of the sequence's (query, key) pairs: its
    attention-core time (O_T_ATTN) is 1/cp of the cp = 1 one, fused or not (the unfused
    kernel once divided its chunk's s/cp x s scores by cp again)."""
    arrays = case(chip_arr(C_HBM_B=1e15), n_chips=2, model=TINY, seq=4096, gbatch=2,
                  attention=attention)
    st1, out1 = eval_both(arrays, mapping(mb=1))
    st2, out2 = eval_both(arrays, mapping(cp=2, mb=1))
    assert st1 == st2 == L.S_OK
    assert out2[L.O_T_ATTN] == pytest.approx(out1[L.O_T_ATTN] / 2, rel=1e-9)


def test_unfused_score_memory_is_korthikanti_5as2b():
    """Recompute none, one chip: the unfused kernel adds 5 a s^2 b bytes per layer (softmax
    output, dropout mask and output; Korthikanti et al. 2022 Eq. 1) to the flash activations,
    and keeps the logits in fp32 (Megatron-LM 2021-22) instead of 16-bit (2 s b V more)."""
    m, seq, layers, mb = TINY, 2048, TINY.layers, 2
    fl = case(n_chips=1, model=m, seq=seq, gbatch=4)
    un = case(n_chips=1, model=m, seq=seq, gbatch=4, attention="unfused")
    mp = mapping(mb=mb)
    st_f, out_f = eval_both(fl, mp)
    st_u, out_u = eval_both(un, mp)
    assert st_f == st_u == L.S_OK
    extra = 5.0 * m.heads * seq * seq * mb * layers  # in flight: min(pp, m) = 1 micro-batch
    assert out_u[L.O_MEM_ACT] - out_f[L.O_MEM_ACT] == pytest.approx(extra, rel=1e-12)
    logits = (4.0 - 2.0) * seq * mb * m.vocab
    assert out_u[L.O_MEM_LOGITS] - out_f[L.O_MEM_LOGITS] == pytest.approx(logits, rel=1e-12)
    assert out_u[L.O_MEM_B] - out_f[L.O_MEM_B] == pytest.approx(extra + logits, rel=1e-12)


def test_more_zero_sharding_never_needs_more_memory():
    """Each ZeRO stage shards more of the model states (weights + gradients + optimizer) and
    leaves activations and logits alone; ZeRO-3 alone adds a buffer for the gathered weights of
    the layers in flight (memory.ZERO3_PREFETCH_LAYERS), so only stages 0-2 are monotone in
    total: with few layers per stage and a small dp group ZeRO-3 can need more than ZeRO-2."""
    rng = np.random.default_rng(9)
    zero3_more = 0
    for arrays, mp, _out in _valid_random_ok(rng, 80, [0]):
        outs = []
        for zero in range(4):
            mp2 = mp.copy()
            mp2[L.P_ZERO] = zero
            st, out = run_eval(eval_mapping, arrays, mp2)
            assert st in (L.S_OK, L.S_OOM, L.S_POWER)
            assert out[L.O_ZERO] == zero
            outs.append(out)
        mems = [o[L.O_MEM_B] for o in outs]
        assert all(a >= b for a, b in itertools.pairwise(mems[:3])), mems
        states = [o[L.O_MEM_WEIGHTS] + o[L.O_MEM_GRADS] + o[L.O_MEM_OPT] for o in outs]
        assert all(a >= b for a, b in itertools.pairwise(states)), states
        for o in outs[1:]:
            assert o[L.O_MEM_ACT] == outs[0][L.O_MEM_ACT]
            assert o[L.O_MEM_LOGITS] == outs[0][L.O_MEM_LOGITS]
        assert outs[0][L.O_MEM_BUFFER] == outs[1][L.O_MEM_BUFFER] == outs[2][L.O_MEM_BUFFER]
        assert outs[3][L.O_MEM_BUFFER] >= outs[2][L.O_MEM_BUFFER]
        assert mems[3] - outs[3][L.O_MEM_BUFFER] <= mems[2] - outs[2][L.O_MEM_BUFFER]
        zero3_more += int(mems[3] > mems[2])
    assert zero3_more > 0  # the draw does reach the case the docstring describes


def test_full_recompute_never_faster_than_none():
    rng = np.random.default_rng(10)
    for arrays, mp, _out in _valid_random_ok(rng, 80, [0, 1, 2]):
        steps = []
        for rc in (0, 2):
            mp2 = mp.copy()
            mp2[L.P_RECOMPUTE] = rc
            st, out = run_eval(eval_mapping, arrays, mp2)
            if st not in (L.S_OK, L.S_OOM):
                break
            steps.append(out[L.O_STEP_S])
        else:
            assert steps[1] >= steps[0] * (1 - 1e-12)


# ---- model bugs found while testing (fixed; these guard them) -------------------------------
def test_unfused_fp8_attention_uses_the_16bit_gemm_efficiency():
    """fp8 job, one chip, recompute none: step(unfused) - step(flash) is the attention-core
    difference only, which at the 16-bit rate must not depend on the fp8 GEMM efficiency."""
    def gap(lowp_eff: float) -> float:
        chip = chip_arr(C_GEMM_EFF_LOWP=lowp_eff, C_HBM_B=1e15)
        steps = []
        for attention in ("flash", "unfused"):
            arrays = case(chip, n_chips=1, model=TINY, seq=2048, gbatch=4, precision="fp8",
                          attention=attention)
            st, out = eval_both(arrays, mapping(mb=1))
            assert st == L.S_OK
            steps.append(out[L.O_STEP_S])
        return steps[1] - steps[0]

    assert gap(0.4) == pytest.approx(gap(0.8), rel=1e-9)


def test_step_time_is_continuous_in_the_clock():
    arrays = case(n_chips=64, model="llama3-8b", seq=8192, gbatch=512)
    mp = mapping(dp=64, mb=1, zero=3)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OK
    for factor in (1 - 5e-5, 1 + 5e-5):
        st2, out2 = _run_changed(arrays, mp, 0, {L.C_CLOCK_HZ: factor})
        assert st2 == L.S_OK
        assert out2[L.O_STEP_S] == pytest.approx(out[L.O_STEP_S], rel=1e-3), factor


# ---- search_mappings ------------------------------------------------------------------------
def _values(fixed_value: int, values) -> list[int]:
    return [int(fixed_value)] if fixed_value >= 0 else list(values)


def _pow2(hi: int) -> list[int]:
    return [v for v in (2**i for i in range(40)) if v <= hi]


def full_candidates(arrays, fixed=None):
    """The whole candidate space search_mappings' docstring promises, written out independently
    and without pruning: tp powers of 2 up to min(domain, heads); cp powers of 2 (<= 16) while
    seq / cp >= 2048; pp divisors of the layer count or powers of 2; dp divisors of the batch
    with tp*cp*pp*dp <= chips; micro-batches dividing the per-replica batch (<= 64); ep powers
    of 2 dividing the experts and cp*dp; vpp powers of 2 with layers % (pp*vpp) == 0 and the
    micro-batch count divisible by pp; every recompute mode (none, selective, full, offload)
    and ZeRO stage; the all-to-all overlap for MoE models with ep > 1 and >= 2 micro-batches;
    hybrid sharding for ZeRO-3 when the tp*dp*cp group spans scale-up domains; SP iff tp > 1.
    Fixed fields (>= 0 in ``fixed``) are taken as they are, unfiltered. The offload field is
    left at the fixed value or 0 (:func:`brute_force` tries the offloads)."""
    chip, cluster, model, job = arrays
    fixed = np.full(L.MAP_LEN, -1, np.int64) if fixed is None else fixed
    assert fixed.shape == (L.MAP_LEN,) == (13,)
    n = int(cluster[L.K_N_CHIPS])
    layers = int(model[L.M_LAYERS])
    experts = int(model[L.M_EXPERTS])
    gb = int(job[L.J_GBATCH])
    seq = int(job[L.J_SEQ])
    domain = max(1, int(chip[L.C_DOMAIN]))
    tp_max = max(1, min(domain, int(model[L.M_HEADS])))
    cp_max = max(c for c in _pow2(MAX_CP) if seq // c >= MIN_TOKENS_PER_CP_RANK or c == 1)
    free = {i: fixed[i] < 0 for i in range(L.MAP_LEN)}
    for tp in _values(fixed[L.P_TP], _pow2(tp_max)):
        for cp in _values(fixed[L.P_CP], _pow2(cp_max)):
            pps = [p for p in range(1, layers + 1) if layers % p == 0 or (p & (p - 1)) == 0]
            for pp in _values(fixed[L.P_PP], pps):
                if tp * cp * pp > n:
                    continue
                dps = range(1, n // (tp * cp * pp) + 1)
                for dp in _values(fixed[L.P_DP], [d for d in dps if gb % d == 0]):
                    per_dp = gb // dp if gb % dp == 0 else 0
                    mbs = range(1, min(per_dp, MAX_MICRO_BATCH) + 1)
                    for b in _values(fixed[L.P_MB], [x for x in mbs if per_dp % x == 0]):
                        n_micro = per_dp // b
                        eps = [e for e in _pow2(max(1, experts))
                               if experts % e == 0 and (cp * dp) % e == 0]
                        vpps = _pow2(max(1, layers // pp) if pp > 1 else 1)
                        if free[L.P_VPP]:
                            vpps = [v for v in vpps if v == 1 or (
                                layers % (pp * v) == 0 and n_micro % pp == 0)]
                        for ep in _values(fixed[L.P_EP], eps):
                            epos = [0, 1] if experts > 0 and ep > 1 and n_micro >= 2 else [0]
                            for vpp in _values(fixed[L.P_VPP], vpps):
                                for rc in _values(fixed[L.P_RECOMPUTE], range(4)):
                                    for zero in _values(fixed[L.P_ZERO], range(4)):
                                        spans = tp * dp * cp > domain
                                        hsdps = [0, 1] if zero == 3 and spans else [0]
                                        for epo in _values(fixed[L.P_EPO], epos):
                                            for hsdp in _values(fixed[L.P_HSDP], hsdps):
                                                sp = fixed[L.P_SP] if fixed[L.P_SP] >= 0 else None
                                                yield mapping(tp, pp, dp, cp, ep, vpp, b, rc,
                                                              zero, sp, epo, hsdp,
                                                              max(0, fixed[L.P_OFFLOAD]))


def brute_force(arrays, fixed=None):
    """(status counts, best step, its memory, candidate count) of the full enumeration; the
    offload searched as search_mappings' docstring promises: each mapping kept on the chip,
    and where that is out of memory, with every offload (1, 2, 3) its ZeRO stage allows
    (weights offload only under ZeRO 0 or 1)."""
    counts = np.zeros(L.N_STATUS, np.int64)
    best_step, best_mem = np.inf, np.inf
    out = np.zeros(L.OUT_LEN)
    free_off = fixed is None or fixed[L.P_OFFLOAD] < 0
    for mp in full_candidates(arrays, fixed):
        s = eval_mapping(*arrays, mp, out)
        counts[s] += 1
        tried = [(s, out[L.O_STEP_S], out[L.O_MEM_B])]
        if s == L.S_OOM and free_off:
            for off in (1, 2, 3):
                if off & 2 and mp[L.P_ZERO] > 1:
                    continue
                mp[L.P_OFFLOAD] = off
                s2 = eval_mapping(*arrays, mp, out)
                counts[s2] += 1
                tried.append((s2, out[L.O_STEP_S], out[L.O_MEM_B]))
        for s, step, mem in tried:
            if s == L.S_OK and (step, mem) < (best_step, best_mem):
                best_step, best_mem = step, mem
    return counts, best_step, best_mem


SEARCH_CASES = {
    "tiny-8chips-domain4": lambda: case(chip_arr(C_DOMAIN=4.0), n_chips=8, model=TINY,
                                        seq=1024, gbatch=24),
    "tiny-12chips-rail-cp": lambda: case(chip_arr("a100-sxm-40gb"), n_chips=12, model=TINY,
                                         seq=8192, gbatch=12, topology="rail-optimized"),
    "tiny-8chips-domain4-slow-nic": lambda: case(chip_arr(C_DOMAIN=4.0, C_OUT_BPS=1e9),
                                                 n_chips=8, model=TINY, seq=1024, gbatch=16),
    "tiny-16chips-no-nic": lambda: case(chip_arr(C_OUT_BPS=0.0, C_DOMAIN=4.0), n_chips=16,
                                        model=TINY, seq=1024, gbatch=16),
    "tiny-moe-16chips-torus2d": lambda: case(chip_arr(C_DOMAIN=16.0), n_chips=16,
                                             model=TINY_MOE, seq=4096, gbatch=32,
                                             topology="torus-2d"),
    "tiny-8chips-unfused-dragonfly": lambda: case(chip_arr(C_DOMAIN=2.0), n_chips=8, model=TINY,
                                                  seq=2048, gbatch=16, attention="unfused",
                                                  topology="dragonfly"),
    "llama8b-8xh100": lambda: case(n_chips=8, model="llama3-8b", seq=4096, gbatch=16),
    "llama8b-32xh100-fp8-torus3d": lambda: case(n_chips=32, model="llama3-8b", seq=8192,
                                                gbatch=32, precision="fp8",
                                                topology="torus-3d"),
    "llama70b-64xa100-oversub": lambda: case(chip_arr("a100-sxm-80gb"), n_chips=64,
                                             model="llama3-70b", seq=4096, gbatch=64,
                                             oversubscription=2.0),
    "llama8b-8xh100-seq32k": lambda: case(n_chips=8, model="llama3-8b", seq=32768, gbatch=8),
    "llama70b-64xa100-slow-nic": lambda: case(chip_arr("a100-sxm-40gb", C_OUT_BPS=5e9),
                                              n_chips=64, model="llama3-70b", seq=4096,
                                              gbatch=128),
    "gpt3-64xa100": lambda: case(chip_arr("a100-sxm-80gb"), n_chips=64, model="gpt3-175b",
                                 seq=2048, gbatch=64),
    # 64 GB: with tp 1 and ZeRO-3 full recompute needs 66.5 GB, offloading it 60.7 GB
    "gpt3-64x64gb": lambda: case(chip_arr("a100-sxm-80gb", C_HBM_B=64e9), n_chips=64,
                                 model="gpt3-175b", seq=2048, gbatch=64),
    "mixtral-16xh200": lambda: case(chip_arr("h200"), n_chips=16, model="mixtral-8x7b",
                                    seq=4096, gbatch=32),
    "gpt3-8xh100-oom": lambda: case(n_chips=8, model="gpt3-175b", seq=2048, gbatch=8),
    "mixtral-4xa100-oom": lambda: case(chip_arr("a100-sxm-40gb"), n_chips=4,
                                       model="mixtral-8x7b", seq=8192, gbatch=8),
    "tiny-fp8-on-a100": lambda: case(chip_arr("a100-sxm-80gb"), n_chips=8, model=TINY,
                                     seq=4096, gbatch=8, precision="fp8"),
}


def _check_search_against_brute_force(arrays, fixed=None):
    st, best_mp, best_out, counts = search_both(arrays, fixed)
    full_counts, best_step, best_mem = brute_force(arrays, fixed)
    n_full = int(full_counts.sum())
    assert n_full > 0
    assert 0 < counts.sum() <= n_full  # pruning only ever skips candidates
    if np.isfinite(best_step):
        assert st == L.S_OK
        assert counts[L.S_OK] >= 1
        assert best_out[L.O_STEP_S] == best_step  # the minimum of the full space, exactly
        assert best_out[L.O_MEM_B] == best_mem  # ties broken by memory
        st2, out2 = run_eval(eval_mapping, arrays, best_mp)  # the reported mapping gives it
        assert st2 == L.S_OK
        np.testing.assert_array_equal(out2, best_out)
        assert_ok_outputs(arrays, best_mp, best_out)
        if fixed is not None:
            free = fixed < 0
            np.testing.assert_array_equal(best_mp[~free], fixed[~free])
    else:
        # nothing feasible: nothing to prune with, so the whole space was evaluated
        np.testing.assert_array_equal(counts, full_counts)
        assert counts[L.S_OK] == 0
        assert st == 1 + int(np.argmax(full_counts[1:]))  # the most frequent failure
        assert not np.any(best_out) and not np.any(best_mp)
    return st, best_mp, counts, n_full


@pytest.mark.parametrize("name", list(SEARCH_CASES))
def test_search_mappings_finds_the_best_of_the_full_space(name):
    _check_search_against_brute_force(SEARCH_CASES[name]())


def test_search_explores_cp_ep_vpp_and_prunes():
    """Across the brute-force cases (some with a field fixed) the optimum uses context, expert
    and interleaved pipeline parallelism, the overlapped all-to-all, hybrid sharding and
    offloaded recompute somewhere (so the exact match above covers them), and branch and bound
    skips candidates where a feasible mapping is found early."""
    used = dict.fromkeys(("cp", "ep", "vpp", "epo", "hsdp", "offload"), False)
    pruned = 0
    for name, fixed in (("llama8b-8xh100-seq32k", {}), ("llama70b-64xa100-slow-nic", {}),
                        ("gpt3-64xa100", {}), ("mixtral-16xh200", {}), ("llama8b-8xh100", {}),
                        ("gpt3-64xa100", {L.P_PP: 4}),  # a pipeline: interleaving pays
                        ("gpt3-64x64gb", {L.P_TP: 1, L.P_ZERO: 3}),  # memory-bound: offload
                        ("tiny-8chips-domain4-slow-nic", {L.P_ZERO: 3, L.P_DP: 8})):  # hybrid
        fx = np.full(L.MAP_LEN, -1, np.int64)
        for idx, value in fixed.items():
            fx[idx] = value
        st, best_mp, counts, n_full = _check_search_against_brute_force(
            SEARCH_CASES[name](), fx)
        assert st == L.S_OK, name
        for k in ("cp", "ep", "vpp"):
            used[k] |= bool(best_mp[getattr(L, f"P_{k.upper()}")] > 1)
        used["epo"] |= bool(best_mp[L.P_EPO] == 1)
        used["hsdp"] |= bool(best_mp[L.P_HSDP] == 1)
        used["offload"] |= bool(best_mp[L.P_RECOMPUTE] == 3)
        pruned += int(counts.sum() < n_full)
    assert all(used.values()), used
    assert pruned >= 3


@pytest.mark.parametrize(
    ("name", "fixed"),
    [
        ("llama8b-32xh100-fp8-torus3d", {L.P_TP: 8}),
        ("llama70b-64xa100-oversub", {L.P_PP: 4, L.P_RECOMPUTE: 2}),
        ("tiny-moe-16chips-torus2d", {L.P_EP: 2, L.P_SP: 0}),
        ("mixtral-16xh200", {L.P_DP: 2, L.P_ZERO: 1}),
    ],
    ids=["tp8", "pp4-full-recompute", "ep2-no-sp", "dp2-zero1"],
)
def test_search_with_fixed_fields_finds_the_best_of_the_restricted_space(name, fixed):
    fx = np.full(L.MAP_LEN, -1, np.int64)
    for idx, value in fixed.items():
        fx[idx] = value
    _check_search_against_brute_force(SEARCH_CASES[name](), fx)


def test_search_mappings_honours_fixed_fields():
    arrays = case(n_chips=16, model="llama3-8b", seq=4096, gbatch=32)
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    fixed[L.P_TP], fixed[L.P_PP], fixed[L.P_RECOMPUTE] = 2, 2, 2
    st, mp, out, counts = search_both(arrays, fixed)
    assert st == L.S_OK
    assert (mp[L.P_TP], mp[L.P_PP], mp[L.P_RECOMPUTE]) == (2, 2, 2)
    assert_ok_outputs(arrays, mp, out)
    # fully fixed: exactly one candidate, and the result is eval_mapping's
    full = mapping(tp=4, pp=2, dp=2, mb=2, rc=1, zero=1)
    st, mp, out, counts = search_both(arrays, full)
    assert counts.sum() == 1 and st == L.S_OK
    np.testing.assert_array_equal(mp, full)
    np.testing.assert_array_equal(out, run_eval(eval_mapping, arrays, full)[1])
    # a fixed cp / vpp outside the searched range is used as given
    for field, value in ((L.P_CP, 2), (L.P_VPP, 2)):
        fixed = np.full(L.MAP_LEN, -1, np.int64)
        fixed[field] = value
        st, mp, out, _ = search_both(arrays, fixed)
        assert st == L.S_OK and mp[field] == value
        assert_ok_outputs(arrays, mp, out)


def test_search_population_matches_search_mappings_row_by_row():
    rng = np.random.default_rng(11)
    rows = [
        case(chip_arr(), n_chips=8, model="llama3-8b", seq=2048, gbatch=32),
        case(chip_arr(C_UP_BPS=0.0), n_chips=1, model=TINY, gbatch=8),  # one chip, no links
        case(chip_arr("a100-sxm-80gb"), n_chips=16, model="llama3-8b", seq=2048, gbatch=32),
        case(chip_arr(C_OUT_BPS=0.0), n_chips=16, model="llama3-8b", seq=2048, gbatch=32),
        case(chip_arr("mi300x"), n_chips=4, model="llama3-8b", seq=2048, gbatch=32),
        case(chip_arr(C_HBM_B=8e9), n_chips=8, model="llama3-8b", seq=2048, gbatch=32),  # OOM
        case(chip_arr(C_HBM_B=8e9), n_chips=8, model="llama3-8b", seq=2048, gbatch=32),
    ]
    rows[5][1][L.K_HOST_MEM_B] = 1e9  # no room in host memory either: out of memory
    # row 6: the same chip with the host's memory: fits by offloading
    for _ in range(4):  # perturbed H100s on 8 chips
        chip = chip_arr()
        chip[[L.C_FLOPS_BF16, L.C_HBM_BPS, L.C_SRAM_B, L.C_UP_BPS]] *= rng.lognormal(0, 0.4, 4)
        rows.append(case(chip, n_chips=8, model="llama3-8b", seq=2048, gbatch=32))
    model, job = rows[0][2], rows[0][3]
    chips = np.stack([r[0] for r in rows])
    clusters = np.stack([r[1] for r in rows])
    n = len(rows)
    fixed = np.full(L.MAP_LEN, -1, np.int64)

    def run(fn):
        best_mps = np.zeros((n, L.MAP_LEN), np.int64)
        best_outs = np.zeros((n, L.OUT_LEN))
        counts = np.zeros((n, L.N_STATUS), np.int64)
        status = np.zeros(n, np.int64)
        fn(chips, clusters, model, job, fixed, best_mps, best_outs, counts, status)
        return status, best_mps, best_outs, counts

    jit = run(search_population)
    py = run(search_population.py_func)
    for a, b in zip(jit, py, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
    status, best_mps, best_outs, counts = jit
    for i in range(n):
        st, mp, out, cnt = run_search(search_mappings, (chips[i], clusters[i], model, job))
        assert status[i] == st
        np.testing.assert_array_equal(best_mps[i], mp)
        np.testing.assert_array_equal(best_outs[i], out)
        np.testing.assert_array_equal(counts[i], cnt)
        if st == L.S_OK:
            assert_ok_outputs((chips[i], clusters[i], model, job), mp, out)
    assert status[5] == L.S_OOM
    assert status[6] == L.S_OK and best_mps[6][L.P_OFFLOAD] > 0
    assert (status == L.S_OK).sum() >= 8


def test_search_population_empty():
    z = np.zeros
    status = z(0, np.int64)
    search_population(z((0, L.CHIP_LEN)), z((0, L.CLUSTER_LEN)), z(L.MODEL_LEN), z(L.JOB_LEN),
                      np.full(L.MAP_LEN, -1, np.int64), z((0, L.MAP_LEN), np.int64),
                      z((0, L.OUT_LEN)), z((0, L.N_STATUS), np.int64), status)
    assert status.shape == (0,)


# ---- pure-Python path end to end -------------------------------------------------------------
NOJIT_CASES = [
    # (chip, chips, model, seq, global batch, precision, attention, topology)
    ("h100-sxm", 8, "llama3-8b", 2048, 16, "bf16", "flash", "fat-tree"),
    ("h100-sxm", 8, "llama3-8b", 32768, 8, "bf16", "flash", "torus-2d"),  # context parallel
    ("h200", 16, "mixtral-8x7b", 4096, 32, "fp8", "flash", "dragonfly"),  # expert parallel
    # vpp, and host-memory offload (40 GB of HBM)
    ("a100-sxm-40gb", 64, "gpt3-175b", 2048, 64, "fp16", "unfused", "rail-optimized"),
]

_NOJIT_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    from codesign.model.catalog import get_chip, get_model
    from codesign.model.kernels import train
    from codesign.model.perf import evaluate
    from codesign.model.specs import ClusterSpec, TrainJob

    rows = []
    for chip, n, model, seq, gb, prec, attn, topo in json.loads(sys.argv[1]):
        job = TrainJob(get_model(model), seq_len=seq, global_batch=gb, precision=prec,
                       attention=attn)
        res = evaluate(get_chip(chip), ClusterSpec(n_chips=n, topology=topo), job)
        rows.append({
            "step": repr(res.step_time_s),
            "mapping": res.mapping.as_dict(),
            "candidates": res.n_candidates,
            "feasible": res.n_feasible,
        })
    print(json.dumps({"jit": hasattr(train.eval_mapping, "py_func"), "rows": rows}))
    """
)


def test_numba_disable_jit_end_to_end_matches_jitted():
    from codesign.model.perf import evaluate

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-c", _NOJIT_SCRIPT, json.dumps(NOJIT_CASES)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["jit"] is False  # really the pure-Python path

    used = set()
    for (chip, n, model, seq, gb, prec, attn, topo), row in zip(NOJIT_CASES, got["rows"],
                                                                   strict=True):
        job = TrainJob(get_model(model), seq_len=seq, global_batch=gb, precision=prec,
                       attention=attn)
        res = evaluate(get_chip(chip), ClusterSpec(n_chips=n, topology=topo), job)
        assert res.feasible
        assert float(row["step"]) == pytest.approx(res.step_time_s, rel=RTOL)
        assert row["mapping"] == res.mapping.as_dict()
        # same branch and bound on both paths: the same candidates evaluated
        assert (row["candidates"], row["feasible"]) == (res.n_candidates, res.n_feasible)
        used |= {k for k in ("cp", "ep", "vpp") if row["mapping"][k] > 1}
        used |= {"offload"} if row["mapping"]["offload"] != "none" else set()
    assert used == {"cp", "ep", "vpp", "offload"}


# ---- DVFS: a chip over its TDP lowers its clock ------------------------------------------------
def test_at_clock_and_next_clock_match_py_func():
    chip = chip_arr("h100-sxm")
    for s in (1.0, 0.8, 0.5, CLOCK_FLOOR):
        a, b = np.empty_like(chip), np.empty_like(chip)
        at_clock(chip, s, a)
        at_clock.py_func(chip, s, b)
        np.testing.assert_array_equal(a, b)
        v = max(0.65, 0.35 + 0.65 * s)
        assert voltage(s) == voltage.py_func(s) == pytest.approx(v)
        assert a[L.C_FLOPS_BF16] == pytest.approx(chip[L.C_FLOPS_BF16] * s)
        assert a[L.C_E_BF16] == pytest.approx(chip[L.C_E_BF16] * v * v)
        assert a[L.C_BUSY_W] == pytest.approx(chip[L.C_BUSY_W] * s * v * v)
        assert a[L.C_LEAK_W] == pytest.approx(chip[L.C_LEAK_W] * v)
        assert a[L.C_HBM_BPS] == chip[L.C_HBM_BPS] and a[L.C_E_HBM] == chip[L.C_E_HBM]
    # the clock search on a toy power law: power = 1000 s (W), limit 600 W
    chip[L.C_TDP_W] = 600.0
    for fn in (next_clock, next_clock.py_func):
        state, out = np.array([0.0, 1.0, 1.0, 0.0]), np.zeros(L.OUT_LEN)
        scaled = np.empty_like(chip)
        tried = []
        while fn(chip, 1000.0 * state[2], scaled, state, out, L.O_CLOCK):
            tried.append(state[2])
            assert scaled[L.C_FLOPS_BF16] == pytest.approx(chip[L.C_FLOPS_BF16] * state[2])
        assert tried[0] == CLOCK_FLOOR and len(tried) in (13, 14)  # floor, 12 steps, answer
        assert 0.6 - 0.7 / 2**12 <= out[L.O_CLOCK] <= 0.6 and tried[-1] == out[L.O_CLOCK]
        state, out = np.array([0.0, 1.0, 1.0, 0.0]), np.zeros(L.OUT_LEN)
        assert fn(chip, 1000.0, scaled, state, out, L.O_CLOCK) == 1  # peak over: try the floor
        assert fn(chip, 601.0, scaled, state, out, L.O_CLOCK) == 0  # the floor is over too
        assert out[L.O_CLOCK] == CLOCK_FLOOR


@pytest.mark.parametrize("tdp", [500.0, 350.0, 250.0])
def test_throttled_mapping_runs_at_the_highest_clock_that_fits(tdp: float):
    arrays = case(chip_arr("h100-sxm", C_TDP_W=tdp), n_chips=8, model="llama3-8b", seq=4096,
                  gbatch=64)
    mp = mapping(tp=1, dp=8, mb=1, zero=1)
    full = arrays[0].copy()
    full[L.C_TDP_W] = np.inf
    st_full, out_full = run_eval(eval_mapping, (full, *arrays[1:]), mp)
    st, out = eval_both(arrays, mp)
    assert st_full == L.S_OK and out_full[L.O_CHIP_W] > tdp  # over the limit at peak clock
    assert st == L.S_OK and CLOCK_FLOOR <= out[L.O_CLOCK] < 1.0
    assert out[L.O_CHIP_W] <= tdp
    assert out[L.O_STEP_S] > out_full[L.O_STEP_S]
    # one bisection step faster would not fit
    faster = np.empty_like(arrays[0])
    at_clock(arrays[0], out[L.O_CLOCK] + (1.0 - CLOCK_FLOOR) / 2**11, faster)  # 2 steps
    st_f, out_f = run_eval(eval_at_clock, (faster, *arrays[1:]), mp)
    assert st_f == L.S_POWER and out_f[L.O_CHIP_W] > tdp
    # the same chip as a design (no DVFS) is infeasible
    fixed = arrays[0].copy()
    fixed[L.C_THROTTLES] = 0.0
    assert eval_both((fixed, *arrays[1:]), mp)[0] == L.S_POWER
    # and under a limit the lowest clock cannot meet, so is the throttling one
    cold = arrays[0].copy()
    cold[L.C_TDP_W] = 0.5 * cold[L.C_LEAK_W]
    st_c, out_c = eval_both((cold, *arrays[1:]), mp)
    assert st_c == L.S_POWER and out_c[L.O_CLOCK] == CLOCK_FLOOR
