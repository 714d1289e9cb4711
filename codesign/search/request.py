"""One chip on one workload, as ``codesign evaluate`` asks: the request checked, the chip,
job, cluster and mapping built, the model run and its answer as one document.

Example:
    >>> doc = evaluate_request(EvaluateRequest(chip="h100-sxm", workload="llama3-8b",
    ...                                        n_chips=64))  # doctest: +SKIP
    >>> doc["feasible"], doc["tokens_per_s"] > 0  # doctest: +SKIP
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``codesign evaluate`` is asked, one field per flag (None: unset, searched or the
    documented default). Units: seconds, W, MW, Gbit/s, tokens."""

    chip: str
    """A catalog chip id, or a chip TOML file: a ``[chip]`` spec sheet
    (:mod:`codesign.search.chip_file`) or a ``[design]`` of design parameters."""
    workload: str | None = None
    """A catalog model id, a Hugging Face ``config.json`` (a model, as an id) or a workload
    TOML file (None: the ``[workload]`` of a design file given as ``chip``)."""
    n_chips: int | None = None
    power_budget_mw: float | None = None
    site_mw: float | None = None
    job_chips: int | None = None
    power_limit_w: float | None = None
    seq_len: int | None = None
    global_batch: int | None = None
    precision: str = "bf16"
    input_len: int | None = None
    output_len: float | None = None
    concurrency: int | None = None
    kv_precision: str | None = None
    ttft_slo_s: float | None = None
    itl_slo_s: float | None = None
    attention: str = "flash"
    scaleout_gbps: float | None = None
    topology: str | None = None
    """Scale-out topology (None: the chip's platform's, else fat-tree)."""
    oversubscription: float = 1.0
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    cp: int | None = None
    ep: int | None = None
    vpp: int | None = None
    micro_batch: int | None = None
    recompute: str | None = None
    zero: int | None = None
    sequence_parallel: int | None = None
    ep_overlap: int | None = None
    hybrid_shard: int | None = None
    uncertainty: int | None = None
    """Paired Monte Carlo draws for P10/P50/P90 bands of the answer (None: no bands;
    :mod:`codesign.search.uncertainty`)."""
    offload: str | None = None
    """Model states in host memory (specs.OFFLOAD_MODES; None: searched, used only where HBM
    does not hold the mapping)."""
    host_memory_gb: float | None = None
    """Host DRAM per chip, GB (None: the platform's or the generic host's)."""
    host_link_gbs: float | None = None
    """GB/s per direction between a chip and host memory (None: the platform's)."""
    no_platform: bool = False
    """Evaluate a catalog chip in the generic cluster (fat-tree, NIC, generic host) instead
    of the platform it is sold in (``platforms.toml``)."""
    host_cpu: str | None = None
    """A host CPU of the catalog (hosts.csv) instead of the platform's or the generic one."""
    chips_per_host: int | None = None
    scaleup_fabric: str | None = None
    chips_per_rack: int | None = None
    scaleout_ports: int | None = None
    cooling: str | None = None
    """``"air"`` or ``"liquid"`` racks instead of the platform's cooling (None: the catalog
    chip's platform's, else not stated: no limit)."""
    # serving under traffic (any of these set: the ``serving_traffic`` part of the answer)
    rate_rps: float | None = None
    """Offered requests/s (unset: the goodput, the highest rate within the limits)."""
    input_cv: float | None = None
    output_cv: float | None = None
    prefix_hit: float | None = None
    spec_k: int | None = None
    spec_accept: float | None = None
    chunk: int | None = None
    slo_percentile: float | None = None
    disaggregated: bool = False
    prefill_chips: int | None = None
    decode_chip: str | None = None
    """A catalog chip id for the decode pool (disaggregated; default: --chip)."""
    kv_over_scaleup: bool = False


_TRAFFIC_FLAGS = ("rate_rps", "input_cv", "output_cv", "prefix_hit", "spec_k", "spec_accept",
                  "chunk", "slo_percentile", "prefill_chips", "decode_chip")


def wants_traffic(req: EvaluateRequest) -> bool:
    """Whether the request asks for serving under traffic."""
    return (req.disaggregated or req.kv_over_scaleup
            or any(getattr(req, k) is not None for k in _TRAFFIC_FLAGS))


def traffic_part(req: EvaluateRequest, chip: Any, cluster: Any, job: Any) -> dict[str, Any]:
    """:func:`codesign.model.serving.evaluate_traffic` of the request (the chip and cluster
    as built)."""
    from dataclasses import replace

    from codesign.model import catalog
    from codesign.model.pack import UnknownSpecError
    from codesign.model.serving import Traffic, evaluate_traffic

    if (req.prefill_chips is not None or req.decode_chip is not None) and not req.disaggregated:
        key = "--prefill-chips" if req.prefill_chips is not None else "--decode-chip"
        raise ConfigError(None, key, "with --disaggregated", "one pool (no --disaggregated)")
    from codesign.model.catalog.assume import explain_unknowns

    decode = None
    if req.decode_chip is not None and req.decode_chip.endswith(".toml"):
        from codesign.search.chip_file import load_chip_file, resolve_chip, toml_kind

        # a spec sheet completed by its stated rules, or a design file's chip
        decode = (load_chip_file(req.decode_chip)[0] if toml_kind(req.decode_chip) == "chip"
                  else resolve_chip(req.decode_chip, "--decode-chip"))
    elif req.decode_chip is not None:
        if req.decode_chip not in catalog.chip_ids():
            raise ConfigError(None, "--decode-chip", "a catalog chip id or a chip TOML file "
                              "([chip] or [design])", repr(req.decode_chip))
        # as the prefill chip: its stated assumptions, wired as its platform builds it
        decode, _ = explain_unknowns(catalog.get_chip(req.decode_chip))
        decode, _ = _cluster(replace(req, chip=req.decode_chip), decode, catalog_chip=True)
    if req.prefill_chips is not None and req.prefill_chips >= cluster.n_chips:
        raise ConfigError(None, "--prefill-chips", f"fewer than the {cluster.n_chips} chips",
                          str(req.prefill_chips))
    tr = Traffic(rate_rps=req.rate_rps or 0.0, input_cv=req.input_cv or 0.0,
                 output_cv=req.output_cv or 0.0, prefix_hit=req.prefix_hit or 0.0,
                 spec_k=req.spec_k or 0, spec_accept=req.spec_accept or 0.0,
                 chunk=req.chunk,
                 percentile=0.99 if req.slo_percentile is None else req.slo_percentile,
                 disaggregated=req.disaggregated, prefill_chips=req.prefill_chips or 0,
                 kv_over_scaleup=req.kv_over_scaleup)
    try:
        return evaluate_traffic(chip, cluster, job, tr, decode_chip=decode,
                                scaleout_gbps=req.scaleout_gbps)
    except UnknownSpecError as exc:
        raise ConfigError(None, "--decode-chip", "a chip with every number the model needs",
                          str(exc)) from None


def evaluate_request(req: EvaluateRequest) -> dict[str, Any]:
    """The model's answer to ``req`` (the keys of ``codesign evaluate --json``); an infeasible
    one keeps the chip, cluster, workload and reason, every predicted number None. Bad input
    raises ConfigError."""
    from codesign.model import catalog, tech
    from codesign.model.cluster.build import fabric as build_fabric
    from codesign.model.pack import UnknownSpecError
    from codesign.model.perf import cluster_breakdown, evaluate, result_metrics, sized_cluster
    from codesign.model.specs import InferJob, InferResult, Mapping, TrainJob
    from codesign.search.design import design_to_chip
    from codesign.search.experiment import load_workload
    from codesign.search.toml_checks import _Plain

    why: dict[str, Any] = {}
    dfile = None  # a design file: its cluster, workload and prices where it has them
    if req.chip.endswith(".toml"):
        from codesign.search.chip_file import load_chip_file, toml_kind
        from codesign.search.design_file import load_design_file

        if toml_kind(req.chip) == "chip":  # a spec sheet: its stated assumptions
            chip, why = load_chip_file(req.chip)
        else:
            dfile = load_design_file(req.chip)
            chip = design_to_chip(dfile.design, name=Path(req.chip).stem)
    elif req.chip in catalog.chip_ids():
        from codesign.model.catalog.assume import explain_unknowns

        chip, why = explain_unknowns(catalog.get_chip(req.chip))
    else:
        raise ConfigError(None, "--chip", "a spec-sheet chip TOML ([chip]), a design TOML or "
                          f"one of: {', '.join(catalog.chip_ids())}", req.chip)
    assumed = {f"chip.{k}": {"value": a.value, "reason": a.reason} for k, a in why.items()}
    if req.power_limit_w is not None:
        from dataclasses import replace

        chip = replace(chip, tdp_w=req.power_limit_w, throttles=True)
    _check_workload_flags(req)
    from codesign.model.catalog.platforms import COOLINGS

    if req.cooling is not None and req.cooling not in COOLINGS:
        raise ConfigError(None, "--cooling", f"one of: {', '.join(COOLINGS)}", req.cooling)
    if req.workload is None:
        if dfile is None or dfile.job is None:
            raise ConfigError(None, "--workload", "a catalog model id, a Hugging Face "
                              "config.json or a workload TOML (only a design file with a "
                              "[workload] table needs none)", _Plain("no --workload"))
        job = dfile.job
    elif req.workload.endswith(".toml"):
        job = load_workload(req.workload)
    elif req.workload.endswith(".json") or req.workload in catalog.model_ids():
        if req.workload.endswith(".json"):  # a Hugging Face config.json: as a model id
            from codesign.search.hf_config import load_hf_model

            model = load_hf_model(req.workload)
        else:
            model = catalog.get_model(req.workload)
        if req.input_len is not None:
            job = InferJob(model, req.input_len,
                           512.0 if req.output_len is None else req.output_len,
                           req.concurrency, req.precision, req.kv_precision,
                           req.ttft_slo_s, req.itl_slo_s)
        else:
            job = TrainJob(model, req.seq_len or 4096, req.global_batch or 1024,
                           req.precision, req.attention)
    else:
        raise ConfigError(None, "--workload", "a workload TOML or one of: "
                          f"{', '.join(catalog.model_ids())}, or a Hugging Face config.json",
                          req.workload)
    if req.site_mw is not None and req.power_budget_mw is None:
        raise ConfigError(None, "--site-mw", "a site size together with --power-budget-mw",
                          f"--site-mw {req.site_mw} without a budget")
    if req.n_chips is not None and req.power_budget_mw is not None:
        raise ConfigError(None, "--power-budget-mw", "either --n-chips or --power-budget-mw",
                          f"both (--n-chips {req.n_chips})")
    if req.n_chips is not None:
        _check_degrees(req)
    if dfile is not None and dfile.cluster is not None:  # the cluster the search evaluated
        from codesign.search.design_file import file_cluster

        cluster = file_cluster(dfile, req)
    else:
        chip, cluster = _cluster(req, chip, catalog_chip=req.chip in catalog.chip_ids())
    prices = dfile.prices if dfile is not None and dfile.prices is not None else tech.PRICES
    mapping = Mapping(tp=req.tp or 0, pp=req.pp or 0, dp=req.dp or 0, cp=req.cp or 0,
                      ep=req.ep or 0, vpp=req.vpp or 0, micro_batch=req.micro_batch or 0,
                      recompute=req.recompute, zero=req.zero,
                      sequence_parallel=None if req.sequence_parallel is None
                      else bool(req.sequence_parallel),
                      ep_overlap=None if req.ep_overlap is None else bool(req.ep_overlap),
                      hybrid_shard=None if req.hybrid_shard is None
                      else bool(req.hybrid_shard), offload=req.offload)
    try:
        res = evaluate(chip, cluster, job, mapping, scaleout_gbps=req.scaleout_gbps)
    except UnknownSpecError as exc:
        raise ConfigError(None, "--chip", "a chip with every number the model needs",
                          str(exc)) from None
    base_cluster = cluster
    cluster = sized_cluster(chip, cluster, req.scaleout_gbps)
    m = result_metrics(chip, cluster, res, job, prices, scaleout_gbps=req.scaleout_gbps)
    serving = isinstance(res, InferResult)
    out = {
        "chip": chip.id or chip.name,
        "die_area_mm2": chip.die_area_mm2,
        "n_compute_dies": chip.n_compute_dies,
        "tdp_w": chip.tdp_w,
        "hbm_gb": chip.hbm_gb,
        "chip_cost_usd": m["chip_cost_usd"],
        "n_chips": cluster.n_chips,
        "model": job.model.name,
        "workload": "infer" if serving else "train",
        "mapping": res.mapping.as_dict(),
        "platform": {"topology": cluster.topology, "scaleup_domain": chip.scaleup_domain,
                     "scaleup_fabric": build_fabric(cluster, chip),
                     "chips_per_rack": cluster.chips_per_rack, "host_cpu": cluster.host_cpu,
                     "host_w_per_chip": cluster.host_power_w_per_chip,
                     "host_memory_gb_per_chip": cluster.host_memory_gb_per_chip,
                     "host_link_gbs": cluster.host_link_gbs,
                     "shared_ports": chip.shared_ports,
                     "scaleout_gbps": chip.scaleout_gbps},
    }
    if serving:
        out.update({
            "ttft_s": res.ttft_s,
            "itl_s": res.itl_s,
            "prefill_s": res.prefill_s,
            "decode_step_s": res.decode_step_s,
            "decode_flops_per_byte": res.decode_flops_per_byte,
        })
    else:
        out.update({"step_time_s": res.step_time_s, "mfu": res.mfu})
    out.update({
        "tokens_per_s": res.tokens_per_s,
        "tokens_per_s_per_chip": res.tokens_per_s_per_chip,
        "memory_gb_per_chip": res.memory_gb_per_chip,
        "memory_gb": res.memory_gb,
        "chip_power_w": res.chip_power_w,
        "cluster_power_w": res.cluster_power_w,
        "provisioned_power_w": m["provisioned_power_w"],
        "idle_chips": m["idle_chips"],
        "tokens_per_joule": res.tokens_per_joule,
        "cost_per_mtoken_usd": m["cost_per_mtoken_usd"],
        "tokens_per_s_per_mw": m["tokens_per_s_per_mw"],
        "tokens_per_s_per_gw": m["tokens_per_s_per_gw"],
        "energy_per_token_j": m["energy_per_token_j"],
        "feasible": res.feasible,
        "reason": res.reason,
        "candidates": res.n_candidates,
        "feasible_candidates": res.n_feasible,
    })
    if not serving:
        out["host_memory_gb"] = res.host_memory_gb
        out["breakdown_s"] = res.breakdown_s
        out["goodput"] = _goodput_part(chip, cluster, res, job, m, req.scaleout_gbps)
    out["power_breakdown_w"] = res.power_w
    out["cluster_breakdown"] = cluster_breakdown(chip, cluster, res,
                                                 scaleout_gbps=req.scaleout_gbps)
    out["clock_fraction"] = res.clock_fraction
    out["cooling"] = _cooling(chip, cluster, m)
    out["assumed"] = assumed
    if wants_traffic(req):
        if not serving:
            raise ConfigError(None, "--disaggregated", "a serving workload (--input-len) for "
                              "the traffic flags", "a training workload")
        out["serving_traffic"] = traffic_part(req, chip, cluster, job)
    if not res.feasible:  # no mapping: no numbers to report, only the reason
        return _without_numbers(out)
    if req.uncertainty is not None:
        from codesign.search.uncertainty import design_bands

        out["uncertainty"] = design_bands(
            chip, base_cluster, job, res.mapping, req.uncertainty,
            scaleout_gbps=req.scaleout_gbps,
            assumed=tuple(k.removeprefix("chip.") for k in assumed))
    return out


def _goodput_part(chip: Any, cluster: Any, res: Any, job: Any, m: dict[str, Any],
                  scaleout_gbps: float | None) -> dict[str, Any] | None:
    """``evaluate``'s goodput of a training job: the breakdown of
    :func:`codesign.model.perf.goodput_breakdown` (failures per day by component, time lost
    to checkpoints, restarts and lost work) with the goodput metrics."""
    from codesign.model.cluster.build import equipment
    from codesign.model.metrics import GOODPUT_METRICS
    from codesign.model.perf import goodput_breakdown

    g = goodput_breakdown(chip, cluster, res.tokens_per_s if res.feasible else 0.0, job,
                          equipment(chip, cluster, scaleout_gbps))
    return None if g is None else {**g, **{k: m[k] for k in GOODPUT_METRICS}}


_TRAIN_FLAGS = ("seq_len", "global_batch")
_SERVE_FLAGS = ("output_len", "concurrency", "kv_precision", "ttft_slo_s", "itl_slo_s")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_workload_flags(req: EvaluateRequest) -> None:
    """Workload flags that the chosen workload would silently ignore are bad input."""
    given = [k for k in ("input_len", *_TRAIN_FLAGS, *_SERVE_FLAGS)
             if getattr(req, k) is not None]
    for key in given:
        got = f"{_flag(key)} {getattr(req, key)}"
        if req.workload is None or req.workload.endswith(".toml"):
            raise ConfigError(None, _flag(key), "a flag for a model id as --workload (a "
                              "workload TOML sets its own workload)",
                              f"{got} with --workload {req.workload}")
        if key in _TRAIN_FLAGS and req.input_len is not None:
            raise ConfigError(None, _flag(key), "a flag for training only (--input-len makes "
                              "the workload serving)", f"{got} with --input-len")
        if key in _SERVE_FLAGS and req.input_len is None:
            raise ConfigError(None, _flag(key), "a flag for serving only (give --input-len "
                              "to serve requests)", f"{got} without --input-len")


def _check_degrees(req: EvaluateRequest) -> None:
    """The parallel degrees given must fit --n-chips: their product is at most --n-chips, and
    equal to it when tp, pp, dp and cp are all given (a product that does not divide it is an
    infeasible mapping, reported as such)."""
    given = [(k, getattr(req, k)) for k in ("tp", "pp", "dp", "cp") if getattr(req, k)]
    if not given:
        return
    product = 1
    for _, v in given:
        product *= v
    key = " x ".join(_flag(k) for k, _ in given)
    if len(given) == 4 and product != req.n_chips:
        raise ConfigError(None, key, f"a product equal to --n-chips ({req.n_chips}) when "
                          "--tp, --pp, --dp and --cp are all given", product)
    if product > req.n_chips:
        raise ConfigError(None, key, f"a product at most --n-chips ({req.n_chips})", product)


_DESIGN_KEYS = ("chip", "die_area_mm2", "n_compute_dies", "tdp_w", "hbm_gb", "chip_cost_usd",
                "n_chips", "model", "workload", "feasible", "reason", "candidates",
                "feasible_candidates", "cooling", "assumed")
"""Keys of ``evaluate``'s output that describe what was asked (the chip, its price, the
cluster and its cooling, the workload, why it failed), so they stay when no mapping is
feasible."""


def _cooling(chip: Any, cluster: Any, m: dict[str, Any]) -> dict[str, Any]:
    """``evaluate``'s ``cooling``: the kind (None: not stated), the rack's kW (chips at TDP
    with their host and network share) and the limit of that cooling, the chip's TDP limit
    (None: no limit), whether both fit (``cooling_ok``) and, when not, why."""
    from codesign.model.cluster import cooling

    c = cooling.check(cluster.cooling, m["rack_power_kw"], chip.tdp_w)
    return {"kind": c.cooling, "rack_power_kw": c.rack_kw, "rack_limit_kw": c.rack_limit_kw,
            "chip_limit_w": c.chip_limit_w, "cooling_ok": c.ok, "violation": c.reason}


def _cluster(req: EvaluateRequest, chip: Any, catalog_chip: bool) -> tuple[Any, Any]:
    """The chip as wired and the cluster the request describes: a catalog chip in its
    platform as built unless ``no_platform``; flags given override the platform."""
    from dataclasses import replace

    from codesign.model.catalog import platforms
    from codesign.model.cluster import build
    from codesign.model.specs import ClusterSpec

    fields = {"topology": req.topology, "oversubscription": req.oversubscription,
              "power_budget_mw": req.power_budget_mw, "site_mw": req.site_mw,
              "job_chips": req.job_chips, "scaleup_fabric": req.scaleup_fabric,
              "chips_per_rack": req.chips_per_rack, "scaleout_ports": req.scaleout_ports,
              "cooling": req.cooling}
    if catalog_chip and not req.no_platform:
        chip, cluster = build.as_built(chip, req.n_chips or 1, **fields)
    else:
        cluster = ClusterSpec(n_chips=req.n_chips or 1,
                              **{k: v for k, v in fields.items() if v is not None})
    if req.n_chips is None:
        cluster = replace(cluster, n_chips=int(chip.scaleup_domain or 8))
    if req.host_cpu is not None or req.chips_per_host is not None:
        p = platforms.platform_of(chip.id) if catalog_chip and not req.no_platform else None
        host = req.host_cpu or (p.host if p else "cobalt-100")
        per_host = req.chips_per_host or (p.chips_per_host if p else 4)
        try:
            host_kw = build.host_fields(host, 1 if req.host_cpu else p.cpus_per_host,
                                        per_host, p.host_dram_gb if p else 512.0)
        except KeyError as exc:
            raise ConfigError(None, "--host-cpu", f"one of: {', '.join(platforms.host_cpus())}",
                              host) from exc
        cluster = replace(cluster, **host_kw)
    if req.host_memory_gb is not None:
        cluster = replace(cluster, host_memory_gb_per_chip=req.host_memory_gb)
    if req.host_link_gbs is not None:
        cluster = replace(cluster, host_link_gbs=req.host_link_gbs)
    if chip.shared_ports and req.scaleout_ports is not None and (
            req.scaleout_ports > chip.shared_ports):
        raise ConfigError(None, "--scaleout-ports", f"at most the chip's {chip.shared_ports} "
                          "shared ports", req.scaleout_ports)
    return chip, cluster


def _without_numbers(out: dict[str, Any]) -> dict[str, Any]:
    """An infeasible evaluation: every predicted metric None (JSON null) instead of the
    model's placeholder 0.0, the mapping's degrees None; the chip, cluster and reason kept."""
    return {k: v if k in _DESIGN_KEYS
            else {m: None for m in v} if k == "mapping"
            else None
            for k, v in out.items()}
