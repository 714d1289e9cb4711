"""The serving-under-traffic kernels (model.kernels.queueing, .serving, .serving_search):
each against its pure-Python ``py_func``, the queueing formulas against closed forms, and the
model's properties (latencies grow with the rate, the goodput is the edge of the SLOs,
disaggregation removes the prefill stalls from the ITL)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from test_infer_kernel import icase, imap

from codesign.model.kernels import layout as L
from codesign.model.kernels import queueing as q
from codesign.model.kernels.serving import serve_eval
from codesign.model.kernels.serving_search import MAX_SPLITS, serve_search


def traffic(rate=0.0, isl_cv=0.0, osl_cv=0.0, hit=0.0, k=0, acc=0.0, cost=0.0, chunk=0.0,
            pct=0.99, n_pre=0, kv_up=0) -> np.ndarray:
    t = np.zeros(L.TR_LEN)
    t[[L.TR_RATE, L.TR_ISL_CV, L.TR_OSL_CV, L.TR_PREFIX_HIT, L.TR_SPEC_K, L.TR_SPEC_ACCEPT,
       L.TR_SPEC_COST, L.TR_CHUNK, L.TR_PCT, L.TR_N_PREFILL, L.TR_KV_UP]] = [
        rate, isl_cv, osl_cv, hit, k, acc, cost, chunk, pct, n_pre, kv_up]
    return t


def case(ttft=2.0, itl=0.05, n=32, model="llama3-70b"):
    return icase(n_chips=n, model=model, isl=2048, osl=256, ttft_slo_s=ttft, itl_slo_s=itl,
                 precision="fp8")


def run(fn, arr, tr, mp_p, mp_d):
    out = np.zeros(L.SV_LEN)
    st = fn(arr[0], arr[0], arr[1], arr[2], arr[3], tr, mp_p, mp_d, out)
    return st, out


PRE, DEC, CO = imap(tp=2, b=1), imap(tp=2, b=128), imap(tp=4, b=256)


@pytest.mark.parametrize("tr,mp_p,mp_d", [
    (traffic(chunk=512, isl_cv=1.0, osl_cv=1.0), CO, CO),
    (traffic(isl_cv=0.5), CO, CO),
    (traffic(n_pre=16, isl_cv=1.0, osl_cv=0.5, hit=0.3), PRE, DEC),
    (traffic(n_pre=12, k=3, acc=0.7, cost=0.05, rate=5.0), PRE, DEC),
    (traffic(n_pre=8, kv_up=1, rate=500.0), PRE, DEC),  # over capacity
    (traffic(pct=1.5), CO, CO),  # bad input
])
def test_serve_eval_matches_py_func(tr, mp_p, mp_d) -> None:
    arr = case()
    st, out = run(serve_eval, arr, tr, mp_p, mp_d)
    st2, out2 = run(serve_eval.py_func, arr, tr, mp_p, mp_d)
    assert st == st2
    np.testing.assert_allclose(out, out2, rtol=1e-9, atol=1e-12)


def test_queueing_formulas() -> None:
    nd = statistics.NormalDist()
    for p in (1e-6, 0.01, 0.3, 0.5, 0.9, 0.99, 0.999999):
        assert q.norm_ppf(p) == pytest.approx(nd.inv_cdf(p), rel=1e-8, abs=1e-9)
        assert q.norm_ppf.py_func(p) == q.norm_ppf(p)
    # lognormal: the median is mean / sqrt(1 + cv^2); cv 0 is the mean
    assert q.lognormal_quantile(100.0, 1.0, 0.5) == pytest.approx(100 / math.sqrt(2))
    assert q.lognormal_quantile(100.0, 0.0, 0.99) == 100.0
    # Erlang C: one server waits with probability rho; a known value (c = 2, a = 1: 1/3)
    assert q.erlang_c(1, 0.7) == pytest.approx(0.7)
    assert q.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert q.erlang_c.py_func(7, 5.0) == pytest.approx(q.erlang_c(7, 5.0))
    # M/M/1: P(W > t) = rho exp(-(mu - lam) t), exactly the formula at scv = 1
    mu, lam, p = 10.0, 7.0, 0.99
    t = q.wait_quantile(1, mu, lam, 1.0, p)
    assert 0.7 * math.exp(-(mu - lam) * t) == pytest.approx(1 - p)
    assert q.wait_quantile(1, mu, lam, 1.0, 0.2) == 0.0  # most arrivals do not wait
    assert q.wait_quantile(1, mu, 10.0, 1.0, p) == math.inf
    assert q.wait_quantile.py_func(3, mu, 25.0, 0.5, p) == q.wait_quantile(3, mu, 25.0, 0.5, p)
    # speculative decoding (Leviathan et al.): 1 token without drafts, k + 1 if all accepted
    assert q.spec_tokens(0, 0.9) == 1.0 and q.spec_tokens(4, 1.0) == 5.0
    assert q.spec_tokens(3, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert q.spec_low_tokens(3, 0.8, 0.99) == 1.0 and q.spec_low_tokens(3, 1.0, 0.99) == 4.0


def test_latencies_grow_with_the_rate_and_goodput_is_the_slo_edge() -> None:
    arr = case()
    prev = None
    for rate in (0.5, 2.0, 8.0, 16.0):
        st, out = run(serve_eval, arr, traffic(n_pre=16, isl_cv=1.0, rate=rate), PRE, DEC)
        assert out[L.SV_RATE] == rate and out[L.SV_TPS] == pytest.approx(rate * 256)
        assert out[L.SV_TTFT_P50] <= out[L.SV_TTFT_P90] <= out[L.SV_TTFT_P99]
        assert out[L.SV_ITL_P50] <= out[L.SV_ITL_P90] <= out[L.SV_ITL_P99]
        if prev is not None:
            assert out[L.SV_TTFT_P99] >= prev[L.SV_TTFT_P99]
            assert out[L.SV_ITL_P99] >= prev[L.SV_ITL_P99]
        prev = out
    st, good = run(serve_eval, arr, traffic(n_pre=16, isl_cv=1.0), PRE, DEC)
    assert st == L.S_OK and good[L.SV_RATE] > 0
    limit = max(good[L.SV_TTFT_PCT] / 2.0, good[L.SV_ITL_PCT] / 0.05)
    # at the edge: the bisection's last rate (within 1e-6 of the capacity) is a few 1e-6
    # below the limit, where the latency is steep
    assert limit == pytest.approx(1.0, abs=1e-5) or good[L.SV_RATE] == pytest.approx(
        0.95 * min(good[L.SV_PREFILL_CAP], good[L.SV_DECODE_CAP]))
    st, _ = run(serve_eval, arr, traffic(n_pre=16, isl_cv=1.0, rate=good[L.SV_RATE] * 1.01),
                PRE, DEC)
    assert st == L.S_SLO


def test_disaggregation_removes_prefill_stalls_from_the_itl() -> None:
    """On one pool, prompts prefilled between or inside decode steps stretch the slow
    inter-token gaps; a decode pool of the same mapping has none."""
    arr = case(itl=0.0, ttft=0.0)
    rate = 4.0
    _, co = run(serve_eval, arr, traffic(rate=rate, chunk=2048.0), DEC, DEC)
    _, dis = run(serve_eval, arr, traffic(rate=rate, n_pre=16), PRE, DEC)
    assert co[L.SV_ITL_P99] > 2 * dis[L.SV_ITL_P99]
    assert co[L.SV_ITL_P50] == pytest.approx(dis[L.SV_ITL_P50], rel=0.3)


def test_prefix_hits_and_speculation_help() -> None:
    arr = case()
    _, base = run(serve_eval, arr, traffic(n_pre=16, rate=4.0), PRE, DEC)
    _, hit = run(serve_eval, arr, traffic(n_pre=16, rate=4.0, hit=0.5), PRE, DEC)
    _, spec = run(serve_eval, arr, traffic(n_pre=16, rate=4.0, k=3, acc=0.8, cost=0.05),
                  PRE, DEC)
    assert hit[L.SV_TTFT_P50] < base[L.SV_TTFT_P50]
    assert spec[L.SV_TOKENS_PER_STEP] == pytest.approx(q.spec_tokens(3, 0.8))
    assert spec[L.SV_E2E_PCT] < base[L.SV_E2E_PCT]


def test_bad_traffic_and_mappings_are_status_codes() -> None:
    arr = case()
    for tr in (traffic(pct=0.0), traffic(hit=1.0), traffic(acc=1.5), traffic(rate=-1.0)):
        assert run(serve_eval, arr, tr, CO, CO)[0] == L.S_BAD_INPUT
    assert run(serve_eval, arr, traffic(n_pre=32), PRE, DEC)[0] == L.S_INVALID  # no decoder
    assert run(serve_eval, arr, traffic(), imap(tp=3, b=8), imap(tp=3, b=8))[0] == L.S_INVALID
    assert run(serve_eval, arr, traffic(), imap(tp=1, b=4096), imap(tp=1, b=4096))[0] \
        == L.S_OOM


def _search(fn, arr, tr):
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    bp, bd = np.zeros(L.MAP_LEN, np.int64), np.zeros(L.MAP_LEN, np.int64)
    btr, bo = np.zeros(L.TR_LEN), np.zeros(L.SV_LEN)
    counts = np.zeros(L.N_STATUS, np.int64)
    st = fn(arr[0], arr[0], arr[1], arr[2], arr[3], tr, fixed, bp, bd, btr, bo, counts)
    return st, bp, bd, btr, bo, counts


@pytest.mark.parametrize("n_pre", [0, -1, 12])
def test_serve_search_matches_py_func_and_is_best_of_its_candidates(n_pre: int) -> None:
    arr = case(n=16)
    tr = traffic(n_pre=n_pre, isl_cv=1.0, osl_cv=1.0)
    got = _search(serve_search, arr, tr)
    ref = _search(serve_search.py_func, arr, tr)
    assert got[0] == ref[0] == L.S_OK
    for a, b in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    _, bp, bd, btr, bo, _ = got
    # no split of the chosen pools (or chunk of the one pool) serves more
    if n_pre == 0:
        others = [btr.copy() for _ in range(5)]
        for o, c in zip(others, (0.0, 256.0, 512.0, 1024.0, 2048.0), strict=True):
            o[L.TR_CHUNK] = c
    elif n_pre < 0:
        r_p = bp[L.P_TP] * bp[L.P_PP]
        n_rep = (16 - bd[L.P_TP] * bd[L.P_PP]) // r_p
        assert n_rep <= MAX_SPLITS  # every split was tried
        others = []
        for i in range(1, n_rep + 1):
            others.append(btr.copy())
            others[-1][L.TR_N_PREFILL] = i * r_p
    else:
        assert btr[L.TR_N_PREFILL] == 12
        others = []
    for o in others:
        st2, out = run(serve_eval, arr, o, bp, bd)
        assert st2 != L.S_OK or out[L.SV_RATE] <= bo[L.SV_RATE] + 1e-9
