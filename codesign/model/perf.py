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

from dataclasses import replace
from typing import Any

import numpy as np

from codesign.model import pack, tech
from codesign.model.chip import datasheet as chip_area
from codesign.model.chip import power
from codesign.model.cluster import facility, network
from codesign.model.efficiency import Efficiency, Stack
from codesign.model.kernels import layout
from codesign.model.kernels.infer_search import infer_search, infer_search_population
from codesign.model.kernels.train_search import search_mappings, search_population
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
    """The cluster with ``n_chips`` set by its facility power budget, if it has one."""
    if cluster.power_budget_mw is None:
        return cluster
    if chip.tdp_w is None:
        raise pack.UnknownSpecError(f"chip {chip.id or chip.name!r}: unknown tdp_w, needed to "
                                    "size a cluster by its power budget")
    n = facility.chips_for_budget(cluster.power_budget_mw, chip.tdp_w,
                                  _nic_gbps(chip, scaleout_gbps), cluster.topology,
                                  cluster.oversubscription, cluster.host_power_w_per_chip,
                                  cluster.pue)
    return replace(cluster, n_chips=n)


def _nic_gbps(chip: ChipSpec, scaleout_gbps: float | None) -> float:
    return float(scaleout_gbps if scaleout_gbps is not None else chip.scaleout_gbps or 0.0)


def overhead_w_per_chip(chip: ChipSpec, cluster: ClusterSpec,
                        scaleout_gbps: float | None = None) -> float:
    """Host + network (NICs, switches, optics, scale-up switches) IT power per chip, W."""
    return facility.overhead_w_per_chip(cluster.n_chips, _nic_gbps(chip, scaleout_gbps),
                                        cluster.topology, cluster.oversubscription,
                                        cluster.host_power_w_per_chip)


def evaluate(
    chip: ChipSpec,
    cluster: ClusterSpec,
    job: Job,
    mapping: Mapping | None = None,
    scaleout_gbps: float | None = None,
    eff: Efficiency | Stack | None = None,
) -> AnyResult:
    """Predict ``job`` (training step or serving) on ``cluster.n_chips`` copies of ``chip``
    (or as many as the cluster's power budget feeds: see :func:`sized_cluster`).

    Fields of ``mapping`` that are 0/None are searched; the best feasible mapping is returned
    (training: fastest step; serving: most output tokens/s within the latency limits).
    ``scaleout_gbps`` (Gbit/s per chip) overrides the chip's NIC; ``eff`` the software-stack
    efficiencies (default: the calibrated ones of the chip's generation, see
    :func:`codesign.model.efficiency.for_chip`). Raises
    :class:`codesign.model.pack.UnknownSpecError` if the chip lacks a needed number.
    """
    cluster = sized_cluster(chip, cluster, scaleout_gbps)
    search, _, pack_job, out_len, unpack = _KERNELS[type(job)]
    arrays = (pack.chip_array(chip, scaleout_gbps, eff),
              pack.cluster_array(cluster, overhead_w_per_chip(chip, cluster, scaleout_gbps)),
              pack.model_array(job.model), pack_job(job), pack.fixed_array(mapping))
    best_mp = np.zeros(layout.MAP_LEN, np.int64)
    best_out = np.zeros(out_len)
    counts = np.zeros(layout.N_STATUS, np.int64)
    status = search(*arrays, best_mp, best_out, counts)
    res = unpack(int(status), best_mp, best_out, counts, cluster.n_chips)
    if res.feasible:
        first = _POWER_OUT[type(job)]
        macs = chip_area.macs_per_unit(chip) or chip_area.DEFAULT_MACS_PER_UNIT
        res = replace(res, power_w=power.power_parts_w(best_out[first:first + 5], macs))
    elif status == layout.S_OOM and isinstance(job, TrainJob):
        res = _with_memory_needed(res, search, arrays, chip)
    return res


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
    net = network.network(cluster.n_chips, _nic_gbps(chip, scaleout_gbps), cluster.topology,
                           cluster.oversubscription)
    price = chip_price_usd(chip, prices)
    # infeasible results carry finite zeros (the constraint marks them), never NaN
    cost_mtok = cost_run = 0.0 if not res.feasible else nan
    if res.feasible and tps > 0:
        per_s = facility.capex_usd_per_s(cluster.n_chips, price, res.cluster_power_w / cluster.pue,
                                         net.capex_usd, prices)
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
        "tokens_per_s_per_mw": tps / (res.cluster_power_w / 1e6) if res.feasible else 0.0,
        "energy_per_token_j": (cluster.n_chips * res.chip_power_w / tps
                               if res.feasible and tps > 0 else 0.0),
        "mfu": nan if serving else res.mfu,
        "step_time_s": nan if serving else res.step_time_s,
        "ttft_s": res.ttft_s if serving else nan,
        "itl_s": res.itl_s if serving else nan,
        "die_area_mm2": chip.die_area_mm2 if chip.die_area_mm2 is not None else nan,
        "silicon_mm2": (chip.die_area_mm2 * (chip.n_compute_dies or 1)
                        if chip.die_area_mm2 is not None else nan),
        "n_compute_dies": chip.n_compute_dies or 1,
        "tdp_w": chip.tdp_w,
        "chip_cost_usd": price,
        "chip_power_w": res.chip_power_w,
        "cluster_power_w": res.cluster_power_w,
        "cost_per_mtoken_usd": cost_mtok,
        "cost_per_run_usd": cost_run,
        "n_chips": cluster.n_chips,
        "memory_gb_per_chip": res.memory_gb_per_chip,
        "hbm_gb": chip.hbm_gb,
        "peak_tflops_bf16": chip.tflops_bf16,
        "clock_fraction": res.clock_fraction if res.feasible else 0.0,
        "n_candidates": res.n_candidates,
        "n_feasible": res.n_feasible,
    }
    metrics.update({f"map_{k}": v for k, v in res.mapping.as_dict().items()})
    return metrics


def evaluate_population(chips: list[ChipSpec], clusters: list[ClusterSpec], job: Job,
                        prices: tech.Prices = tech.PRICES) -> list[dict[str, Any]]:
    """Evaluate many chip + cluster pairs on one job in one parallel kernel call (each with its
    best mapping); one metric dict per pair (see :func:`result_metrics`). The clusters are
    used as given (size a power-budget cluster with :func:`sized_cluster` first)."""
    _, search_pop, pack_job, out_len, unpack = _KERNELS[type(job)]
    n = len(chips)
    chip_a = np.zeros((n, layout.CHIP_LEN))
    cl_a = np.zeros((n, layout.CLUSTER_LEN))
    for i in range(n):
        chip_a[i] = pack.chip_array(chips[i])
        cl_a[i] = pack.cluster_array(clusters[i], overhead_w_per_chip(chips[i], clusters[i]))
    best_mp = np.zeros((n, layout.MAP_LEN), np.int64)
    best_out = np.zeros((n, out_len))
    counts = np.zeros((n, layout.N_STATUS), np.int64)
    status = np.zeros(n, np.int64)
    search_pop(chip_a, cl_a, pack.model_array(job.model), pack_job(job), pack.fixed_array(None),
               best_mp, best_out, counts, status)
    return [result_metrics(chips[i], clusters[i],
                           unpack(int(status[i]), best_mp[i], best_out[i], counts[i],
                                  clusters[i].n_chips), job, prices)
            for i in range(n)]
