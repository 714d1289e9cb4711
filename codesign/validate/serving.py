"""Serving measurements under traffic and disaggregation (``serving_cases.csv``, sources and
conversions in ``SERVING_CASES.md``) against the serving kernels' predictions.

Each row's metric is predicted from the phase it measures:

* ``input_tokens_per_s[_per_node]``: the prefill pool at full passes (prompts/s of the best
  mapping per chip x prompt tokens; a node is 8 chips), prefix-cache hits served without
  prefill and counted as input;
* ``output_tokens_per_s[_per_node]``, ``itl_mean_s``: the decode pool at the row's batch
  (its concurrency over the decode replicas; else the largest batch within the row's ITL
  limit, else the largest that fits);
* ``ttft_p50_s``, ``itl_p50_s`` at concurrency 1: a prompt's prefill alone, a batch-1 step;
* ``goodput_rps``: :func:`~codesign.model.serving.evaluate_traffic` at the row's limits and
  percentile, one pool or disaggregated as measured.

Rows whose model or chip the catalog lacks, or whose metric the model does not predict, are
returned with the reason (``skipped``).
"""

from __future__ import annotations

import csv
import math
import statistics
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import ConfigError
from codesign.model import catalog, pack
from codesign.model.catalog.assume import fill_unknowns
from codesign.model.kernels import layout as L
from codesign.model.kernels.infer import kv_room, memory_per_chip
from codesign.model.kernels.queueing import spec_tokens
from codesign.model.kernels.serving import PRIM_LEN, decode_prims, prefill_prims
from codesign.model.kernels.serving_search import _shapes
from codesign.model.serving import Traffic, evaluate_traffic
from codesign.model.specs import ClusterSpec, InferJob
from codesign.model.traffic import ASSUMED_OUTPUT_LEN

NODE = 8
"""Chips per node in the per-node metrics (8-GPU HGX/DGX nodes in every source)."""
NIC_GBPS = 400.0
"""Scale-out per chip where the catalog has none (one 400 Gb/s NIC per GPU, as the HGX
nodes of the sources)."""


REQUIRED = ("case_id", "model", "chip", "n_chips", "mode", "metric", "value")
"""Columns a serving cases CSV must have (the others may be absent: unknown)."""


def cases_path() -> Path:
    """The packaged serving measurements."""
    return Path(str(resources.files("codesign.model.catalog").joinpath("serving_cases.csv")))


def _num(row: dict[str, str], key: str) -> float | None:
    v = row.get(key, "").strip()
    try:
        return float(v) if v else None
    except ValueError:
        return None


def _percentile(text: str) -> float:
    t = text.strip().lower()
    if t.startswith("p") and t[1:].replace(".", "").isdigit():
        return float(t[1:]) / 100.0
    return 0.99


def predict(row: dict[str, str]) -> tuple[float | None, str]:
    """The model's value of a row's metric (SI units) and '' or why it is not predicted."""
    metric = row["metric"]
    if row["model"] not in catalog.model_ids():
        return None, f"model {row['model']} not in the catalog"
    if row["chip"] not in catalog.chip_ids():
        return None, f"chip {row['chip']} not in the catalog"
    chip, _ = fill_unknowns(catalog.get_chip(row["chip"]))  # the stated assumptions
    isl = _num(row, "input_len") or 2048.0
    osl = _num(row, "output_len") or float(ASSUMED_OUTPUT_LEN)
    # DeepSeek-V3 is served in its native fp8 in every source; the others (Splitwise,
    # DistServe, Sarathi-Serve, 2023-24 vLLM-based systems) in fp16
    prec = "fp8" if row["model"] == "deepseek-v3" and chip.tflops_fp8 else "bf16"
    job = InferJob(catalog.get_model(row["model"]), int(isl), osl, precision=prec,
                   ttft_slo_s=_num(row, "ttft_slo_s"), itl_slo_s=_num(row, "itl_slo_s"))
    n = int(_num(row, "n_chips") or NODE)
    try:
        chip_a = pack.chip_array(chip, None if chip.scaleout_gbps else NIC_GBPS)
    except pack.UnknownSpecError as exc:
        return None, str(exc)
    cl_a = pack.cluster_array(ClusterSpec(n))
    model_a, job_a = pack.model_array(job.model), pack.infer_job_array(job)
    tr = Traffic(prefix_hit=_num(row, "prefix_hit") or 0.0, disaggregated=True,
                 prefill_chips=max(1, n // 2)).array()
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    prim = np.zeros(PRIM_LEN)
    mp = np.zeros(L.MAP_LEN, np.int64)
    if metric.startswith("input_tokens_per_s"):
        best = 0.0
        for tp, pp, ep in _shapes(chip_a, model_a, fixed, n):
            mp[:] = 0
            mp[[L.P_TP, L.P_PP, L.P_EP, L.P_DP, L.P_CP, L.P_VPP, L.P_MB]] = [tp, pp, ep, 1, 1,
                                                                              1, 1]
            if prefill_prims(chip_a, cl_a, model_a, job_a, tr, mp, n, True, prim) == L.S_OK:
                best = max(best, prim[1] / (tp * pp))
        if best <= 0:
            return None, "no prefill mapping fits"
        # prompts/s x whole prompts: tokens found in the prefix cache count as served input
        return best * isl * (NODE if metric.endswith("per_node") else n), ""
    if metric.startswith("output_tokens_per_s") or metric == "itl_mean_s":
        conc = _num(row, "concurrency")
        n_d = int(_num(row, "decode_chips") or n)
        best, best_itl = 0.0, math.nan
        for tp, pp, ep in _shapes(chip_a, model_a, fixed, n_d):
            w, kv = memory_per_chip(model_a, job_a, tp, pp, ep)
            room = kv_room(chip_a, w)
            b_mem = int(room // kv) if kv > 0 and room > 0 else 0
            if b_mem < 1:
                continue
            b = b_mem if conc is None else min(b_mem, max(1, int(conc * tp * pp / n_d)))
            mp[:] = 0
            mp[[L.P_TP, L.P_PP, L.P_EP, L.P_DP, L.P_CP, L.P_VPP, L.P_MB]] = [tp, pp, ep, 1, 1,
                                                                              1, b]
            if decode_prims(chip_a, cl_a, model_a, job_a, tr, mp, n_d, prim) != L.S_OK:
                continue
            step = prim[8]
            slo = job.itl_slo_s
            if conc is None and slo and step > slo and b > 1:
                g = (prim[8] - prim[7]) / (b - 1)
                b = max(1, int(1 + (slo - prim[7]) / g)) if g > 0 else 1
                step = prim[7] + g * (b - 1)
            tps = b * spec_tokens(0, 0.0) / step / (tp * pp)
            if tps > best:
                best, best_itl = tps, step
        if best <= 0:
            return None, "no decode mapping fits"
        if metric == "itl_mean_s":
            return best_itl, ""
        return best * (NODE if metric.endswith("per_node") else n_d), ""
    if metric in ("ttft_p50_s", "itl_p50_s") and _num(row, "concurrency") == 1:
        # one request alone on the deployment as measured: tp over the row's chips
        tp = int(_num(row, "prefill_tp") or min(n, chip.scaleup_domain or 1))
        res = evaluate_traffic(chip, ClusterSpec(n), job, Traffic(rate_rps=1e-6, chunk=0),
                               scaleout_gbps=None if chip.scaleout_gbps else NIC_GBPS, tp=tp,
                               pp=1)
        if not res["feasible"]:
            return None, res["reason"]
        return res["ttft_s" if metric.startswith("ttft") else "itl_s"]["p50"], ""
    if metric == "goodput_rps":
        disagg = row["mode"] == "disaggregated"
        res = evaluate_traffic(
            chip, ClusterSpec(n), job,
            Traffic(input_cv=_num(row, "input_cv") or 0.0,
                    output_cv=_num(row, "output_cv") or 0.0,
                    percentile=_percentile(row.get("slo_percentile", "")),
                    disaggregated=disagg,
                    prefill_chips=int(_num(row, "prefill_chips") or 0) if disagg else 0),
            scaleout_gbps=None if chip.scaleout_gbps else NIC_GBPS)
        return (res["goodput_rps"], "") if res["feasible"] else (None, res["reason"])
    return None, f"metric {metric} not predicted at this concurrency"


def serving_errors(path: str | Path | None = None) -> dict[str, Any]:
    """Every row with its prediction and error ((predicted - measured) / measured), the
    median |error| per metric family (throughput, latency, goodput) and overall, and the
    rows skipped with why."""
    path = Path(path) if path is not None else cases_path()
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(path, missing[0], "the columns of serving_cases.csv "
                              f"({', '.join(REQUIRED)} at least)",
                              f"columns {', '.join(reader.fieldnames or []) or 'none'}")
        rows = list(reader)
    out, skipped = [], []
    for row in rows:
        value = _num(row, "value")
        pred, why = predict(row)
        if pred is None or value is None or value <= 0:
            skipped.append({"case_id": row["case_id"], "metric": row["metric"],
                            "reason": why or "no measured value"})
            continue
        out.append({"case_id": row["case_id"], "metric": row["metric"], "measured": value,
                    "predicted": pred, "error": (pred - value) / value})

    def family(m: str) -> str:
        if m.startswith(("input_tokens", "output_tokens")):
            return "throughput"
        return "goodput" if m == "goodput_rps" else "latency"

    med = {}
    for fam in ("throughput", "latency", "goodput"):
        errs = [abs(r["error"]) for r in out if family(r["metric"]) == fam]
        med[fam] = {"rows": len(errs), "median_abs_error": statistics.median(errs)
                    if errs else None}
    allerr = [abs(r["error"]) for r in out]
    med["all"] = {"rows": len(allerr),
                  "median_abs_error": statistics.median(allerr) if allerr else None}
    return {"rows": out, "summary": med, "skipped": skipped}
