"""codesign.model.kernels.infer: the serving kernel against its ``.py_func`` twins, edge inputs,
the physics the serving model must show, and its mapping search against a brute force.

* Twins: memory_per_chip, kv_room, forward_time, infer_eval, infer_search and
  infer_search_population run jitted and as Python on seeded random inputs (catalog chips and
  models, every topology, bf16 and fp8) and must agree (same status, outputs to 1e-12).
* Edge inputs: OOM, no fp8 compute, zero scale-up bandwidth, latency limits, invalid mappings,
  NaN anywhere in the chip or cluster arrays.
* Physics through ``perf.evaluate``: decode is memory-bound and prefill compute-bound (and
  where the decode batch reaches the chip's FLOP/byte balance point), KV-cache room caps the
  batch, fp8 weights raise decode throughput, latency limits shrink the batch, replicas scale.
* infer_search returns the best tokens/s of the candidate space its docstring describes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from functools import partial

import kernel_helpers as kh
import numpy as np
import pytest

from codesign.model import pack, perf
from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout as L
from codesign.model.kernels.infer import (
    HBM_UTIL,
    MAX_BATCH,
    MAX_PP,
    forward_time,
    infer_at_clock,
    infer_eval,
    kv_room,
    memory_per_chip,
)
from codesign.model.kernels.infer_search import infer_search, infer_search_population
from codesign.model.kernels.memory import BUFFER_B
from codesign.model.specs import PRECISIONS, TOPOLOGIES, ClusterSpec, InferJob, Mapping, ModelSpec

RTOL = kh.RTOL
CHIPS = ("h100-sxm", "a100-sxm-80gb", "h200", "mi300x", "b200")
MODELS = ("llama3-8b", "llama3-70b", "mixtral-8x7b", "deepseek-v3")
B200_SRAM_MB = 160.0
"""The catalog leaves B200's SRAM empty; ~126 MB L2 + 148 x 228 KB shared memory is a rough
estimate, good enough for tests (it only sets GEMM tile re-reads)."""
H100 = get_chip("h100-sxm")
LLAMA70B = get_model("llama3-70b")


# ---- helpers -----------------------------------------------------------------------------
def chip_spec(chip_id: str):
    chip = get_chip(chip_id)
    if chip.sram_mb is None:
        chip = dataclasses.replace(chip, sram_mb=B200_SRAM_MB)
    return chip


def chip_arr(chip_id: str = "h100-sxm", **set_values: float) -> np.ndarray:
    """A packed catalog chip (NIC 400 Gb/s where the catalog has none) with some columns
    overwritten (layout names)."""
    chip = chip_spec(chip_id)
    a = pack.chip_array(chip, scaleout_gbps=None if chip.scaleout_gbps else 400.0)
    for name, value in set_values.items():
        a[getattr(L, name)] = value
    return a


def icase(chip: np.ndarray | None = None, n_chips: int = 8, model: ModelSpec | str = "llama3-8b",
          isl: int = 1024, osl: float = 256, concurrency: int | None = None,
          precision: str = "bf16", kv_precision: str | None = None,
          ttft_slo_s: float | None = None, itl_slo_s: float | None = None, **cluster_kw):
    """(chip, cluster, model, job) arrays for the serving kernels."""
    m = get_model(model) if isinstance(model, str) else model
    job = InferJob(m, isl, osl, concurrency=concurrency, precision=precision,
                   kv_precision=kv_precision, ttft_slo_s=ttft_slo_s, itl_slo_s=itl_slo_s)
    return (
        chip_arr() if chip is None else chip,
        pack.cluster_array(ClusterSpec(n_chips=n_chips, **cluster_kw)),
        pack.model_array(m),
        pack.infer_job_array(job),
    )


def imap(tp=1, pp=1, ep=1, dp=1, b=1) -> np.ndarray:
    """A serving mapping array (replicas = dp, sequences per pipelined batch = micro_batch)."""
    mp = np.zeros(L.MAP_LEN, np.int64)
    mp[L.P_TP], mp[L.P_PP], mp[L.P_EP], mp[L.P_DP], mp[L.P_MB] = tp, pp, ep, dp, b
    mp[L.P_CP] = mp[L.P_VPP] = 1
    return mp


run_eval = partial(kh.run_eval, out_len=L.IOUT_LEN)
run_search = partial(kh.run_search, out_len=L.IOUT_LEN)
eval_both = partial(kh.eval_both, infer_eval, out_len=L.IOUT_LEN)
eval_at_both = partial(kh.eval_both, infer_at_clock, out_len=L.IOUT_LEN)
search_both = partial(kh.search_both, infer_search, out_len=L.IOUT_LEN)


def assert_ok_infer(arrays, mp, out) -> None:
    """Invariants of every S_OK serving result, by construction of the model."""
    chip, cluster, _model, job = arrays
    assert np.all(np.isfinite(out)), out
    assert out[L.IO_TPS] > 0 and out[L.IO_TTFT] > 0 and out[L.IO_ITL] > 0
    assert out[L.IO_T_PREFILL] > 0 and out[L.IO_T_DECODE] > 0
    assert 0 < out[L.IO_MEM_B] <= HBM_UTIL * chip[L.C_HBM_B]
    assert out[L.IO_TTFT] >= out[L.IO_T_PREFILL] and out[L.IO_ITL] >= out[L.IO_T_DECODE]
    b, dp, osl = mp[L.P_MB], mp[L.P_DP], job[L.I_OSL]
    assert out[L.IO_BATCH] == b and out[L.IO_REPLICAS] == dp
    # pipelined batches: n per replica, at most pp, all pp when the concurrency is open
    n, pp = out[L.IO_N_BATCHES], mp[L.P_PP]
    assert 1 <= n <= pp and (job[L.I_CONC] > 0 or n == pp)
    t_pre, t_dec = out[L.IO_T_PREFILL], out[L.IO_T_DECODE]
    s_pre, s_dec = out[L.IO_S_PREFILL], out[L.IO_S_DECODE]
    assert 0 < s_pre <= t_pre * (1 + RTOL) and 0 < s_dec <= t_dec * (1 + RTOL)
    if pp == 1:
        assert s_pre == pytest.approx(t_pre, rel=RTOL) and s_dec == pytest.approx(t_dec, rel=RTOL)
    cycle = max(b * t_pre + osl * t_dec, n * (b * s_pre + osl * s_dec))
    in_flight = dp * n * b if job[L.I_CONC] <= 0 else min(dp * n * b, job[L.I_CONC])
    np.testing.assert_allclose(out[L.IO_TPS], in_flight * osl / cycle, rtol=1e-12)
    np.testing.assert_allclose(
        out[L.IO_ITL], max(t_dec, n * s_dec) + (n * b - 1) * s_pre / osl, rtol=1e-12)
    assert 0 <= out[L.IO_BUSY] <= 1
    assert 0 <= out[L.IO_CHIP_W] <= chip[L.C_TDP_W] * (1 + RTOL)
    np.testing.assert_allclose(
        out[L.IO_CLUSTER_W],
        cluster[L.K_N_CHIPS] * (out[L.IO_CHIP_W] + cluster[L.K_HOST_W]) * cluster[L.K_PUE],
        rtol=RTOL)
    np.testing.assert_allclose(out[L.IO_TOK_PER_J], out[L.IO_TPS] / out[L.IO_CLUSTER_W],
                               rtol=RTOL)
    assert out[L.IO_N_USED] == mp[L.P_TP] * mp[L.P_PP] * dp <= cluster[L.K_N_CHIPS]
    assert out[L.IO_DECODE_INTENSITY] > 0
    if job[L.I_TTFT_SLO] > 0:
        assert out[L.IO_TTFT] <= job[L.I_TTFT_SLO]
    if job[L.I_ITL_SLO] > 0:
        assert out[L.IO_ITL] <= job[L.I_ITL_SLO]


def random_icase(rng):
    """A catalog chip (lightly perturbed) + random cluster (every topology) + catalog model +
    random serving job + a mapping drawn so that many are valid."""
    chip = chip_arr(str(rng.choice(CHIPS)))
    for idx in (L.C_HBM_B, L.C_HBM_BPS, L.C_UP_BPS, L.C_OUT_BPS, L.C_FLOPS_BF16, L.C_FLOPS_FP8):
        chip[idx] *= rng.lognormal(0.0, 0.2)
    chip[L.C_HBM_B] *= float(rng.choice([1.0, 1.0, 3.0]))  # bigger memories: more S_OK
    chip[L.C_DOMAIN] = float(rng.choice([4, 8, 8, 16, 72]))
    model = get_model(str(rng.choice(MODELS)))
    tp = int(rng.choice([1, 2, 4, 8, 8, 16]))
    pp = int(rng.choice([1, 1, 2, 4]))
    if model.is_moe:
        ep = int(rng.choice([e for e in (1, 2, 4, 8) if e <= tp * pp] + [1]))
    else:
        ep = int(rng.choice([1] * 15 + [2]))
    n_chips = tp * pp * int(rng.choice([1, 1, 2, 4]))
    if rng.random() < 0.05:
        n_chips = max(1, n_chips // 2)  # too small for the mapping
    dp = int(rng.integers(1, n_chips // (tp * pp) + 1)) if n_chips >= tp * pp else 1
    b = int(np.exp(rng.uniform(0, np.log(1024))))
    conc = None if rng.random() < 0.5 else int(rng.integers(1, 512))
    precision = str(rng.choice(["bf16", "fp8"]))
    kv = str(rng.choice(["bf16", "fp8"])) if rng.random() < 0.3 else None
    ttft = float(rng.choice([0.5, 2.0])) if rng.random() < 0.2 else None
    itl = float(rng.choice([0.02, 0.1])) if rng.random() < 0.2 else None
    arrays = icase(chip, n_chips=n_chips, model=model,
                   isl=int(np.exp(rng.uniform(0, np.log(16384)))),
                   osl=int(np.exp(rng.uniform(0, np.log(4096)))), concurrency=conc,
                   precision=precision, kv_precision=kv, ttft_slo_s=ttft, itl_slo_s=itl,
                   topology=str(rng.choice(TOPOLOGIES)),
                   oversubscription=float(rng.choice([1.0, 2.0])),
                   scaleup_latency_us=2.0 * rng.lognormal(0, 0.5),
                   scaleout_latency_us=10.0 * rng.lognormal(0, 0.5),
                   pue=float(rng.uniform(1.05, 1.5)),
                   host_power_w_per_chip=float(rng.uniform(100, 400)))
    return arrays, imap(tp, pp, ep, dp, b)


# ---- twins of the building blocks ------------------------------------------------------------
def test_memory_per_chip_and_kv_room_match_py_func():
    rng = np.random.default_rng(7)
    for _ in range(200):
        (chip, _cl, model, job), mp = random_icase(rng)
        args = (model, job, mp[L.P_TP], mp[L.P_PP], mp[L.P_EP])
        w_j, kv_j = memory_per_chip(*args)
        w_p, kv_p = memory_per_chip.py_func(*args)
        assert w_j == pytest.approx(w_p, rel=RTOL) and kv_j == pytest.approx(kv_p, rel=RTOL)
        assert w_j > 0 and kv_j > 0
        assert kv_room(chip, w_j) == pytest.approx(kv_room.py_func(chip, w_j), rel=RTOL)
        np.testing.assert_allclose(kv_room(chip, w_j),
                                   HBM_UTIL * chip[L.C_HBM_B] - w_j - BUFFER_B, rtol=RTOL)


def test_forward_time_matches_py_func():
    """On inputs infer_eval passes to it (numba raises ZeroDivisionError on a zero peak or
    link bandwidth, which infer_eval rules out first)."""
    rng = np.random.default_rng(8)
    n_run = 0
    while n_run < 200:
        arrays, mp = random_icase(rng)
        if run_eval(infer_eval, arrays, mp)[0] not in (L.S_OK, L.S_OOM, L.S_SLO):
            continue
        n_run += 1
        chip, cluster, model, job = arrays
        tokens = float(np.exp(rng.uniform(0, np.log(16384))))
        n_seq = float(max(1, int(tokens // rng.integers(1, 64))))
        ctx = float(np.exp(rng.uniform(0, np.log(32768))))
        prefill = bool(rng.random() < 0.5)
        args = (chip, cluster, model, job, mp[L.P_TP], mp[L.P_PP], mp[L.P_EP], tokens, n_seq,
                ctx, prefill)
        o_j, o_p = np.full(5, -7.0), np.full(5, -7.0)
        t_j = forward_time(*args, o_j)
        t_p = forward_time.py_func(*args, o_p)
        assert t_j == pytest.approx(t_p, rel=RTOL)
        np.testing.assert_allclose(o_j, o_p, rtol=RTOL, atol=0.0)
        assert math.isfinite(t_j) and t_j > 0 and np.all(o_j[:3] > 0) and o_j[3] >= 0
        assert o_j[0] <= t_j * (1 + RTOL)  # busy time is part of the pass


# ---- infer_eval: random realistic inputs ---------------------------------------------------
def test_infer_eval_matches_py_func_on_random_cases():
    rng = np.random.default_rng(20240602)
    seen: dict[int, int] = {}
    ok_topo = dict.fromkeys(range(len(TOPOLOGIES)), 0)
    ok_prec = {"bf16": 0, "fp8": 0}
    ok_models = set()
    throttled = 0
    for _ in range(600):
        arrays, mp = random_icase(rng)
        status, out = eval_both(arrays, mp)
        at_peak, _ = eval_at_both(arrays, mp)  # the evaluator inside, also as Python
        assert status == at_peak or at_peak == L.S_POWER
        seen[status] = seen.get(status, 0) + 1
        if status == L.S_OK:
            assert_ok_infer(arrays, mp, out)
            throttled += int(out[L.IO_CLOCK] < 1.0)
            ok_topo[int(arrays[1][L.K_TOPOLOGY])] += 1
            ok_prec[PRECISIONS[int(arrays[3][L.I_PREC])]] += 1
            ok_models.add(tuple(arrays[2]))
        elif status in (L.S_INVALID, L.S_NO_BW, L.S_NO_COMPUTE, L.S_BAD_INPUT):
            assert not np.any(out), "early returns leave out zeroed"
    # the draws cover the interesting statuses and every topology, precision and model
    assert seen.get(L.S_OK, 0) >= 150, seen
    for s in (L.S_OOM, L.S_INVALID, L.S_SLO, L.S_NO_COMPUTE):
        assert seen.get(s, 0) > 0, seen
    assert all(v > 0 for v in ok_topo.values()), ok_topo
    assert all(v > 0 for v in ok_prec.values()), ok_prec
    assert len(ok_models) == len(MODELS)
    assert throttled >= 5, throttled  # perturbed TDPs: some chips run below their peak clock


# ---- infer_search / infer_search_population twins ----------------------------------------------
def _small_search_case(rng):
    chip = chip_arr(str(rng.choice(CHIPS)))
    chip[L.C_DOMAIN] = float(rng.choice([2, 4, 8]))
    return icase(chip, n_chips=int(rng.choice([1, 2, 4, 8, 16])),
                 model=str(rng.choice(["llama3-8b", "mixtral-8x7b", "llama3-70b"])),
                 isl=int(rng.integers(16, 4096)), osl=int(rng.integers(1, 1024)),
                 concurrency=None if rng.random() < 0.5 else int(rng.integers(1, 300)),
                 precision=str(rng.choice(["bf16", "fp8"])),
                 itl_slo_s=0.05 if rng.random() < 0.2 else None,
                 topology=str(rng.choice(TOPOLOGIES)))


def test_infer_search_matches_py_func():
    rng = np.random.default_rng(11)
    statuses = []
    for _ in range(25):
        arrays = _small_search_case(rng)
        st, mp, out, counts = search_both(arrays)
        statuses.append(st)
        if st == L.S_OK:
            assert_ok_infer(arrays, mp, out)
            assert counts[L.S_OK] >= 1
            # replicas use every chip
            n = arrays[1][L.K_N_CHIPS]
            assert mp[L.P_DP] == n // (mp[L.P_TP] * mp[L.P_PP])
        else:
            assert counts[L.S_OK] == 0 and counts[st] == counts[1:].max()
    assert statuses.count(L.S_OK) >= 12, statuses
    # a fixed field is honoured by both
    arrays = icase(n_chips=8, model="mixtral-8x7b")
    fixed = pack.fixed_array(Mapping(tp=4, ep=2))
    st, mp, _out, _cnt = search_both(arrays, fixed)
    assert st == L.S_OK and (mp[L.P_TP], mp[L.P_EP]) == (4, 2)
    assert mp[L.P_DP] * mp[L.P_PP] == 2  # two replicas, or one of two pipelined stages


def test_infer_search_population_matches_rows_and_py_func():
    rng = np.random.default_rng(12)
    rows = [_small_search_case(rng) for _ in range(6)]
    # one model and job for the whole population (as evaluate_designs does)
    model, job = rows[0][2], rows[0][3]
    chips = np.stack([r[0] for r in rows])
    chips[2, L.C_HBM_B] = 1e9  # nothing fits: an infeasible row among feasible ones
    clusters = np.stack([r[1] for r in rows])
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    n = len(rows)

    def run(fn):
        mps = np.zeros((n, L.MAP_LEN), np.int64)
        outs = np.zeros((n, L.IOUT_LEN))
        counts = np.zeros((n, L.N_STATUS), np.int64)
        status = np.zeros(n, np.int64)
        fn(chips, clusters, model, job, fixed, mps, outs, counts, status)
        return status, mps, outs, counts

    st_j, mp_j, out_j, cnt_j = run(infer_search_population)
    st_p, mp_p, out_p, cnt_p = run(infer_search_population.py_func)
    np.testing.assert_array_equal(st_j, st_p)
    np.testing.assert_array_equal(mp_j, mp_p)
    np.testing.assert_array_equal(cnt_j, cnt_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    for i in range(n):
        st, mp, out, cnt = run_search(infer_search, (chips[i], clusters[i], model, job))
        assert st == st_j[i]
        np.testing.assert_array_equal(mp, mp_j[i])
        np.testing.assert_array_equal(cnt, cnt_j[i])
        np.testing.assert_allclose(out, out_j[i], rtol=RTOL, atol=0.0)
    assert st_j[2] == L.S_OOM
    assert (st_j == L.S_OK).sum() >= 3, st_j


# ---- edge inputs ---------------------------------------------------------------------------
def test_batch_that_does_not_fit_is_oom():
    arrays = icase(n_chips=8, model="llama3-70b", isl=4096, osl=1024)
    st, out = eval_both(arrays, imap(tp=8, b=4096))
    assert st == L.S_OOM
    assert out[L.IO_MEM_B] > HBM_UTIL * arrays[0][L.C_HBM_B]
    st, _out = eval_both(arrays, imap(tp=8, b=8))
    assert st == L.S_OK


def test_405b_bf16_on_one_h100_is_oom_with_reason():
    arrays = icase(n_chips=1, model="llama3-405b")
    st, _mp, _out, counts = search_both(arrays)
    assert st == L.S_OOM and counts[L.S_OK] == 0
    res = perf.evaluate(H100, ClusterSpec(n_chips=1), InferJob(get_model("llama3-405b"), 1024,
                                                              256))
    assert not res.feasible
    assert res.reason.startswith(pack.STATUS_REASONS[L.S_OOM])
    assert "out of memory" in res.reason
    assert res.tokens_per_s == 0.0 and res.mapping == Mapping()


def test_fp8_on_a100_has_no_compute():
    arrays = icase(chip_arr("a100-sxm-80gb"), n_chips=8, model="llama3-8b", precision="fp8")
    assert eval_both(arrays, imap(tp=2, dp=4, b=16))[0] == L.S_NO_COMPUTE
    st, _mp, _out, counts = search_both(arrays)
    assert st == L.S_NO_COMPUTE and counts[L.S_NO_COMPUTE] == counts.sum()
    res = perf.evaluate(get_chip("a100-sxm-80gb"), ClusterSpec(n_chips=8),
                        InferJob(get_model("llama3-8b"), 1024, 256, precision="fp8"))
    assert not res.feasible and "no matmul throughput" in res.reason
    # the same job in bf16 runs
    arrays = icase(chip_arr("a100-sxm-80gb"), n_chips=8, model="llama3-8b")
    assert eval_both(arrays, imap(tp=2, dp=4, b=16))[0] == L.S_OK


def test_zero_scaleup_bandwidth_with_tp_is_no_bw():
    arrays = icase(chip_arr(C_UP_BPS=0.0), n_chips=8, model="llama3-70b")
    for mp in (imap(tp=2, b=4), imap(tp=8, b=4), imap(tp=1, pp=2, b=4)):
        assert eval_both(arrays, mp)[0] == L.S_NO_BW
    # the search falls back to what needs no scale-up link: tp = pp = 1 does not fit 70B
    st, _mp, _out, counts = search_both(arrays)
    assert st == L.S_NO_BW and counts[L.S_OK] == 0
    # llama3-8b fits one chip: the search finds tp = pp = 1 replicas
    arrays = icase(chip_arr(C_UP_BPS=0.0), n_chips=8, model="llama3-8b")
    st, mp, _out, _cnt = search_both(arrays)
    assert st == L.S_OK and (mp[L.P_TP], mp[L.P_PP], mp[L.P_DP]) == (1, 1, 8)


def test_too_tight_latency_limits_are_slo():
    for kw in ({"itl_slo_s": 1e-6}, {"ttft_slo_s": 1e-6}):
        arrays = icase(n_chips=8, model="llama3-8b", **kw)
        assert eval_both(arrays, imap(tp=8, b=1))[0] == L.S_SLO
        st, _mp, _out, counts = search_both(arrays)
        assert st == L.S_SLO and counts[L.S_OK] == 0
        res = perf.evaluate(H100, ClusterSpec(n_chips=8),
                            InferJob(get_model("llama3-8b"), 1024, 256, **kw))
        assert not res.feasible and "latency limits" in res.reason


INVALID = [
    ("llama3-8b", {"tp": 3}, "tp does not divide the heads"),
    ("llama3-70b", {"tp": 16, "pp": 2}, "tp x pp exceeds the chips"),
    ("mixtral-8x7b", {"tp": 4, "ep": 3}, "ep does not divide the experts"),
    ("mixtral-8x7b", {"tp": 16, "ep": 16}, "ep larger than the experts"),
    ("mixtral-8x7b", {"tp": 2, "ep": 4}, "ep larger than the replica"),
    ("llama3-8b", {"tp": 2, "ep": 2}, "ep on a dense model"),
    ("llama3-8b", {"tp": 4, "dp": 8}, "replicas exceed the chips"),
    ("llama3-8b", {"b": 0}, "zero batch"),
    ("llama3-8b", {"tp": 0}, "zero tp"),
]


@pytest.mark.parametrize(("model", "kw", "what"), INVALID, ids=[w for _, _, w in INVALID])
def test_invalid_mappings(model, kw, what):
    arrays = icase(chip_arr(C_DOMAIN=16.0), n_chips=16, model=model)
    st, out = eval_both(arrays, imap(**kw))
    assert st == L.S_INVALID, what
    assert not np.any(out)


def test_tp_beyond_the_kv_heads_replicates_them():
    arrays = icase(chip_arr(C_DOMAIN=16.0), n_chips=16, model="llama3-70b")  # 8 kv heads
    st16, _ = eval_both(arrays, imap(tp=16, b=16))
    assert st16 == L.S_OK
    _w8, kv8 = memory_per_chip(arrays[2], arrays[3], 8, 1, 1)
    _w16, kv16 = memory_per_chip(arrays[2], arrays[3], 16, 1, 1)
    assert kv16 == kv8  # one kv head per chip either way


def test_search_with_fixed_invalid_fields_is_invalid():
    arrays = icase(n_chips=8, model="llama3-8b")
    for m in (Mapping(ep=2), Mapping(tp=3)):
        st, _mp, _out, counts = search_both(arrays, pack.fixed_array(m))
        assert st == L.S_INVALID and counts[L.S_OK] == 0
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    fixed[L.P_TP] = 0  # a degree fixed at 0
    assert search_both(arrays, fixed)[0] == L.S_INVALID


def _nan_params():
    params = [pytest.param("chip", c, id=f"chip[{c}]") for c in range(L.CHIP_LEN)]
    for c in range(L.CLUSTER_LEN):
        params.append(pytest.param("cluster", c, id=f"cluster[{c}]"))
    return params


@pytest.mark.parametrize(("target", "col"), _nan_params())
def test_nan_in_chip_or_cluster_never_gives_a_non_finite_ok(target, col):
    """Jitted only: int(NaN) (topology, domain) raises in Python but not in numba."""
    for model, prec, mp in (("llama3-8b", "bf16", imap(tp=1, dp=2, b=8)),
                            ("llama3-70b", "bf16", imap(tp=8, b=32)),
                            ("mixtral-8x7b", "fp8", imap(tp=4, pp=2, ep=8, b=16))):
        arrays = icase(n_chips=8, model=model, precision=prec)
        arrays[0 if target == "chip" else 1][col] = np.nan
        st, out = run_eval(infer_eval, arrays, mp)
        assert st != L.S_OK or np.all(np.isfinite(out)), (model, st, out)
        st, _mp, out, _cnt = run_search(infer_search, arrays)
        assert st != L.S_OK or np.all(np.isfinite(out)), (model, st, out)


# ---- physics through perf.evaluate ---------------------------------------------------------
def _ev(chip=H100, n_chips=8, mapping=None, model=LLAMA70B, isl=2048, osl=256, **kw):
    return perf.evaluate(chip, ClusterSpec(n_chips=n_chips), InferJob(model, isl, osl, **kw),
                         mapping=mapping)


def test_decode_is_memory_bound_and_reaches_the_balance_point():
    """H100, bf16, llama3-70b on tp=8: decode FLOPs per HBM byte start near 1 at batch 1 (every
    weight read for one token), rise with the batch and cross peak/bandwidth (~295 FLOP/B) at a
    batch of a few hundred (short 128+128 requests, so the KV cache does not dominate)."""
    balance = H100.tflops_bf16 / H100.hbm_tbps  # FLOP/s over B/s, both 1e12

    def intensity(b):
        r = _ev(mapping=Mapping(tp=8, micro_batch=b), isl=128, osl=128)
        assert r.feasible, (b, r.reason)
        return r.decode_flops_per_byte

    series = [intensity(2**i) for i in range(10)]  # batch 1 .. 512
    assert series[0] < balance / 100, series[0]
    assert all(a < b for a, b in itertools.pairwise(series)), series
    # bisect for the first batch at the balance point (intensity rises with the batch)
    hi = 1
    while intensity(hi) < balance:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if intensity(mid) < balance else (lo, mid)
    cross = hi
    assert 100 <= cross <= 1000, f"balance point at batch {cross} (peak/bw = {balance:.0f})"
    print(f"decode balance point: batch {cross} (peak/bw = {balance:.1f} FLOP/B)")


def test_prefill_scales_linearly_with_input_length():
    t = {isl: _ev(mapping=Mapping(tp=8, micro_batch=1), isl=isl, concurrency=1).prefill_s
         for isl in (2048, 4096, 8192)}
    for a, b in ((2048, 4096), (4096, 8192)):
        ratio = t[b] / t[a]
        assert 1.8 <= ratio <= 2.3, (a, b, ratio, t)


@pytest.mark.parametrize(("model", "n_chips"), [("llama3-8b", 1), ("llama3-70b", 4)])
def test_flops_speed_prefill_bandwidth_speeds_decode(model, n_chips):
    m = get_model(model)
    # timing only: lift the power limit (a faster chip at the same TDP may exceed it)
    h100 = dataclasses.replace(H100, tdp_w=1e9)
    fast = dataclasses.replace(h100, tflops_bf16=2 * H100.tflops_bf16)
    wide = dataclasses.replace(h100, hbm_tbps=2 * H100.hbm_tbps)
    base, f, w = (_ev(c, n_chips, model=m, isl=4096, concurrency=1) for c in (h100, fast, wide))
    gain = {
        "flops": (1 - f.prefill_s / base.prefill_s, 1 - f.itl_s / base.itl_s),
        "bw": (1 - w.prefill_s / base.prefill_s, 1 - w.itl_s / base.itl_s),
    }
    msg = f"(prefill, batch-1 ITL) shortened by {gain}"
    assert gain["flops"][0] > 0.30 and gain["flops"][1] < 0.10, msg
    assert gain["bw"][1] > 0.25 and gain["bw"][0] < 0.10, msg
    # the batch-1 decode step reads every weight and the whole KV cache once: doubling the
    # bandwidth saves at least half of that read at the peak bandwidth (the per-kernel launch
    # cost and the tensor-parallel latency, which do not move, are what keep the gain < 50 %)
    read_gb = base.memory_gb["weights"] + base.memory_gb["kv_cache"]
    half_read_s = 0.5 * read_gb / H100.hbm_tbps / 1e3
    assert base.itl_s - w.itl_s >= half_read_s, (base.itl_s - w.itl_s, half_read_s)


def test_more_kv_room_allows_a_larger_batch():
    tps = {}
    for hbm in (80.0, 120.0, 160.0):
        chip = dataclasses.replace(H100, hbm_gb=hbm)
        fixed_tp = _ev(chip, mapping=Mapping(tp=4))
        free = _ev(chip)
        in_flight = free.mapping.dp * free.mapping.pp * free.mapping.micro_batch  # pipelined
        tps[hbm] = (fixed_tp.mapping.micro_batch, in_flight, free.tokens_per_s)
    vals = [tps[k] for k in sorted(tps)]
    for a, b in itertools.pairwise(vals):
        assert b[0] > a[0], tps  # same replicas: a larger batch per replica
        assert b[1] > a[1], tps  # free search: more sequences in flight
        assert b[2] > a[2], tps  # and more tokens/s
    bf16_kv = _ev(kv_precision="bf16", mapping=Mapping(tp=4))
    fp8_kv = _ev(kv_precision="fp8", mapping=Mapping(tp=4))
    assert fp8_kv.mapping.micro_batch > 1.8 * bf16_kv.mapping.micro_batch
    assert fp8_kv.tokens_per_s > bf16_kv.tokens_per_s


def test_fp8_weights_raise_decode_throughput():
    bf16, fp8 = _ev(precision="bf16"), _ev(precision="fp8")
    gain = fp8.tokens_per_s / bf16.tokens_per_s - 1
    assert gain > 0.30, f"fp8 tokens/s +{gain:.0%}"
    bf16_1, fp8_1 = _ev(precision="bf16", concurrency=1), _ev(precision="fp8", concurrency=1)
    assert fp8_1.itl_s < bf16_1.itl_s
    # same mapping, batch 1: half the weight bytes -> clearly shorter decode steps; the step
    # saves at least the halved weight read at the peak bandwidth (launch costs and the
    # tensor-parallel all-reduce latency, the same in both precisions, are what remain)
    mp = Mapping(tp=8, micro_batch=1)
    lo, hi = _ev(precision="fp8", mapping=mp), _ev(precision="bf16", mapping=mp)
    assert lo.itl_s < 0.85 * hi.itl_s
    saved_gb = hi.memory_gb["weights"] - lo.memory_gb["weights"]
    assert saved_gb == pytest.approx(0.5 * hi.memory_gb["weights"])
    assert hi.itl_s - lo.itl_s >= saved_gb / H100.hbm_tbps / 1e3


def test_itl_limit_is_met_and_shrinks_the_batch():
    free = _ev()
    for limit in (0.1, 0.05, 0.02):
        r = _ev(itl_slo_s=limit)
        assert r.feasible and r.itl_s <= limit
        assert r.mapping.micro_batch < free.mapping.micro_batch
        assert r.tokens_per_s < free.tokens_per_s
    # TTFT limit likewise
    r = _ev(ttft_slo_s=0.8 * free.ttft_s)
    assert r.feasible and r.ttft_s <= 0.8 * free.ttft_s


def test_replicas_scale_throughput():
    one = _ev(n_chips=8, mapping=Mapping(tp=8))
    two = _ev(n_chips=16, mapping=Mapping(tp=8))
    assert two.mapping.dp == 2 * one.mapping.dp
    assert two.tokens_per_s == pytest.approx(2 * one.tokens_per_s, rel=0.01)
    assert two.itl_s == pytest.approx(one.itl_s, rel=1e-12)


def test_fixed_concurrency_throughput_is_bounded_by_the_requests_in_flight():
    for conc in (1, 3):
        r = _ev(isl=1024, concurrency=conc)
        assert r.feasible
        # each in-flight request emits at most one token per ITL
        assert r.tokens_per_s <= conc / r.itl_s * (1 + 1e-9), (conc, r.tokens_per_s, r.itl_s,
                                                                r.mapping)


# ---- infer_search against a brute force -----------------------------------------------------
def _pow2(hi: int) -> list[int]:
    return [v for v in (2**i for i in range(40)) if v <= hi]


def _largest_fitting_batch(arrays, mp) -> int:
    """Largest batch in [1, MAX_BATCH] that infer_eval does not reject for memory (0 if none):
    memory grows with the batch, so bisect."""
    out = np.zeros(L.IOUT_LEN)

    def fits(b):
        mp[L.P_MB] = b
        return infer_eval(*arrays, mp, out) != L.S_OOM

    if not fits(1):
        return 0
    if fits(MAX_BATCH):
        return MAX_BATCH
    lo, hi = 1, MAX_BATCH
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def brute_force_infer(arrays, fixed=None):
    """The candidate space of infer_search's docstring, written out: tp powers of 2 up to
    min(domain, heads), pp powers of 2 (<= MAX_PP, <= layers), ep powers of 2 dividing the
    experts within the replica (1 for dense models), replicas = chips // (tp pp), and the batch:
    ceil(concurrency / replicas) capped by what fits, or every power of 2 up to the largest
    batch that fits and that batch. Returns (best tokens/s, its ITL, its mapping)."""
    chip, cluster, model, job = arrays
    fixed = np.full(L.MAP_LEN, -1, np.int64) if fixed is None else fixed
    n = int(cluster[L.K_N_CHIPS])
    domain = max(1, int(chip[L.C_DOMAIN]))
    experts = int(model[L.M_EXPERTS])
    conc = job[L.I_CONC]

    def values(i, default):
        return [int(fixed[i])] if fixed[i] >= 0 else default

    best = (-1.0, math.inf, None)
    out = np.zeros(L.IOUT_LEN)
    for tp in values(L.P_TP, _pow2(min(domain, int(model[L.M_HEADS])))):
        for pp in values(L.P_PP, _pow2(min(MAX_PP, int(model[L.M_LAYERS])))):
            if tp * pp > n:
                continue
            dp = int(fixed[L.P_DP]) if fixed[L.P_DP] > 0 else n // (tp * pp)
            eps = [e for e in _pow2(max(1, experts)) if e <= tp * pp and (
                experts % e == 0 if experts else e == 1)]
            for ep in values(L.P_EP, eps):
                mp = imap(tp, pp, ep, dp, 1)
                b_fit = _largest_fitting_batch(arrays, mp)
                if fixed[L.P_MB] > 0:
                    batches = [int(fixed[L.P_MB])]
                elif conc > 0:
                    batches = [min(math.ceil(conc / dp), max(b_fit, 1))]
                else:
                    batches = sorted(set(_pow2(b_fit)) | {max(b_fit, 1)})
                for b in batches:
                    mp[L.P_MB] = b
                    if infer_eval(*arrays, mp, out) != L.S_OK:
                        continue
                    key = (out[L.IO_TPS], -out[L.IO_ITL])
                    if key > (best[0], -best[1]):
                        best = (out[L.IO_TPS], out[L.IO_ITL], mp.copy())
    return best


BRUTE_CASES = {
    "llama8b-8xh100-max-tput": lambda: icase(n_chips=8, model="llama3-8b"),
    "llama70b-8xa100-itl-limit": lambda: icase(chip_arr("a100-sxm-80gb"), n_chips=8,
                                               model="llama3-70b", itl_slo_s=0.05),
    "llama8b-4chips-domain2-conc7": lambda: icase(chip_arr(C_DOMAIN=2.0), n_chips=4,
                                                  model="llama3-8b", concurrency=7),
    "mixtral-8xh200-fp8-torus2d-conc100": lambda: icase(
        chip_arr("h200", C_DOMAIN=16.0), n_chips=8, model="mixtral-8x7b", precision="fp8",
        concurrency=100, topology="torus-2d"),
    "mixtral-4xmi300x-dragonfly": lambda: icase(chip_arr("mi300x"), n_chips=4,
                                                model="mixtral-8x7b", isl=4096, osl=512,
                                                topology="dragonfly"),
    "deepseek-16xb200-fp8": lambda: icase(chip_arr("b200"), n_chips=16, model="deepseek-v3",
                                          precision="fp8", isl=2048, osl=512),
}


@pytest.mark.parametrize("name", list(BRUTE_CASES))
def test_infer_search_finds_the_best_of_the_full_space(name):
    arrays = BRUTE_CASES[name]()
    st, mp, out, _counts = run_search(infer_search, arrays)
    best_tps, best_itl, best_mp = brute_force_infer(arrays)
    assert best_mp is not None, "the cases are feasible"
    assert st == L.S_OK
    assert out[L.IO_TPS] == best_tps, (mp.tolist(), best_mp.tolist())
    assert out[L.IO_ITL] == best_itl


@pytest.mark.parametrize("fixed", [Mapping(tp=2), Mapping(pp=2), Mapping(tp=1, micro_batch=64)],
                         ids=["tp2", "pp2", "tp1-batch64"])
def test_infer_search_with_fixed_fields_finds_the_best_of_the_restricted_space(fixed):
    arrays = icase(n_chips=8, model="mixtral-8x7b", precision="fp8")
    fx = pack.fixed_array(fixed)
    st, mp, out, _counts = run_search(infer_search, arrays, fx)
    best_tps, best_itl, best_mp = brute_force_infer(arrays, fx)
    assert st == L.S_OK and best_mp is not None
    assert (out[L.IO_TPS], out[L.IO_ITL]) == (best_tps, best_itl)
    for i in (L.P_TP, L.P_PP, L.P_MB):
        if fx[i] > 0:
            assert mp[i] == fx[i]


def test_pipeline_stages_serve_several_batches_at_once():
    """pp = 4: four batches in flight, one per stage, give close to 4x the tokens/s of one
    batch passing the stages alone, at a similar ITL, and hold four batches' KV cache."""
    mp = Mapping(tp=1, pp=4, micro_batch=32)
    h100 = dataclasses.replace(H100, tdp_w=1e9)  # timing only
    one = _ev(h100, n_chips=4, mapping=mp, isl=512, osl=256, concurrency=32)
    four = _ev(h100, n_chips=4, mapping=mp, isl=512, osl=256, concurrency=128)
    assert one.feasible and four.feasible, (one.reason, four.reason)
    ratio = four.tokens_per_s / one.tokens_per_s
    assert 3.0 < ratio <= 4.0 + 1e-9, ratio
    assert one.itl_s <= four.itl_s < 1.5 * one.itl_s
    assert four.memory_gb_per_chip > one.memory_gb_per_chip
    # with pp = 1 a fixed concurrency above the batch cannot add batches in flight
    flat = Mapping(tp=4, pp=1, micro_batch=32)
    assert (_ev(h100, n_chips=4, mapping=flat, isl=512, osl=256, concurrency=128).tokens_per_s
            == pytest.approx(_ev(h100, n_chips=4, mapping=flat, isl=512, osl=256,
                                 concurrency=32).tokens_per_s))


def test_serving_chip_over_its_tdp_throttles_and_may_then_miss_the_slo():
    """Serving on a chip whose limit is below its draw at peak: the clock that fits, within
    the limit; a latency limit met at peak clock but not at the throttled one is S_SLO."""
    chip = chip_arr("h100-sxm")
    arrays = icase(chip, n_chips=1, model="llama3-8b", isl=1000, osl=500)
    mp = np.zeros(L.MAP_LEN, np.int64)
    mp[L.P_TP] = mp[L.P_PP] = mp[L.P_DP] = mp[L.P_EP] = 1
    mp[L.P_MB] = 64
    st_full, out_full = eval_both(arrays, mp)
    assert st_full == L.S_OK and out_full[L.IO_CLOCK] == 1.0
    limit = 0.8 * out_full[L.IO_CHIP_W]
    capped = chip.copy()
    capped[L.C_TDP_W] = limit
    st, out = eval_both((capped, *arrays[1:]), mp)
    assert st == L.S_OK and out[L.IO_CLOCK] < 1.0 and out[L.IO_CHIP_W] <= limit
    assert out[L.IO_TPS] < out_full[L.IO_TPS] and out[L.IO_ITL] > out_full[L.IO_ITL]
    job = arrays[3].copy()
    job[L.I_ITL_SLO] = 0.5 * (out[L.IO_ITL] + out_full[L.IO_ITL])
    assert eval_both((chip, arrays[1], arrays[2], job), mp)[0] == L.S_OK
    assert eval_both((capped, arrays[1], arrays[2], job), mp)[0] == L.S_SLO
