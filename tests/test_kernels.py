"""codesign.kernels.train: every numba kernel against its pure-Python ``.py_func`` twin.

QuantEcon style: the kernels take flat arrays, write into preallocated outputs and return status
codes, so each one is run jitted and as plain Python on the same inputs (seeded random draws
around catalog chips and models, plus edge inputs) and the two must agree. On top of that:
invariants that hold by construction of the model (finite, positive outputs of feasible results,
breakdown <= step time, monotonicity in hardware speed), an explicit Python enumeration that the
mapping search must match, and one end-to-end run with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from codesign import pack
from codesign.catalog import get_chip, get_model
from codesign.kernels import layout as L
from codesign.kernels.train import (
    _choices,
    eval_mapping,
    gemm_time,
    group_allreduce_time,
    ring_allreduce_time,
    search_mappings,
    search_population,
)
from codesign.specs import PRECISIONS, ClusterSpec, ModelSpec, TrainJob

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-12

# catalog chips that pack once the (cluster-specific) NIC bandwidth is given
PACKABLE_CHIPS = (
    "a100-sxm-80gb", "a100-sxm-40gb", "h100-sxm", "h200", "mi250x", "mi300x", "tpu-v4",
    "gaudi3", "maia100",
)
MODELS = ("llama3-8b", "llama3-70b", "mixtral-8x7b", "gpt3-175b", "deepseek-v3")
TINY = ModelSpec("tiny", layers=6, hidden=512, heads=8, kv_heads=4, ffn_hidden=1408, vocab=1000)
"""A ~25M-parameter model: fits on one chip, so small clusters have many feasible mappings."""


# ---- helpers -----------------------------------------------------------------------------
def chip_arr(chip_id: str = "h100-sxm", **set_values: float) -> np.ndarray:
    """A packed catalog chip (NIC 400 Gb/s) with some columns overwritten (layout names)."""
    a = pack.chip_array(get_chip(chip_id), scaleout_gbps=400.0)
    for name, value in set_values.items():
        a[getattr(L, name)] = value
    return a


def case(
    chip: np.ndarray | None = None,
    n_chips: int = 8,
    model: ModelSpec | str = "llama3-8b",
    seq: int = 2048,
    gbatch: int = 32,
    precision: str = "bf16",
    **cluster_kw: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(chip, cluster, model, job) arrays for the kernels."""
    m = get_model(model) if isinstance(model, str) else model
    return (
        chip_arr() if chip is None else chip,
        pack.cluster_array(ClusterSpec(n_chips=n_chips, **cluster_kw)),
        pack.model_array(m),
        pack.job_array(TrainJob(m, seq_len=seq, global_batch=gbatch, precision=precision)),
    )


def mapping(tp=1, pp=1, dp=1, cp=1, ep=1, vpp=1, mb=1, rc=0, zero=0, sp=None) -> np.ndarray:
    """A full mapping array (sequence parallel on whenever tp > 1 unless given)."""
    mp = np.zeros(L.MAP_LEN, np.int64)
    mp[L.P_TP], mp[L.P_PP], mp[L.P_DP], mp[L.P_CP], mp[L.P_EP] = tp, pp, dp, cp, ep
    mp[L.P_VPP], mp[L.P_MB], mp[L.P_RECOMPUTE], mp[L.P_ZERO] = vpp, mb, rc, zero
    mp[L.P_SP] = (1 if tp > 1 else 0) if sp is None else sp
    return mp


def run_eval(fn, arrays, mp) -> tuple[int, np.ndarray]:
    out = np.full(L.OUT_LEN, -7.0)  # garbage: the kernel must overwrite every slot
    status = int(fn(*arrays, mp, out))
    return status, out


def eval_both(arrays, mp) -> tuple[int, np.ndarray]:
    """eval_mapping jitted and as Python: same status, same outputs."""
    st_j, out_j = run_eval(eval_mapping, arrays, mp)
    with np.errstate(all="ignore"):
        st_p, out_p = run_eval(eval_mapping.py_func, arrays, mp)
    assert st_j == st_p, (mp.tolist(), st_j, st_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, out_j


def run_search(fn, arrays, fixed=None):
    fixed = np.full(L.MAP_LEN, -1, np.int64) if fixed is None else fixed
    best_mp = np.zeros(L.MAP_LEN, np.int64)
    best_out = np.zeros(L.OUT_LEN)
    counts = np.zeros(L.N_STATUS, np.int64)
    status = int(fn(*arrays, fixed, best_mp, best_out, counts))
    return status, best_mp, best_out, counts


def search_both(arrays, fixed=None):
    """search_mappings jitted and as Python (its py_func calls the jitted eval_mapping)."""
    st_j, mp_j, out_j, cnt_j = run_search(search_mappings, arrays, fixed)
    st_p, mp_p, out_p, cnt_p = run_search(search_mappings.py_func, arrays, fixed)
    assert st_j == st_p
    np.testing.assert_array_equal(cnt_j, cnt_p)
    np.testing.assert_array_equal(mp_j, mp_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, mp_j, out_j, cnt_j


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
        hbm = 3.35e12 * rng.lognormal(0, 1)
        sram = 80e6 * rng.lognormal(0, 2)
        el_b = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
        t = gemm_time(m, k, n, peak, hbm, sram, el_b)
        assert t == pytest.approx(gemm_time.py_func(m, k, n, peak, hbm, sram, el_b), rel=RTOL)
        # roofline bounds: at least the compute time and the compulsory traffic time
        assert t >= 2 * m * k * n / (peak * 0.80) * (1 - 1e-12)
        assert t >= el_b * (m * k + k * n + m * n) / (hbm * 0.85) * (1 - 1e-12)
        # faster compute, faster HBM or more SRAM never make a GEMM slower
        assert gemm_time(m, k, n, 2 * peak, hbm, sram, el_b) <= t
        assert gemm_time(m, k, n, peak, 2 * hbm, sram, el_b) <= t
        assert gemm_time(m, k, n, peak, hbm, 2 * sram, el_b) <= t


def test_gemm_time_edge_inputs():
    # an SRAM smaller than one element: tile side clamps to 1 (every operand re-read), finite
    t = gemm_time(64.0, 64.0, 64.0, 1e12, 1e12, 1.0, 2.0)
    assert np.isfinite(t) and t == gemm_time.py_func(64.0, 64.0, 64.0, 1e12, 1e12, 1.0, 2.0)
    # memory-bound skinny GEMM (decode-like) vs compute-bound square GEMM
    skinny = gemm_time(1.0, 8192.0, 8192.0, 1e15, 1e12, 50e6, 2.0)
    x = (50e6 / (6 * 2.0)) ** 0.5  # tile side; A (1 x 8192) is re-read 8192 / x times
    traffic = 2.0 * (8192 * 8192 / x + 8192 * 8192 + 8192)
    assert skinny == pytest.approx(traffic / (1e12 * 0.85), rel=1e-12)
    square = gemm_time(8192.0, 8192.0, 8192.0, 1e15, 1e13, 50e6, 2.0)
    assert square == pytest.approx(2 * 8192.0**3 / (1e15 * 0.80), rel=1e-12)


def test_ring_allreduce_time_matches_py_func():
    rng = np.random.default_rng(2)
    for n in (0, 1):  # no peers: nothing to do
        assert ring_allreduce_time(1e9, n, 1e11, 1e-5) == 0.0
        assert ring_allreduce_time.py_func(1e9, n, 1e11, 1e-5) == 0.0
    for _ in range(200):
        vol = 1e9 * rng.lognormal(0, 2)
        n = int(rng.integers(2, 4096))
        bw = 4.5e11 * rng.lognormal(0, 1)
        lat = 1e-5 * rng.lognormal(0, 1)
        t = ring_allreduce_time(vol, n, bw, lat)
        assert t == pytest.approx(ring_allreduce_time.py_func(vol, n, bw, lat), rel=RTOL)
        assert t == pytest.approx(2 * (n - 1) / n * vol / (bw * 0.8) + 2 * (n - 1) * lat,
                                  rel=RTOL)
    assert ring_allreduce_time(1e9, 2, 1e11, 0.0) == pytest.approx(1e9 / (1e11 * 0.8))


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
        if n > 1 and stride * n <= domain:  # whole group inside one scale-up domain
            assert t == pytest.approx(ring_allreduce_time(vol, n, up, up_lat), rel=RTOL)
        if n > 1 and domain // stride <= 1:  # one rank per domain: all over the NIC
            assert t == pytest.approx(ring_allreduce_time(vol, n, out, out_lat), rel=RTOL)


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


# ---- eval_mapping: random realistic inputs -------------------------------------------------
def random_case(rng):
    """A perturbed catalog chip + random cluster + catalog model + job + mapping, drawn so that
    a good share of the mappings are valid (the product of degrees fits the cluster)."""
    chip = chip_arr(str(rng.choice(PACKABLE_CHIPS)))
    for idx in (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4, L.C_SRAM_B,
                L.C_HBM_B, L.C_HBM_BPS, L.C_UP_BPS, L.C_OUT_BPS, L.C_TDP_W):
        chip[idx] *= rng.lognormal(0.0, 0.3)
    chip[L.C_HBM_B] *= float(rng.choice([1.0, 4.0]))  # some bigger memories: more S_OK
    chip[L.C_DOMAIN] = float(rng.choice([1, 2, 4, 8, 16, 72]))
    if chip[L.C_UP_BPS] == 0:  # zero scale-up bandwidth has its own tests
        chip[L.C_DOMAIN] = 1.0
    mname = str(rng.choice(MODELS))
    model = TINY if rng.random() < 0.3 else get_model(mname)
    moe = model.is_moe
    tp = int(rng.choice([1, 1, 2, 4, 8, 3]))
    pp = int(rng.choice([1, 1, 2, 4, 3]))
    dp = int(rng.choice([1, 2, 4, 8, 16, 32]))
    cp = int(rng.choice([1, 1, 1, 2]))
    ep = int(rng.choice([1, 2, 4, 8])) if moe else int(rng.choice([1] * 9 + [2]))
    vpp = int(rng.choice([1, 1, 1, 2]))
    mb = int(rng.choice([1, 2, 4]))
    mp = mapping(tp, pp, dp, cp, ep, vpp, mb, int(rng.integers(3)), int(rng.integers(4)),
                 int(rng.integers(2)))
    n_chips = tp * pp * dp * cp * int(rng.choice([1, 1, 2, 3]))
    if rng.random() < 0.05:
        n_chips = max(1, n_chips // 2)  # too small for the mapping
    gbatch = dp * mb * int(rng.choice([1, 2, 4, 8, 16]))
    if rng.random() < 0.05:
        gbatch += 1  # dp * micro-batch no longer divides the batch
    precision = str(rng.choice(PRECISIONS, p=[0.1, 0.1, 0.5, 0.2, 0.1]))
    job = TrainJob(model, seq_len=int(rng.choice([1024, 2048, 4096, 8192])),
                   global_batch=gbatch, precision=precision)
    cluster = ClusterSpec(
        n_chips=n_chips,
        topology=str(rng.choice(["fat-tree", "rail-optimized"])),
        oversubscription=float(rng.choice([1.0, 2.0, 4.0])),
        scaleup_latency_us=2.0 * rng.lognormal(0, 0.5),
        scaleout_latency_us=10.0 * rng.lognormal(0, 0.5),
        pue=float(rng.uniform(1.05, 1.5)),
        host_power_w_per_chip=float(rng.uniform(100, 400)),
    )
    arrays = (chip, pack.cluster_array(cluster), pack.model_array(model), pack.job_array(job))
    return arrays, mp


def test_eval_mapping_matches_py_func_on_random_cases():
    rng = np.random.default_rng(20240601)
    seen: dict[int, int] = {}
    ok_with = dict.fromkeys(("tp", "pp", "dp", "cp", "ep", "vpp"), 0)
    for _ in range(600):
        arrays, mp = random_case(rng)
        status, out = eval_both(arrays, mp)
        seen[status] = seen.get(status, 0) + 1
        if status == L.S_OK:
            assert_ok_outputs(arrays, mp, out)
            for k in ok_with:
                ok_with[k] += int(mp[getattr(L, f"P_{k.upper()}")] > 1)
        elif status in (L.S_INVALID, L.S_NO_BW, L.S_NO_COMPUTE, L.S_BAD_INPUT):
            assert not np.any(out), "early returns leave out zeroed"
    # the draw must exercise the interesting outcomes, not only rejections
    assert seen.get(L.S_OK, 0) >= 60, seen
    for s in (L.S_INVALID, L.S_OOM, L.S_NO_COMPUTE):
        assert seen.get(s, 0) >= 5, seen
    assert min(ok_with.values()) >= 5, ok_with  # every parallelism kind feasible somewhere


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
    # a single mapping: memory is still reported (it is what did not fit)
    st, out = eval_both(arrays, mapping(tp=8, zero=3))
    assert st == L.S_OOM and out[L.O_MEM_B] > arrays[0][L.C_HBM_B]


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
    ({"rc": 3}, "recompute out of range"),
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
    ({"ep": 2}, "expert parallel on a dense model"),
]


@pytest.mark.parametrize(("kw", "what"), INVALID_MAPPINGS, ids=[w for _, w in INVALID_MAPPINGS])
def test_invalid_mapping_values(kw, what):
    arrays = case(n_chips=8, gbatch=32)
    st, out = eval_both(arrays, mapping(**kw))
    assert st == L.S_INVALID, what
    assert not np.any(out)


SEARCHABLE_INVALID = [(kw, w) for kw, w in INVALID_MAPPINGS
                      if not any(kw.get(k, 1) <= 0 for k in ("tp", "pp", "dp", "cp"))]


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
    assert eval_both(arrays, mapping(dp=2, ep=4, mb=1))[0] == L.S_INVALID  # dp % ep


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
    ],
)
def test_bad_input_is_a_status(target, col, value):
    arrays = list(case(n_chips=8, model=TINY, gbatch=16))
    arrays[("chip", "cluster", "model", "job").index(target)][col] = value
    assert eval_both(tuple(arrays), mapping())[0] == L.S_BAD_INPUT


# ---- monotonicity (holds by construction of the model) ---------------------------------------
FASTER = [
    ("hbm_bw", L.C_HBM_BPS),
    ("sram", L.C_SRAM_B),
    ("scaleup_bw", L.C_UP_BPS),
    ("nic_bw", L.C_OUT_BPS),
]


def _valid_random_ok(rng, n: int, zero_stages, cps=(1,)):
    """``n`` random (arrays, mapping, out) with status S_OK, ZeRO stage in ``zero_stages`` and
    context parallel degree in ``cps``."""
    found = []
    while len(found) < n:
        arrays, mp = random_case(rng)
        mp[L.P_ZERO] = int(rng.choice(zero_stages))
        mp[L.P_CP] = int(rng.choice(cps))
        st, out = run_eval(eval_mapping, arrays, mp)
        if st == L.S_OK:
            found.append((arrays, mp, out))
    return found


def _peak_col(job: np.ndarray) -> int:
    prec = int(job[L.J_PREC])
    return (L.C_FLOPS_FP32, L.C_FLOPS_BF16, L.C_FLOPS_BF16, L.C_FLOPS_FP8, L.C_FLOPS_FP4)[prec]


def test_faster_hardware_never_slows_a_fixed_mapping():
    """Doubling HBM bandwidth, peak FLOP/s, SRAM or link bandwidth never increases step time;
    doubling latencies or the fat-tree taper never decreases it (ZeRO 0-2)."""
    rng = np.random.default_rng(7)
    for arrays, mp, out in _valid_random_ok(rng, 150, [0, 1, 2]):
        chip, cluster, model, job = arrays
        step = out[L.O_STEP_S]
        for name, col in [*FASTER, ("peak", _peak_col(job))]:
            faster = chip.copy()
            faster[col] *= 2.0
            st2, out2 = run_eval(eval_mapping, (faster, cluster, model, job), mp)
            assert st2 == L.S_OK, name
            assert out2[L.O_MEM_B] == out[L.O_MEM_B], name  # memory does not depend on speed
            assert out2[L.O_STEP_S] <= step * (1 + 1e-12), (name, mp.tolist())
        for col in (L.K_UP_LAT_S, L.K_OUT_LAT_S, L.K_OVERSUB):
            slower = cluster.copy()
            slower[col] *= 2.0
            st2, out2 = run_eval(eval_mapping, (chip, slower, model, job), mp)
            assert st2 == L.S_OK
            assert out2[L.O_STEP_S] >= step * (1 - 1e-12)
        bigger = chip.copy()
        bigger[L.C_HBM_B] *= 2.0  # capacity changes what fits, not the speed
        st2, out2 = run_eval(eval_mapping, (bigger, cluster, model, job), mp)
        assert st2 == L.S_OK and out2[L.O_STEP_S] == step


def test_links_never_slow_a_fixed_mapping_with_zero3_or_cp():
    rng = np.random.default_rng(8)
    for arrays, mp, out in _valid_random_ok(rng, 100, [0, 1, 2, 3], cps=(1, 2, 4)):
        chip, cluster, model, job = arrays
        for _name, col in FASTER[2:]:  # scale-up and NIC bandwidth
            faster = chip.copy()
            faster[col] *= 2.0
            st2, out2 = run_eval(eval_mapping, (faster, cluster, model, job), mp)
            assert st2 == L.S_OK and out2[L.O_STEP_S] <= out[L.O_STEP_S] * (1 + 1e-12)


@pytest.mark.parametrize("col", [L.C_FLOPS_BF16, L.C_HBM_BPS], ids=["peak", "hbm_bw"])
def test_faster_chip_never_slows_a_fixed_zero3_mapping(col):
    arrays = case(chip_arr(), n_chips=64, model="llama3-8b", seq=2048, gbatch=64)
    mp = mapping(tp=1, dp=64, mb=1, rc=1, zero=3)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OK
    faster = arrays[0].copy()
    faster[col] *= 2.0
    st2, out2 = eval_both((faster, *arrays[1:]), mp)
    assert st2 == L.S_OK
    assert out2[L.O_STEP_S] <= out[L.O_STEP_S]


def test_faster_chip_never_slows_a_fixed_cp_mapping():
    arrays = case(chip_arr(), n_chips=64, model="llama3-8b", seq=1024, gbatch=16)
    mp = mapping(tp=8, cp=4, dp=2, mb=1, rc=2, zero=1)
    st, out = eval_both(arrays, mp)
    assert st == L.S_OK
    faster = arrays[0].copy()
    faster[L.C_FLOPS_BF16] *= 2.0
    st2, out2 = eval_both((faster, *arrays[1:]), mp)
    assert st2 == L.S_OK
    assert out2[L.O_STEP_S] <= out[L.O_STEP_S]


def test_more_zero_sharding_never_needs_more_memory():
    rng = np.random.default_rng(9)
    for arrays, mp, _out in _valid_random_ok(rng, 80, [0]):
        mems = []
        for zero in range(4):
            mp2 = mp.copy()
            mp2[L.P_ZERO] = zero
            st, out = run_eval(eval_mapping, arrays, mp2)
            assert st in (L.S_OK, L.S_OOM)
            mems.append(out[L.O_MEM_B])
        assert all(a >= b for a, b in itertools.pairwise(mems)), mems


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


# ---- search_mappings ------------------------------------------------------------------------
def documented_candidates(arrays):
    """The candidate list search_mappings' docstring promises, written out independently:
    tp powers of 2 up to min(domain, heads), pp divisors of the layer count or powers of 2,
    dp divisors of the batch with tp*pp*dp <= chips, micro-batches dividing the per-replica
    batch (<= 64), every recompute mode and ZeRO stage; cp = ep = vpp = 1; SP iff tp > 1."""
    chip, cluster, model, job = arrays
    n = int(cluster[L.K_N_CHIPS])
    layers = int(model[L.M_LAYERS])
    gb = int(job[L.J_GBATCH])
    tp_max = max(1, min(int(chip[L.C_DOMAIN]), int(model[L.M_HEADS])))
    tps = [t for t in (2**i for i in range(31)) if t <= tp_max and t <= n]
    pps = [p for p in range(1, layers + 1) if layers % p == 0 or (p & (p - 1)) == 0]
    for tp in tps:
        for pp in pps:
            for dp in range(1, n // (tp * pp) + 1):
                if gb % dp:
                    continue
                per_dp = gb // dp
                for b in range(1, min(per_dp, 64) + 1):
                    if per_dp % b:
                        continue
                    for rc in range(3):
                        for zero in range(4):
                            yield mapping(tp, pp, dp, 1, 1, 1, b, rc, zero)


SEARCH_CASES = {
    "tiny-8chips-domain4": lambda: case(chip_arr(C_DOMAIN=4.0), n_chips=8, model=TINY,
                                        seq=1024, gbatch=24),
    "tiny-12chips-rail": lambda: case(chip_arr("a100-sxm-40gb"), n_chips=12, model=TINY,
                                      seq=2048, gbatch=36, topology="rail-optimized"),
    "tiny-16chips-no-nic": lambda: case(chip_arr(C_OUT_BPS=0.0, C_DOMAIN=4.0), n_chips=16,
                                        model=TINY, seq=1024, gbatch=16),
    "llama8b-8xh100": lambda: case(n_chips=8, model="llama3-8b", seq=4096, gbatch=16),
    "mixtral-16xh200": lambda: case(chip_arr("h200"), n_chips=16, model="mixtral-8x7b",
                                    seq=4096, gbatch=32),
    "gpt3-8xh100-oom": lambda: case(n_chips=8, model="gpt3-175b", seq=2048, gbatch=8),
}


@pytest.mark.parametrize("name", list(SEARCH_CASES))
def test_search_mappings_is_exhaustive_and_finds_the_best(name):
    arrays = SEARCH_CASES[name]()
    st, best_mp, best_out, counts = search_both(arrays)

    expected_counts = np.zeros(L.N_STATUS, np.int64)
    best_step, best_mem = np.inf, np.inf
    out = np.zeros(L.OUT_LEN)
    for mp in documented_candidates(arrays):
        s = eval_mapping(*arrays, mp, out)
        expected_counts[s] += 1
        if s == L.S_OK and (out[L.O_STEP_S], out[L.O_MEM_B]) < (best_step, best_mem):
            best_step, best_mem = out[L.O_STEP_S], out[L.O_MEM_B]
    # every documented candidate was evaluated once, and nothing else
    np.testing.assert_array_equal(counts, expected_counts)
    assert counts.sum() == expected_counts.sum() > 0
    if np.isfinite(best_step):
        assert st == L.S_OK
        assert best_out[L.O_STEP_S] == best_step  # the minimum, exactly
        assert best_out[L.O_MEM_B] == best_mem  # ties broken by memory
        st2, out2 = run_eval(eval_mapping, arrays, best_mp)  # the reported mapping gives it
        assert st2 == L.S_OK
        np.testing.assert_array_equal(out2, best_out)
        assert_ok_outputs(arrays, best_mp, best_out)
    else:
        assert counts[L.S_OK] == 0
        failures = expected_counts[1:]
        assert st == 1 + int(np.argmax(failures))  # the most frequent failure
        assert not np.any(best_out)


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
    # searched cp/ep/vpp default to 1; fixed ones are used
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    fixed[L.P_CP] = 2
    st, mp, out, _ = search_both(arrays, fixed)
    assert st == L.S_OK and mp[L.P_CP] == 2
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
    ]
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
    assert (status == L.S_OK).sum() >= 7


def test_search_population_empty():
    z = np.zeros
    status = z(0, np.int64)
    search_population(z((0, L.CHIP_LEN)), z((0, L.CLUSTER_LEN)), z(L.MODEL_LEN), z(L.JOB_LEN),
                      np.full(L.MAP_LEN, -1, np.int64), z((0, L.MAP_LEN), np.int64),
                      z((0, L.OUT_LEN)), z((0, L.N_STATUS), np.int64), status)
    assert status.shape == (0,)


# ---- pure-Python path end to end -------------------------------------------------------------
_NOJIT_SCRIPT = textwrap.dedent(
    """
    import json

    from codesign.catalog import get_chip, get_model
    from codesign.kernels import train
    from codesign.perf import evaluate
    from codesign.specs import ClusterSpec, TrainJob

    job = TrainJob(get_model("llama3-8b"), seq_len=2048, global_batch=16)
    res = evaluate(get_chip("h100-sxm"), ClusterSpec(n_chips=8), job)
    print(json.dumps({
        "jit": hasattr(train.eval_mapping, "py_func"),
        "step": repr(res.step_time_s),
        "mapping": res.mapping.as_dict(),
        "candidates": res.n_candidates,
        "feasible": res.n_feasible,
    }))
    """
)


def test_numba_disable_jit_end_to_end_matches_jitted():
    from codesign.perf import evaluate

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-c", _NOJIT_SCRIPT], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["jit"] is False  # really the pure-Python path

    job = TrainJob(get_model("llama3-8b"), seq_len=2048, global_batch=16)
    res = evaluate(get_chip("h100-sxm"), ClusterSpec(n_chips=8), job)
    assert res.feasible
    assert float(got["step"]) == pytest.approx(res.step_time_s, rel=RTOL)
    assert got["mapping"] == res.mapping.as_dict()
    assert (got["candidates"], got["feasible"]) == (res.n_candidates, res.n_feasible)
