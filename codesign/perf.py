"""Python API over the kernels: evaluate a chip + cluster on a training job (best mapping inside).

Example:
    >>> from codesign.catalog import get_chip, get_model
    >>> from codesign.specs import ClusterSpec, TrainJob
    >>> job = TrainJob(get_model("llama3-8b"), seq_len=8192, global_batch=512)
    >>> res = evaluate(get_chip("h100-sxm"), ClusterSpec(n_chips=64), job)
    >>> res.feasible, 0.2 < res.mfu < 0.8
    (True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codesign import efficiency, pack
from codesign.design import design_to_chip, design_to_cluster
from codesign.efficiency import Efficiency
from codesign.kernels import layout
from codesign.kernels.infer import infer_search, infer_search_population
from codesign.kernels.train import search_mappings, search_population
from codesign.specs import (
    ChipSpec,
    ClusterSpec,
    InferJob,
    InferResult,
    Mapping,
    Result,
    TrainJob,
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


def evaluate(
    chip: ChipSpec,
    cluster: ClusterSpec,
    job: Job,
    mapping: Mapping | None = None,
    scaleout_gbps: float | None = None,
    eff: Efficiency = efficiency.DEFAULT,
) -> AnyResult:
    """Predict ``job`` (training step or serving) on ``cluster.n_chips`` copies of ``chip``.

    Fields of ``mapping`` that are 0/None are searched; the best feasible mapping is returned
    (training: fastest step; serving: most output tokens/s within the latency limits).
    ``scaleout_gbps`` (Gbit/s per chip) overrides the chip's NIC; ``eff`` the software-stack
    efficiencies (default: the calibrated ones). Raises
    :class:`codesign.pack.UnknownSpecError` if the chip lacks a needed number.
    """
    search, _, pack_job, out_len, unpack = _KERNELS[type(job)]
    best_mp = np.zeros(layout.MAP_LEN, np.int64)
    best_out = np.zeros(out_len)
    counts = np.zeros(layout.N_STATUS, np.int64)
    status = search(
        pack.chip_array(chip, scaleout_gbps, eff),
        pack.cluster_array(cluster),
        pack.model_array(job.model),
        pack_job(job),
        pack.fixed_array(mapping),
        best_mp,
        best_out,
        counts,
    )
    return unpack(int(status), best_mp, best_out, counts, cluster.n_chips)


def result_metrics(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult) -> dict[str, Any]:
    """Flat metric dict (the names of :data:`codesign.metrics.METRICS`) plus the mapping.

    Serving results report output tokens as ``tokens_per_s``; metrics that do not apply to a
    job kind (``mfu``/``step_time_s`` for serving, ``ttft_s``/``itl_s`` for training) are NaN.
    """
    nan = float("nan")
    tco_usd_per_s = _cluster_cost_usd_per_s(chip, cluster, res)
    mtok_cost = tco_usd_per_s / res.tokens_per_s * 1e6 if res.feasible else 0.0
    serving = isinstance(res, InferResult)
    metrics: dict[str, Any] = {
        "feasible": res.feasible,
        "reason": res.reason,
        "tokens_per_s": res.tokens_per_s,
        "tokens_per_s_per_chip": res.tokens_per_s_per_chip,
        "tokens_per_joule": res.tokens_per_joule,
        "mfu": nan if serving else res.mfu,
        "step_time_s": nan if serving else res.step_time_s,
        "ttft_s": res.ttft_s if serving else nan,
        "itl_s": res.itl_s if serving else nan,
        "die_area_mm2": chip.die_area_mm2 if chip.die_area_mm2 is not None else nan,
        "tdp_w": chip.tdp_w,
        "chip_cost_usd": chip.price_usd if chip.price_usd is not None else nan,
        "chip_power_w": res.chip_power_w,
        "cluster_power_w": res.cluster_power_w,
        "cost_per_mtoken_usd": mtok_cost,
        "memory_gb_per_chip": res.memory_gb_per_chip,
        "hbm_gb": chip.hbm_gb,
        "peak_tflops_bf16": chip.tflops_bf16,
        "n_candidates": res.n_candidates,
        "n_feasible": res.n_feasible,
    }
    metrics.update({f"map_{k}": v for k, v in res.mapping.as_dict().items()})
    return metrics


AMORTIZATION_YEARS = 4.0
"""Capex amortisation period (a common hyperscaler server depreciation schedule; estimate)."""
ENERGY_USD_PER_KWH = 0.08
"""Industrial electricity price, USD/kWh (estimate; configurable in issue 5)."""
HOST_USD_PER_CHIP = 5000.0
"""Host, NIC, switch and rack capex per accelerator (estimate)."""


def _cluster_cost_usd_per_s(chip: ChipSpec, cluster: ClusterSpec, res: AnyResult) -> float:
    """Capex amortised per second plus energy per second for the whole cluster (first TCO)."""
    if not res.feasible or chip.price_usd is None:
        return 0.0
    capex = cluster.n_chips * (chip.price_usd + HOST_USD_PER_CHIP)
    capex_per_s = capex / (AMORTIZATION_YEARS * 365.25 * 86400.0)
    energy_per_s = res.cluster_power_w / 1000.0 * ENERGY_USD_PER_KWH / 3600.0
    return capex_per_s + energy_per_s


def evaluate_designs(
    designs: list[dict[str, Any]],
    job: Job,
    cluster_extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate a population of designs in one parallel kernel call.

    Each design is a full design dict (see :mod:`codesign.design`); returns one metric dict per
    design (see :func:`result_metrics`).
    """
    _, search_pop, pack_job, out_len, unpack = _KERNELS[type(job)]
    chips = [design_to_chip(d) for d in designs]
    clusters = [design_to_cluster(d, cluster_extra) for d in designs]
    n = len(designs)
    chip_a = np.zeros((n, layout.CHIP_LEN))
    cl_a = np.zeros((n, layout.CLUSTER_LEN))
    for i in range(n):
        chip_a[i] = pack.chip_array(chips[i])
        cl_a[i] = pack.cluster_array(clusters[i])
    best_mp = np.zeros((n, layout.MAP_LEN), np.int64)
    best_out = np.zeros((n, out_len))
    counts = np.zeros((n, layout.N_STATUS), np.int64)
    status = np.zeros(n, np.int64)
    search_pop(chip_a, cl_a, pack.model_array(job.model), pack_job(job), pack.fixed_array(None),
               best_mp, best_out, counts, status)
    return [
        result_metrics(chips[i], clusters[i],
                       unpack(int(status[i]), best_mp[i], best_out[i], counts[i],
                              clusters[i].n_chips))
        for i in range(n)
    ]
