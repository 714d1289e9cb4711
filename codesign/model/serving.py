"""Serving under traffic, from Python: :class:`Traffic` (arrival rate, length distributions,
prefix cache, speculative decoding, the prefill chunk, the SLO percentile, disaggregation)
and :func:`evaluate_traffic`, the best deployment of one pool or of disaggregated prefill and
decode pools (the decode pool possibly of another chip) with its goodput and P50/P90/P99
latencies (kernels :mod:`codesign.model.kernels.serving`, ``serving_search``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from codesign.model import pack, tech
from codesign.model.cluster import build, facility
from codesign.model.kernels import layout as L
from codesign.model.kernels.serving_search import serve_search
from codesign.model.perf import (
    chip_price_usd,
    host_prices,
    job_cluster,
    overhead_w_per_chip,
    sized_cluster,
)
from codesign.model.specs import ChipSpec, ClusterSpec, InferJob

STATUS_REASONS = {L.S_OK: "", L.S_INVALID: "no mapping divides the model or the chips",
                  L.S_OOM: "does not fit in memory", L.S_NO_BW: "needs a network it lacks",
                  L.S_NO_COMPUTE: "no throughput at this precision",
                  L.S_BAD_INPUT: "invalid traffic or model numbers",
                  L.S_NO_CANDIDATE: "no deployment to try",
                  L.S_SLO: "no rate meets the latency limits at the percentile",
                  L.S_POWER: "over the chip's TDP"}


@dataclass(frozen=True)
class Traffic:
    """Requests as they arrive. Lengths are lognormal around the job's ``input_len`` and
    ``output_len`` (means) with these coefficients of variation (0: every request the mean;
    LMSYS-Chat-like chat traffic is near 1). Units: requests/s, tokens, shares 0..1."""

    rate_rps: float = 0.0
    """Offered requests/s (0: report the goodput, the highest rate within the limits)."""
    input_cv: float = 0.0
    output_cv: float = 0.0
    prefix_hit: float = 0.0
    """Share of prompt tokens found in the prefix cache (not prefilled again)."""
    spec_k: int = 0
    """Draft tokens per speculative-decoding step (0: none)."""
    spec_accept: float = 0.0
    """Probability that a draft token is accepted."""
    spec_cost: float = 0.05
    """One draft token's cost relative to a target decode step (a small draft model)."""
    chunk: int | None = None
    """One pool: prefill tokens per mixed step (0: whole prompts, no chunking; None:
    searched among whole prompts and 256 ... 2048)."""
    percentile: float = 0.99
    """The percentile the TTFT and ITL limits apply to (0.99: P99)."""
    disaggregated: bool = False
    """Separate prefill and decode pools (the split searched unless ``prefill_chips``)."""
    prefill_chips: int = 0
    kv_over_scaleup: bool = False
    """The KV cache moves over the scale-up network (both pools in one domain, e.g. an
    NVL72 rack), else over the scale-out NICs."""

    def array(self) -> np.ndarray:
        """The kernel's traffic row (layout ``TR_*``)."""
        t = np.zeros(L.TR_LEN)
        t[L.TR_RATE] = self.rate_rps
        t[L.TR_ISL_CV] = self.input_cv
        t[L.TR_OSL_CV] = self.output_cv
        t[L.TR_PREFIX_HIT] = self.prefix_hit
        t[L.TR_SPEC_K] = self.spec_k
        t[L.TR_SPEC_ACCEPT] = self.spec_accept
        t[L.TR_SPEC_COST] = self.spec_cost
        t[L.TR_CHUNK] = 0.0 if self.chunk is None else (self.chunk or -1.0)
        t[L.TR_PCT] = self.percentile
        t[L.TR_N_PREFILL] = (self.prefill_chips or -1) if self.disaggregated else 0
        t[L.TR_KV_UP] = 1.0 if self.kv_over_scaleup else 0.0
        return t


def _mapping_dict(mp: np.ndarray) -> dict[str, int]:
    return {"tp": int(mp[L.P_TP]), "pp": int(mp[L.P_PP]), "ep": int(mp[L.P_EP]),
            "max_batch": int(mp[L.P_MB])}


def evaluate_traffic(chip: ChipSpec, cluster: ClusterSpec, job: InferJob, traffic: Traffic,
                     decode_chip: ChipSpec | None = None,
                     scaleout_gbps: float | None = None, tp: int | None = None,
                     pp: int | None = None, prices: tech.Prices = tech.PRICES
                     ) -> dict[str, Any]:
    """The best deployment of ``job`` under ``traffic`` on ``cluster.n_chips`` chips
    (``decode_chip``: the decode pool's chip, disaggregated only; default ``chip``). Returns
    goodput (requests/s, output tokens/s), TTFT and ITL at P50/P90/P99 and at the limits'
    percentile (s), the request latency at that percentile, the pools' mappings and sizes,
    the KV transfer time, power (W), tokens/J, USD per million output tokens (``prices``)
    and why nothing serves (``reason``)."""
    chip = build.port_split(chip, cluster)
    whole = sized_cluster(chip, cluster, scaleout_gbps)
    cl, _ = job_cluster(whole)
    dec = chip if decode_chip is None else build.port_split(decode_chip, cluster)
    chip_a = pack.chip_array(chip, scaleout_gbps)
    dec_a = pack.chip_array(dec, scaleout_gbps)
    cl_a = pack.cluster_array(cl, overhead_w_per_chip(chip, cl, scaleout_gbps))
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    if tp is not None:
        fixed[L.P_TP] = tp
    if pp is not None:
        fixed[L.P_PP] = pp
    bp, bd = np.zeros(L.MAP_LEN, np.int64), np.zeros(L.MAP_LEN, np.int64)
    btr, out = np.zeros(L.TR_LEN), np.zeros(L.SV_LEN)
    counts = np.zeros(L.N_STATUS, np.int64)
    st = int(serve_search(chip_a, dec_a, cl_a, pack.model_array(job.model),
                          pack.infer_job_array(job), traffic.array(), fixed, bp, bd, btr, out,
                          counts))
    ok = st == L.S_OK
    disagg = ok and btr[L.TR_N_PREFILL] > 0
    cost_mtok = None
    if ok and out[L.SV_TPS] > 0:
        # TCO as perf.result_metrics: IT capex over its amortisation (each pool's chips at
        # their price), the building for the power drawn, energy at the facility meter
        n_p = btr[L.TR_N_PREFILL] if disagg else cl.n_chips
        price = (n_p * chip_price_usd(chip, prices)
                 + (cl.n_chips - n_p) * chip_price_usd(dec, prices)) / cl.n_chips
        net = build.equipment(chip, cl, scaleout_gbps)
        per_s = facility.capex_usd_per_s(cl.n_chips, price, out[L.SV_CLUSTER_W] / cl.pue,
                                         net.capex_usd, host_prices(cl, prices))
        per_s += out[L.SV_CLUSTER_W] / 1000.0 * prices.energy_usd_per_kwh / 3600.0
        cost_mtok = per_s / out[L.SV_TPS] * 1e6

    def num(i: int) -> float | None:
        return float(out[i]) if ok and math.isfinite(out[i]) else None

    return {
        "feasible": ok,
        "reason": STATUS_REASONS.get(st, f"status {st}"),
        "mode": ("disaggregated" if disagg else "one pool") if ok else None,
        "rate_rps": num(L.SV_RATE),
        "goodput_rps": num(L.SV_RATE) if traffic.rate_rps <= 0 else None,
        "output_tokens_per_s": num(L.SV_TPS),
        "percentile": traffic.percentile,
        "ttft_s": {"p50": num(L.SV_TTFT_P50), "p90": num(L.SV_TTFT_P90),
                   "p99": num(L.SV_TTFT_P99), "at_percentile": num(L.SV_TTFT_PCT)},
        "itl_s": {"p50": num(L.SV_ITL_P50), "p90": num(L.SV_ITL_P90),
                  "p99": num(L.SV_ITL_P99), "at_percentile": num(L.SV_ITL_PCT)},
        "request_latency_s_at_percentile": num(L.SV_E2E_PCT),
        "prefill_chips": int(btr[L.TR_N_PREFILL]) if disagg else None,
        "decode_chips": int(cl.n_chips - btr[L.TR_N_PREFILL]) if disagg else None,
        "prefill_mapping": _mapping_dict(bp) if ok else None,
        "decode_mapping": _mapping_dict(bd) if ok else None,
        "decode_chip": (dec.id or dec.name) if disagg else None,
        "prefill_chunk_tokens": (max(0, int(btr[L.TR_CHUNK])) if ok and not disagg else None),
        "kv_transfer_s": num(L.SV_KV_S) if disagg else None,
        "prefill_utilisation": num(L.SV_RHO_PREFILL),
        "decode_batch_mean": num(L.SV_BATCH),
        "tokens_per_decode_step": num(L.SV_TOKENS_PER_STEP),
        "cluster_power_w": num(L.SV_CLUSTER_W),
        "tokens_per_joule": num(L.SV_TOK_PER_J),
        "cost_per_mtoken_usd": cost_mtok,
        "prefill_capacity_rps": num(L.SV_PREFILL_CAP) if disagg else None,
        "decode_capacity_rps": num(L.SV_DECODE_CAP),
    }


def traffic_metrics(chip: ChipSpec, cluster: ClusterSpec, job: InferJob, traffic: Traffic,
                    pools: str = "both", prices: tech.Prices = tech.PRICES,
                    decode_chip: ChipSpec | None = None) -> dict[str, float]:
    """The :data:`~codesign.model.metrics.TRAFFIC_ONLY` serving metrics of one design
    (``cluster`` sized; the decode chip's own metrics are the caller's): the best deployment
    by goodput among one pool, disaggregated pools, or both (``pools``: ``"one"``,
    ``"disaggregated"``, ``"both"``); zeros where nothing meets the limits (finite, as
    infeasible results report). ``decode_chip``: the decode pool's chip when disaggregated
    (one pool runs on ``chip`` alone)."""
    from dataclasses import replace

    modes = {"one": (False,), "disaggregated": (True,), "both": (False, True)}[pools]
    got = {}
    for dis in modes:
        try:
            got[dis] = evaluate_traffic(chip, cluster, job,
                                        replace(traffic, disaggregated=dis),
                                        decode_chip=decode_chip if dis else None,
                                        prices=prices)
        except pack.UnknownSpecError:
            got[dis] = None
    good = {d: (r["goodput_rps"] or r["rate_rps"] or 0.0) if r and r["feasible"] else 0.0
            for d, r in got.items()}
    best = max(good, key=lambda d: (good[d], -d))
    r = got[best] if good[best] > 0 else None
    nan = float("nan")
    return {
        "goodput_rps": good[best],
        "goodput_tokens_per_s": (r["output_tokens_per_s"] or 0.0) if r else 0.0,
        "ttft_p99_s": r["ttft_s"]["p99"] if r else 0.0,
        "itl_p99_s": r["itl_s"]["p99"] if r else 0.0,
        "goodput_cost_per_mtoken_usd": (r["cost_per_mtoken_usd"] or 0.0) if r else 0.0,
        "goodput_tokens_per_joule": (r["tokens_per_joule"] or 0.0) if r else 0.0,
        "disaggregated": float(best) if r else 0.0,
        "one_pool_goodput_rps": good.get(False, nan),
        "disaggregated_goodput_rps": good.get(True, nan),
        **{f"{k}_p{q}_s": r[f"{k}_s"][f"p{q}"] if r else 0.0
           for k in ("ttft", "itl") for q in (50, 90)},
        "prefill_chip_share": (r["prefill_chips"] / (r["prefill_chips"] + r["decode_chips"])
                               if r and r["prefill_chips"] else 0.0),
    }
