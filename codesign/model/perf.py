"""Python API over the kernels: evaluate a chip + cluster on a training job (best mapping inside).

Example:
    >>> from codesign.model.catalog import get_chip, get_model
    >>> from codesign.model.specs import ClusterSpec, TrainJob
    >>> job = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)
    >>> res = evaluate(get_chip("h100-sxm"), ClusterSpec(n_chips=64), job)
    >>> res.feasible, 0.2 < res.mfu < 0.8
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from codesign.model import pack, reliability, tech
from codesign.model.chip import datasheet as chip_area
from codesign.model.chip import power
from codesign.model.cluster import build, cooling, facility
from codesign.model.efficiency import Efficiency, Stack
from codesign.model.kernels import layout
from codesign.model.kernels.infer_search import infer_search, infer_search_population
from codesign.model.kernels.train_search import search_mappings, search_population
from codesign.model.metrics import GOODPUT_METRICS, TRAFFIC_ONLY
from codesign.model.specs import (
    ChipSpec,
    ClusterSpec,
    InferJob,
    InferResult,
    Mapping,
    Result,
    TrainJob,
    mapping_short,
)

Job = TrainJob | InferJob
AnyResult = Result | InferResult

# (kernel search, population search, job packer, output length, result unpacker) per job kind
_KERNELS = {
    TrainJob: (search_mappings, search_population, pack.job_array, layout.OUT_LEN,
               pack.result_from_arrays),
    InferJob: (infer_search, infer_search_population, pack.infer_job_array, layout.IOUT_LEN,
               pack.infer_result_from_arrays),
}

_POWER_OUT = {TrainJob: layout.O_W_COMPUTE, InferJob: layout.IO_W_COMPUTE}
"""First of each kernel's five consecutive power outputs (compute, HBM, links, clocks and
control, leakage)."""


def sized_cluster(chip: ChipSpec, cluster: ClusterSpec,
                  scaleout_gbps: float | None = None) -> ClusterSpec:
    """The cluster with ``n_chips`` set by its facility power budget, if it has one: the
    chips the budget powers at their TDP, or with ``site_mw`` the chips of one such site
    times the whole sites the budget holds."""
    if cluster.power_budget_mw is None:
        return cluster
    if chip.tdp_w is None:
        raise pack.UnknownSpecError(f"chip {chip.id or chip.name!r}: unknown tdp_w, needed to "
                                    "size a cluster by its power budget")
    sites = build.sites(cluster)
    site_mw = cluster.power_budget_mw / sites if cluster.site_mw is None else min(
        cluster.site_mw, cluster.power_budget_mw)
    tdp = chip.tdp_w
    n = facility.chips_for_budget_by(
        site_mw, tdp, cluster.pue, cluster.host_power_w_per_chip,
        lambda k: overhead_w_per_chip(chip, replace(cluster, n_chips=k, site_mw=None,
                                                    power_budget_mw=None), scaleout_gbps))
    return replace(cluster, n_chips=n * sites)


def job_cluster(cluster: ClusterSpec) -> tuple[ClusterSpec, int]:
    """``(the cluster one job runs on, how many such jobs the sized cluster runs)``: a job
    takes ``job_chips`` chips (at most a site's); each site runs as many as fit in it."""
    sites = build.sites(cluster)
    per_site = cluster.n_chips // sites
    n = per_site if cluster.job_chips is None else min(per_site, cluster.job_chips)
    if n == cluster.n_chips:
        return cluster, 1
    return replace(cluster, n_chips=n, power_budget_mw=None, site_mw=None,
                   job_chips=None), sites * (per_site // n)


def replicated(res: AnyResult, job_chips: int, replicas: int, n_chips: int) -> AnyResult:
    """A one-job result scaled to ``replicas`` identical jobs on a cluster of ``n_chips``:
    tokens/s add up, every chip draws what a chip of a job draws (the leftover ones too,
    idle but powered), per-chip and per-joule figures follow."""
    if (replicas == 1 and job_chips == n_chips) or not res.feasible:
        return res
    tps = res.tokens_per_s * replicas
    cluster_w = res.cluster_power_w / job_chips * n_chips
    return replace(res, tokens_per_s=tps, tokens_per_s_per_chip=tps / n_chips,
                   cluster_power_w=cluster_w,
                   tokens_per_joule=tps / cluster_w if cluster_w > 0 else 0.0)


def overhead_w_per_chip(chip: ChipSpec, cluster: ClusterSpec,
                        scaleout_gbps: float | None = None) -> float:
    """Host + network (NICs, switches, optics, cables, scale-up fabric) IT power per chip, W
    (:func:`codesign.model.cluster.build.equipment`)."""
    net = build.equipment(build.port_split(chip, cluster), cluster, scaleout_gbps)
    return cluster.host_power_w_per_chip + net.power_w / max(cluster.n_chips, 1)


def host_prices(cluster: ClusterSpec, prices: tech.Prices) -> tech.Prices:
    """``prices`` with the cluster's own host price per accelerator, if it has one."""
    if cluster.host_usd_per_chip is None:
        return prices
    return replace(prices, host_usd_per_chip=cluster.host_usd_per_chip)


class Packed(NamedTuple):
    """What the kernels read for one job on one chip and cluster (:func:`packed`)."""

    chip: ChipSpec
    """The chip with its ports split as the cluster uses them."""
    whole: ClusterSpec
    """The cluster sized by its power budget (:func:`sized_cluster`)."""
    cluster: ClusterSpec
    """The part of it one job runs on (:func:`job_cluster`)."""
    replicas: int
    """How many such jobs the whole cluster runs."""
    arrays: tuple[np.ndarray, ...]
    """(chip, cluster, model, job, fixed mapping) arrays of the kernels."""


def packed(chip: ChipSpec, cluster: ClusterSpec, job: Job, mapping: Mapping | None = None,
           scaleout_gbps: float | None = None, eff: Efficiency | Stack | None = None) -> Packed:
    """The kernels' inputs for :func:`evaluate` (same arguments); raises
    :class:`codesign.model.pack.UnknownSpecError` if the chip lacks a needed number."""
    chip = build.port_split(chip, cluster)
    whole = sized_cluster(chip, cluster, scaleout_gbps)
    cluster, replicas = job_cluster(whole)
    pack_job = _KERNELS[type(job)][2]
    arrays = (pack.chip_array(chip, scaleout_gbps, eff),
              pack.cluster_array(cluster, overhead_w_per_chip(chip, cluster, scaleout_gbps)),
              pack.model_array(job.model), pack_job(job), pack.fixed_array(mapping))
    return Packed(chip, whole, cluster, replicas, arrays)


def evaluate(
    chip: ChipSpec,
    cluster: ClusterSpec,
    job: Job,
    mapping: Mapping | None = None,
    scaleout_gbps: float | None = None,
    eff: Efficiency | Stack | None = None,
    count_ruled_out: bool = False,
) -> AnyResult:
    """Predict ``job`` (training step or serving) on ``cluster.n_chips`` copies of ``chip``
    (or as many as the cluster's power budget feeds: see :func:`sized_cluster`).

    Fields of ``mapping`` that are 0/None are searched; the best feasible mapping is returned
    (training: fastest step; serving: most output tokens/s within the latency limits).
    ``scaleout_gbps`` (Gbit/s per chip) overrides the chip's NIC; ``eff`` the software-stack
    efficiencies (default: the calibrated ones of the chip's generation, see
    :func:`codesign.model.efficiency.for_chip`). ``count_ruled_out`` (training): also count
    the mappings the search's bounds rule out (``Result.n_ruled_out``; costs a walk over
    them). Raises :class:`codesign.model.pack.UnknownSpecError` if the chip lacks a needed
    number.
    """
    p = packed(chip, cluster, job, mapping, scaleout_gbps, eff)
    chip, whole, cluster, replicas, arrays = p.chip, p.whole, p.cluster, p.replicas, p.arrays
    search, _, _, out_len, unpack = _KERNELS[type(job)]
    best_mp = np.zeros(layout.MAP_LEN, np.int64)
    best_out = np.zeros(out_len)
    train = isinstance(job, TrainJob) and count_ruled_out
    counts = np.zeros(layout.N_STATUS + (1 if train else 0), np.int64)
    status = search(*arrays, best_mp, best_out, counts)
    res = unpack(int(status), best_mp, best_out, counts[:layout.N_STATUS], cluster.n_chips)
    if train:
        res = replace(res, n_ruled_out=int(counts[layout.N_STATUS]))
    if res.feasible:
        first = _POWER_OUT[type(job)]
        macs = chip_area.macs_per_unit(chip) or chip_area.DEFAULT_MACS_PER_UNIT
        res = replace(res, power_w=power.power_parts_w(best_out[first:first + 5], macs))
    elif status == layout.S_OOM and isinstance(job, TrainJob):
        res = _with_memory_needed(res, search, arrays, chip)
    return replicated(res, cluster.n_chips, replicas, whole.n_chips)


def _with_memory_needed(res: Result, search: Any, arrays: tuple[np.ndarray, ...],
                        chip: ChipSpec) -> Result:
    """An out-of-memory result with the memory the fastest mapping would need: the search
    again with memory no limit (``memory_gb`` by term, and the figures in ``reason``)."""
    roomy = arrays[0].copy()
    roomy[layout.C_HBM_B] = 1e18
    mp = np.zeros(layout.MAP_LEN, np.int64)
    out = np.zeros(layout.OUT_LEN)
    counts = np.zeros(layout.N_STATUS, np.int64)
    if search(roomy, *arrays[1:], mp, out, counts) != layout.S_OK:
        return res
    need = float(out[layout.O_MEM_B]) / 1e9
    fastest = mapping_short(pack.mapping_from_array(mp).as_dict())
    return replace(res, memory_gb=pack.train_memory_gb(out), reason=(
        f"{res.reason}; the fastest mapping ({fastest}) needs {need:.1f} GB per chip, the "
        f"chip has {chip.hbm_gb:g} GB"))


def chip_metrics(chip: ChipSpec, price: float) -> dict[str, float]:
    """The metrics of the chip itself, as every result reports them: ``die_area_mm2`` (one
    compute die) and ``silicon_mm2`` (all of them), mm^2, NaN if unknown; ``n_compute_dies``;
    ``tdp_w`` (W); ``chip_cost_usd`` = ``price`` (USD, :func:`chip_price_usd`)."""
    die = chip.die_area_mm2
    return {
        "die_area_mm2": die if die is not None else float("nan"),
        "silicon_mm2": die * (chip.n_compute_dies or 1) if die is not None else float("nan"),
        "n_compute_dies": chip.n_compute_dies or 1,
        "tdp_w": chip.tdp_w,
        "chip_cost_usd": price,
    }


def chip_price_usd(chip: ChipSpec, prices: tech.Prices = tech.PRICES) -> float:
    """What a chip costs its buyer: the published price, else the modelled manufacturing
    cost (``price_usd`` of a design) x ``prices.chip_margin``; NaN if neither is known."""
    if chip.id and chip.price_usd is not None:
        return float(chip.price_usd)
    if not chip.id and chip.price_usd is not None:
        return float(chip.price_usd) * prices.chip_margin
    return float("nan")


def result_metrics(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult,
                   job: Job | None = None, prices: tech.Prices = tech.PRICES,
                   scaleout_gbps: float | None = None) -> dict[str, Any]:
    """Flat metric dict (the names of :data:`codesign.model.metrics.METRICS`) plus the mapping.

    ``cluster`` is the sized cluster (:func:`sized_cluster`). Serving results report output
    tokens as ``tokens_per_s``; metrics that do not apply to a job kind (``mfu``/``step_time_s``
    for serving, ``ttft_s``/``itl_s`` for training) are NaN. Costs use ``prices`` (TCO: IT
    capex over its amortisation, the building per watt over its own, energy at the facility
    meter); the cost of a training run needs ``job.train_tokens``.
    """
    nan = float("nan")
    serving = isinstance(res, InferResult)
    tps = res.tokens_per_s
    chip = build.port_split(chip, cluster)
    net = build.equipment(chip, cluster, scaleout_gbps)
    overhead = cluster.host_power_w_per_chip + net.power_w / max(cluster.n_chips, 1)
    price = chip_price_usd(chip, prices)
    provisioned = (facility.provisioned_w(cluster.n_chips, chip.tdp_w,
                                          overhead,
                                          cluster.pue, cluster.power_budget_mw)
                   if chip.tdp_w is not None else nan)
    rack_kw = ((cluster.chips_per_rack or build.DEFAULT_CHIPS_PER_RACK)
               * (chip.tdp_w + overhead) / 1000.0 if chip.tdp_w is not None else nan)
    cool = cooling.check(cluster.cooling, rack_kw, chip.tdp_w)
    per_mw = tps / (provisioned / 1e6) if res.feasible and provisioned > 0 else 0.0
    # infeasible results carry finite zeros (the constraint marks them), never NaN
    cost_mtok = cost_run = 0.0 if not res.feasible else nan
    if res.feasible and tps > 0:
        built_it_w = (provisioned if math.isfinite(provisioned) else res.cluster_power_w
                      ) / cluster.pue  # the building is paid for what it is built to feed
        per_s = facility.capex_usd_per_s(cluster.n_chips, price, built_it_w, net.capex_usd,
                                         host_prices(cluster, prices))
        per_s += res.cluster_power_w / 1000.0 * prices.energy_usd_per_kwh / 3600.0
        cost_mtok = per_s / tps * 1e6
        train_tokens = getattr(job, "train_tokens", None)
        if train_tokens:
            cost_run = train_tokens / tps * per_s
    metrics: dict[str, Any] = {
        "feasible": res.feasible,
        "reason": res.reason,
        "tokens_per_s": tps,
        "tokens_per_s_per_chip": res.tokens_per_s_per_chip,
        "tokens_per_joule": res.tokens_per_joule,
        "tokens_per_s_per_mw": per_mw,
        "tokens_per_s_per_gw": per_mw * 1000.0,
        "provisioned_power_w": provisioned,
        "idle_chips": idle_chips(res.mapping, cluster) if res.feasible else 0,
        "rack_power_kw": rack_kw,
        "rack_limit_kw": cool.rack_limit_kw,
        "cooling_ok": int(cool.ok),
        "energy_per_token_j": (cluster.n_chips * res.chip_power_w / tps
                               if res.feasible and tps > 0 else 0.0),
        "mfu": nan if serving else res.mfu,
        "step_time_s": nan if serving else res.step_time_s,
        "ttft_s": res.ttft_s if serving else nan,
        "itl_s": res.itl_s if serving else nan,
        **chip_metrics(chip, price),
        "chip_power_w": res.chip_power_w,
        "cluster_power_w": res.cluster_power_w,
        "cost_per_mtoken_usd": cost_mtok,
        "cost_per_run_usd": cost_run,
        "train_days": (getattr(job, "train_tokens", None) or nan) / tps / 86400.0
        if res.feasible and tps > 0 else 0.0,
        "n_chips": cluster.n_chips,
        "memory_gb_per_chip": res.memory_gb_per_chip,
        "hbm_gb": chip.hbm_gb,
        "peak_tflops_bf16": chip.tflops_bf16,
        "clock_fraction": res.clock_fraction if res.feasible else 0.0,
        "n_candidates": res.n_candidates,
        "n_feasible": res.n_feasible,
    }
    metrics.update(goodput_metrics(chip, cluster, res, job, net, metrics))
    metrics.update(_breakdown_per_chip(chip, cluster, res, prices, net))
    metrics.update({f"map_{k}": v for k, v in res.mapping.as_dict().items()})
    metrics.update({m: nan for m in TRAFFIC_ONLY})  # filled by model.serving, when asked
    return metrics


def goodput_breakdown(chip: ChipSpec, cluster: ClusterSpec, tokens_per_s: float,
                      job: Job | None, net: Any) -> dict[str, Any] | None:
    """:func:`codesign.model.reliability.goodput` of a training job running at
    ``tokens_per_s`` (one job of ``cluster.job_chips`` or all chips; the switches and links
    in proportion), None for serving or no throughput (an infeasible result)."""
    if not isinstance(job, TrainJob) or not tokens_per_s > 0:
        return None
    n = cluster.n_chips
    job_chips = min(cluster.job_chips or n, n)
    share = job_chips / max(n, 1)
    links = max(net.optical_links, net.optics // 2)
    g = reliability.goodput(
        job_chips, tokens_per_s, float(job.model.params_total()),
        hbm_stacks=chip.hbm_stacks or 0, domain=chip.scaleup_domain or 1,
        switched=build.fabric(cluster, chip) == "switched", switches=net.switches * share,
        optical_links=links * share, host_link_gbs=cluster.host_link_gbs,
        res=cluster.resilience or reliability.Resilience())
    g["job_chips"] = job_chips
    return g


def goodput_metrics(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult, job: Job | None,
                    net: Any, metrics: dict[str, Any]) -> dict[str, float]:
    """The :data:`codesign.model.metrics.GOODPUT_METRICS` of a result (NaN for serving,
    finite zeros when infeasible); ``metrics``: its other metrics (cost, train days)."""
    if not isinstance(job, TrainJob):
        return dict.fromkeys(GOODPUT_METRICS, float("nan"))
    g = goodput_breakdown(chip, cluster, res.tokens_per_s if res.feasible else 0.0, job, net)
    if g is None:
        return dict.fromkeys(GOODPUT_METRICS, 0.0)
    eff = g["effective_training_fraction"]
    spares = g["spare_chips"] * cluster.n_chips / g["job_chips"]
    paid = (cluster.n_chips + spares) / max(cluster.n_chips, 1)
    days = metrics["train_days"]
    return {"interruptions_per_day": g["interruptions_per_day"],
            "effective_training_fraction": eff,
            "train_goodput_tokens_per_s": res.tokens_per_s * eff,
            "cost_per_goodput_mtoken_usd": (metrics["cost_per_mtoken_usd"] * paid / eff
                                            if eff > 0 else 0.0),
            "goodput_train_days": days / eff if eff > 0 and math.isfinite(days) else days,
            "spare_chips": spares}


BREAKDOWN_METRICS = {
    # metric: (cluster_breakdown part, key)
    "host_w_per_chip": ("power_w", "hosts"), "network_w_per_chip": ("power_w", "network"),
    "cooling_w_per_chip": ("power_w", "cooling"), "host_usd_per_chip": ("capex_usd", "hosts"),
    "network_usd_per_chip": ("capex_usd", "network"),
    "facility_usd_per_chip": ("capex_usd", "facility"),
}
"""The per-chip shares of :func:`cluster_breakdown` every result reports (the chip's own are
``chip_power_w`` and ``chip_cost_usd``), so the Parquet log and the report can draw them."""


def _breakdown_per_chip(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult,
                        prices: tech.Prices, net: Any) -> dict[str, float]:
    if not res.feasible:
        return dict.fromkeys(BREAKDOWN_METRICS, 0.0)
    parts = cluster_breakdown(chip, cluster, res, prices, net=net)
    n = max(cluster.n_chips, 1)
    return {m: parts[part][key] / n for m, (part, key) in BREAKDOWN_METRICS.items()}


def idle_chips(mapping: Mapping, cluster: ClusterSpec) -> int:
    """Chips of the (sized) cluster no job uses: each of its identical jobs
    (:func:`job_cluster`) uses tp x pp x dp x cp chips (serving: replicas x tp x pp); a
    power-budget site rarely holds a chip count every degree divides. They draw power too
    (the model counts it)."""
    job, replicas = job_cluster(cluster)
    used = (mapping.tp or 1) * (mapping.pp or 1) * (mapping.dp or 1) * (mapping.cp or 1)
    return max(0, cluster.n_chips - replicas * min(used, job.n_chips))


def cluster_breakdown(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult,
                      prices: tech.Prices = tech.PRICES,
                      scaleout_gbps: float | None = None,
                      net: Any = None) -> dict[str, dict[str, float]]:
    """Where a cluster's power and capital go: ``power_w`` (drawn, W) by chips, hosts,
    network (NICs, switches, optics, scale-up fabric) and cooling (the PUE's share), summing
    to ``res.cluster_power_w``; ``capex_usd`` (USD) by chips, hosts, network and facility
    (the building per IT watt it is built to feed: the budget, else every chip at its TDP with
    its host and network share)."""
    n = cluster.n_chips
    chip = build.port_split(chip, cluster)
    if net is None:  # the network equipment, when the caller has not built it already
        net = build.equipment(chip, cluster, scaleout_gbps)
    hosts_w = n * cluster.host_power_w_per_chip
    it_w = n * res.chip_power_w + hosts_w + net.power_w
    power_w = {"chips": n * res.chip_power_w, "hosts": hosts_w, "network": net.power_w,
               "cooling": it_w * (cluster.pue - 1.0)}
    tdp = chip.tdp_w if chip.tdp_w is not None else res.chip_power_w
    built_it_w = n * (tdp + cluster.host_power_w_per_chip) + net.power_w
    if cluster.power_budget_mw is not None:
        built_it_w = cluster.power_budget_mw * 1e6 / cluster.pue
    capex = {"chips": n * chip_price_usd(chip, prices),
             "hosts": n * host_prices(cluster, prices).host_usd_per_chip,
             "network": net.capex_usd, "facility": prices.facility_usd_per_w * built_it_w}
    return {"power_w": power_w, "capex_usd": capex}


def evaluate_population(chips: list[ChipSpec], clusters: list[ClusterSpec], job: Job,
                        prices: tech.Prices = tech.PRICES) -> list[dict[str, Any]]:
    """Evaluate many chip + cluster pairs on one job in one parallel kernel call (each with its
    best mapping); one metric dict per pair (see :func:`result_metrics`). The clusters are
    used as given (size a power-budget cluster with :func:`sized_cluster` first)."""
    _, search_pop, pack_job, out_len, unpack = _KERNELS[type(job)]
    n = len(chips)
    chip_a = np.zeros((n, layout.CHIP_LEN))
    cl_a = np.zeros((n, layout.CLUSTER_LEN))
    chips = [build.port_split(c, cl) for c, cl in zip(chips, clusters, strict=True)]
    jobs = [job_cluster(c) for c in clusters]
    for i in range(n):
        chip_a[i] = pack.chip_array(chips[i])
        cl_a[i] = pack.cluster_array(jobs[i][0], overhead_w_per_chip(chips[i], jobs[i][0]))
    best_mp = np.zeros((n, layout.MAP_LEN), np.int64)
    best_out = np.zeros((n, out_len))
    counts = np.zeros((n, layout.N_STATUS), np.int64)
    status = np.zeros(n, np.int64)
    search_pop(chip_a, cl_a, pack.model_array(job.model), pack_job(job), pack.fixed_array(None),
               best_mp, best_out, counts, status)
    return [result_metrics(chips[i], clusters[i],
                           replicated(unpack(int(status[i]), best_mp[i], best_out[i],
                                             counts[i], jobs[i][0].n_chips),
                                      jobs[i][0].n_chips, jobs[i][1], clusters[i].n_chips),
                           job, prices)
            for i in range(n)]
