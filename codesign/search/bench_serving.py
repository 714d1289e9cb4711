"""The serving-under-traffic benchmark problem of ``codesign bench`` (``serving_traffic``):
how many evaluations of serving with traffic percentiles (:func:`~codesign.model.kernels.
serving.serve_eval`: the goodput of a disaggregated DeepSeek-V3 deployment at a P99 ITL
limit, its latencies at P50/P90/P99) one thread makes per second, and how long the search of
a deployment (:func:`~codesign.model.kernels.serving_search.serve_search`: pools' mappings
and their split, or one pool's mapping and prefill chunk) takes."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
from numba import njit

from codesign.model import catalog, pack
from codesign.model.kernels import layout as L
from codesign.model.kernels.serving import serve_eval
from codesign.model.kernels.serving_search import serve_search
from codesign.model.specs import ClusterSpec, InferJob

PROBLEM = {"name": "serving-dsv3-disagg-64xh100", "model": "deepseek-v3", "chip": "h100-sxm",
           "n_chips": 64, "isl": 2048, "osl": 256, "precision": "fp8", "ttft_slo_s": 2.0,
           "itl_slo_s": 0.1, "percentile": 0.99, "isl_cv": 1.0, "osl_cv": 1.0,
           "prefill_chips": 32, "prefill": (1, 16, 1), "decode": (8, 2, 1, 512)}
"""The named problem: DeepSeek-V3 chat traffic (lognormal lengths, coefficient of variation
1) on 64 H100, 32 prefilling (pp 16) and 32 decoding (tp 8 x pp 2, up to 512 sequences)."""
CALLS = 20_000
REPEATS = 5


@njit(cache=False)  # as bench._eval_loop: a cached loop outside the kernels could call a
def _serve_loop(chip, cluster, model, job, traffic, mp_p, mp_d, out, n):
    st = 0
    for _ in range(n):
        st = serve_eval(chip, chip, cluster, model, job, traffic, mp_p, mp_d, out)
    return st


def _mapping(tp: int, pp: int, ep: int, b: int) -> np.ndarray:
    mp = np.zeros(L.MAP_LEN, np.int64)
    mp[[L.P_TP, L.P_PP, L.P_EP, L.P_DP, L.P_CP, L.P_VPP, L.P_MB]] = [tp, pp, ep, 1, 1, 1, b]
    return mp


def serving_traffic(calls: int = CALLS, repeats: int = REPEATS) -> dict[str, Any]:
    """Evaluations/s of :data:`PROBLEM` (median of ``repeats`` jitted loops of ``calls``),
    its result, and the seconds of the deployment searches (one pool, disaggregated)."""
    p = PROBLEM
    chip = catalog.get_chip(p["chip"])
    job = InferJob(catalog.get_model(p["model"]), p["isl"], p["osl"], precision=p["precision"],
                   ttft_slo_s=p["ttft_slo_s"], itl_slo_s=p["itl_slo_s"])
    arrays = (pack.chip_array(chip), pack.cluster_array(ClusterSpec(p["n_chips"])),
              pack.model_array(job.model), pack.infer_job_array(job))
    tr = np.zeros(L.TR_LEN)
    tr[L.TR_PCT], tr[L.TR_ISL_CV], tr[L.TR_OSL_CV] = p["percentile"], p["isl_cv"], p["osl_cv"]
    tr[L.TR_N_PREFILL] = p["prefill_chips"]
    mp_p, mp_d = _mapping(*p["prefill"], 1), _mapping(*p["decode"])
    out = np.zeros(L.SV_LEN)
    st = _serve_loop(*arrays, tr, mp_p, mp_d, out, 1)  # compile or load
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _serve_loop(*arrays, tr, mp_p, mp_d, out, calls)
        times.append((time.perf_counter() - t0) / calls)
    per = statistics.median(times)
    searches = {}
    for name, n_pre in (("one_pool", 0.0), ("disaggregated", -1.0)):
        t = tr.copy()
        t[L.TR_N_PREFILL] = n_pre
        fixed = np.full(L.MAP_LEN, -1, np.int64)
        bufs = (np.zeros(L.MAP_LEN, np.int64), np.zeros(L.MAP_LEN, np.int64),
                np.zeros(L.TR_LEN), np.zeros(L.SV_LEN), np.zeros(L.N_STATUS, np.int64))
        serve_search(arrays[0], arrays[0], *arrays[1:], t, fixed, *bufs)  # warm-up
        t0 = time.perf_counter()
        s = serve_search(arrays[0], arrays[0], *arrays[1:], t, fixed, *bufs)
        searches[name] = {"seconds": time.perf_counter() - t0, "status": int(s),
                          "goodput_rps": float(bufs[3][L.SV_RATE]),
                          "prefill_chips": float(bufs[2][L.TR_N_PREFILL]),
                          "chunk": float(bufs[2][L.TR_CHUNK])}
    return {"name": p["name"], "problem": {k: v for k, v in p.items() if k != "name"},
            "evals_per_s": 1.0 / per if per > 0 else math.inf, "single_eval_us": per * 1e6,
            "status": int(st), "goodput_rps": float(out[L.SV_RATE]),
            "ttft_p99_s": float(out[L.SV_TTFT_P99]), "itl_p99_s": float(out[L.SV_ITL_P99]),
            "search": searches}
