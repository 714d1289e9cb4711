"""Design parameters: the knobs a search space may turn, and how a set of them becomes specs.

A *design* is a flat dict ``{parameter name: value}`` covering every entry of
:data:`DESIGN_PARAMETERS`. Search spaces list which of them are searched and give fixed values
for the rest (``[base]``); anything still unset falls back to :data:`DEFAULT_DESIGN`, an
H100-like chip in 8-chip scale-up domains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codesign.model import tech
from codesign.model.chip import area as area_model
from codesign.model.chip import cost, power
from codesign.model.chip import datasheet as chip_area
from codesign.model.reliability import Resilience
from codesign.model.specs import HBM_GENERATIONS, TOPOLOGIES, ChipSpec, ClusterSpec


@dataclass(frozen=True)
class ParamInfo:
    """What a design parameter is: kind, unit, physically meaningful bounds or choices."""

    kind: str  # "int" | "float" | "str"
    unit: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


DESIGN_PARAMETERS: dict[str, ParamInfo] = {
    # --- chip ---
    "process_nm": ParamInfo("float", "nm", choices=(7, 5, 4, 3, 2),
                            help="foundry node class of the compute die"),
    "compute_units": ParamInfo("int", "count", 1, 4096, help="matrix compute units (SM/CU/core)"),
    "macs_per_unit": ParamInfo("int", "MAC/cycle", 16, 65536,
                               help="dense bf16 multiply-accumulates per cycle per unit"),
    "clock_ghz": ParamInfo("float", "GHz", 0.2, 4.0, help="clock of the matrix units"),
    "fp8_speedup": ParamInfo("int", "x bf16", choices=(0, 1, 2),
                             help="fp8 matmul rate as a multiple of bf16 (0 = no fp8)"),
    "fp4_speedup": ParamInfo("int", "x bf16", choices=(0, 1, 2, 4),
                             help="fp4 matmul rate as a multiple of bf16 (0 = no fp4)"),
    "sram_mb": ParamInfo("float", "MB", 1, 4096, help="on-chip SRAM (caches + scratchpads)"),
    "hbm_gen": ParamInfo("str", "", choices=tuple(g for g in HBM_GENERATIONS if g != "none"),
                         help="HBM generation"),
    "hbm_stacks": ParamInfo("int", "count", 1, 16, help="HBM stacks per package"),
    "scaleup_links": ParamInfo("int", "count", 0, 256, help="scale-up ports per chip"),
    "scaleup_link_gbps": ParamInfo("float", "GB/s", 0, 2000,
                                   help="bidirectional bandwidth of one scale-up link"),
    "scaleup_domain": ParamInfo("int", "chips", 1, 1_000_000,
                                help="chips sharing the scale-up fabric"),
    "scaleout_gbps": ParamInfo("float", "Gbit/s", 0, 12_800, help="NIC bandwidth per chip"),
    "power_limit": ParamInfo("float", "x sustained peak", 0.3, 1.0,
                             help="the chip's power limit (its TDP) as a fraction of its "
                                  "sustained-peak power; below 1 it lowers its clock (DVFS) "
                                  "when a workload would draw more"),
    "shared_ports": ParamInfo("int", "count", 0, 64,
                              help="on-die Ethernet ports serving scale-up and scale-out (Maia "
                                   "100: 12; 0 = scale-up links + a separate NIC)"),
    "port_gbps": ParamInfo("float", "Gbit/s", 0, 1600, help="speed of one shared port"),
    # --- cluster ---
    "n_chips": ParamInfo("int", "chips", 1, 10_000_000, help="accelerators in the cluster"),
    "scaleout_ports": ParamInfo("int", "count", 0, 64,
                                help="of the shared ports, those facing scale-out (the rest "
                                     "form the scale-up domain; at least 1)"),
    "scaleup_fabric": ParamInfo("str", "", choices=("switched", "ethernet", "direct"),
                                help="scale-up wiring: NVLink-switch class, Ethernet switches "
                                     "(copper in a rack, optics beyond), or point-to-point"),
    "chips_per_rack": ParamInfo("int", "chips", 1, 1024,
                                help="accelerators per rack (copper inside, optics between)"),
    "host_cpu": ParamInfo("str", "", choices=("generic", "cobalt-100", "grace", "xeon-8480",
                                              "xeon-8570", "epyc-9654", "epyc-7742"),
                          help="host CPU (hosts.csv; generic: 110 W and 3,000 USD per chip)"),
    "chips_per_host": ParamInfo("int", "chips", 1, 16,
                                help="accelerators per host CPU socket (a searched host: one "
                                     "socket, 512 GB DRAM)"),
    "cooling": ParamInfo("str", "", choices=("unstated", "air", "liquid"),
                         help="rack cooling, air or direct liquid: each bounds a rack's power "
                              "and a chip's TDP (codesign.model.cluster.cooling, the metric "
                              "cooling_ok); unstated: no limit"),
    "spares_per_domain": ParamInfo("int", "chips", 0, 64,
                                   help="hot spare chips per scale-up domain (or node): a "
                                        "failure costs a swap instead of a restart "
                                        "(codesign.model.reliability)"),
    "checkpoint_gbps": ParamInfo("float", "GB/s", 1.0, 1_000_000.0,
                                 help="aggregate bandwidth of the checkpoint storage"),
    "async_checkpoint": ParamInfo("int", "", choices=(0, 1),
                                  help="1: training pauses only to copy its checkpoint shard "
                                       "to host memory, the storage write overlaps"),
    "checkpoint_interval_s": ParamInfo("float", "s", 0.0, 1_000_000.0,
                                       help="training seconds between checkpoints (0: "
                                            "Daly's optimum for the job's failure rate)"),
    "topology": ParamInfo("str", "", choices=TOPOLOGIES, help="scale-out network topology"),
    "oversubscription": ParamInfo("float", "ratio", 1.0, 16.0,
                                  help="fat-tree taper above the leaf (1 = non-blocking)"),
    "pue": ParamInfo("float", "ratio", 1.0, 3.0, help="facility power usage effectiveness"),
}
"""Every design parameter name a search space may use, with its unit and valid range."""

NEUTRAL_VALUES: dict[str, Any] = {
    "power_limit": 1.0, "shared_ports": 0, "port_gbps": 400.0, "scaleout_ports": 0,
    "scaleup_fabric": "switched", "chips_per_rack": 8, "host_cpu": "generic",
    "chips_per_host": 4, "cooling": "unstated", "spares_per_domain": 0,
    "checkpoint_gbps": 2000.0, "async_checkpoint": 0, "checkpoint_interval_s": 0.0,
}
"""Parameters added after the first release, with the value that reproduces the behaviour
from before they existed: a space that leaves one at this value keeps the fingerprint it had
then (:meth:`codesign.search.experiment.SearchSpace.fingerprint`), so earlier runs still resume.
``cooling`` is neutral at ``"unstated"`` (no rack or chip limit), not at ``"liquid"``: liquid
bounds a rack at 250 kW, which a dense space (1,024 chips per rack) can exceed."""

CLUSTER_PARAMETERS = ("n_chips", "topology", "oversubscription", "pue", "scaleout_ports",
                      "scaleup_fabric", "chips_per_rack", "host_cpu", "chips_per_host",
                      "cooling", "spares_per_domain", "checkpoint_gbps", "async_checkpoint",
                      "checkpoint_interval_s")
CLUSTER_EXTRA = ("scaleup_latency_us", "scaleout_latency_us", "host_power_w_per_chip",
                 "power_budget_mw", "site_mw", "job_chips")
"""``[cluster]`` keys that are not design parameters (non-negative numbers)."""
RESILIENCE_PARAMETERS = {"spares_per_domain": int, "checkpoint_gbps": float,
                         "async_checkpoint": bool, "checkpoint_interval_s": float}
"""Cluster parameters that are fields of :class:`codesign.model.reliability.Resilience`."""

DECODE_PREFIX = "decode_"
"""Prefix of the decode pool's chip parameters (``decode_hbm_stacks``, ...): a search space
that sets or searches any of them describes two chips, a prefill chip (the plain names) and
a decode chip (the plain names overridden by the ``decode_`` ones), deployed as disaggregated
prefill and decode pools (an experiment's ``[traffic]``)."""

DECODE_PARAMETERS: dict[str, ParamInfo] = {
    DECODE_PREFIX + k: ParamInfo(v.kind, v.unit, v.low, v.high, v.choices,
                                 f"decode pool's chip: {v.help}")
    for k, v in DESIGN_PARAMETERS.items() if k not in CLUSTER_PARAMETERS
}
"""The chip parameters of the decode pool, when it is another chip than the prefill pool's
(cluster parameters are shared by both pools)."""

SPACE_PARAMETERS: dict[str, ParamInfo] = {**DESIGN_PARAMETERS, **DECODE_PARAMETERS}
"""Every name a search space's ``[base]`` or ``[params]`` may use."""


def decode_design(design: dict[str, Any]) -> dict[str, Any] | None:
    """The decode pool's design of a heterogeneous design: ``design`` with its ``decode_*``
    values in place of the plain ones (a chip parameter without a ``decode_`` value is the
    prefill chip's); None when ``design`` has no ``decode_*`` key (one chip for both pools)."""
    over = {k[len(DECODE_PREFIX):]: v for k, v in design.items()
            if k.startswith(DECODE_PREFIX)}
    if not over:
        return None
    plain = {k: v for k, v in design.items() if not k.startswith(DECODE_PREFIX)}
    return plain | over


HOST_DRAM_GB = 512.0
"""Host memory of a searched design's host CPU, GB (estimate: 8-16 DDR5 RDIMMs)."""

DEFAULT_DESIGN: dict[str, Any] = {
    # H100 SXM-like: 132 SMs x 2048 bf16 MAC/cycle x 1.83 GHz = 989 TFLOP/s dense
    # (NVIDIA H100 datasheet; chips.csv row h100-sxm), 5 HBM3 stacks, 18 NVLink4 links of
    # 50 GB/s bidirectional each (900 GB/s), 400 Gb/s NIC per GPU, HGX 8-GPU domain.
    "process_nm": 4,
    "compute_units": 132,
    "macs_per_unit": 2048,
    "clock_ghz": 1.83,
    "fp8_speedup": 2,
    "fp4_speedup": 0,
    "sram_mb": 80.0,
    "hbm_gen": "HBM3",
    "hbm_stacks": 5,
    "scaleup_links": 18,
    "scaleup_link_gbps": 50.0,
    "scaleup_domain": 8,
    "scaleout_gbps": 400.0,
    "power_limit": 1.0,
    "shared_ports": 0,
    "port_gbps": 400.0,
    "n_chips": 1024,
    "topology": "fat-tree",
    "oversubscription": 1.0,
    "pue": 1.2,
    "scaleout_ports": 0,
    "scaleup_fabric": "switched",
    "chips_per_rack": 8,
    "host_cpu": "generic",
    "chips_per_host": 4,
    "cooling": "unstated",
    "spares_per_domain": 0,
    "checkpoint_gbps": 2000.0,
    "async_checkpoint": 0,
    "checkpoint_interval_s": 0.0,
}



def design_area(design: dict[str, Any]) -> area_model.AreaEstimate:
    """Silicon of a design: total area, its split into compute dies under the reticle, and
    whether its HBM stacks fit along the dies' edges (``reason`` says when not)."""
    serdes_gbit_one_way = _port_gbps(design)[2]
    return area_model.estimate_area(float(design["process_nm"]), int(design["compute_units"]),
                              int(design["macs_per_unit"]), float(design["sram_mb"]),
                              str(design["hbm_gen"]), int(design["hbm_stacks"]),
                              serdes_gbit_one_way)


def _port_gbps(design: dict[str, Any]) -> tuple[float, float, float]:
    """``(scale-up GB/s bidirectional, NIC Gbit/s, SerDes Gbit/s one way)`` of a design: its
    scale-up links and NIC, or with ``shared_ports`` all of its shared Ethernet ports (how
    the cluster splits them is :func:`codesign.model.cluster.build.port_split`'s)."""
    ports = int(design.get("shared_ports", 0))
    if ports:
        one_way = ports * float(design["port_gbps"])
        return one_way / 8.0 * 2.0, 0.0, one_way
    up = float(design["scaleup_links"]) * float(design["scaleup_link_gbps"])
    out = float(design["scaleout_gbps"])
    return up, out, up * 8 / 2 + out


def design_to_chip(design: dict[str, Any], name: str = "design",
                   area: area_model.AreaEstimate | None = None) -> ChipSpec:
    """Build the chip a design describes: peaks from units x MACs x clock, HBM from its
    generation, area and dies from :func:`design_area` (pass ``area`` if already computed),
    TDP = ``power_limit`` x the sustained peak from :mod:`codesign.model.chip.power`, and
    ``price_usd`` =
    manufacturing cost from :mod:`codesign.model.chip.cost`."""
    node = float(design["process_nm"])
    units = int(design["compute_units"])
    macs = int(design["macs_per_unit"])
    clock = float(design["clock_ghz"])
    bf16 = 2.0 * units * macs * clock * 1e9 / 1e12
    gen = str(design["hbm_gen"])
    stacks = int(design["hbm_stacks"])
    stack_gbps, stack_gb = tech.HBM[gen].gbps_per_stack, tech.HBM[gen].gb_per_stack
    up_gbps, out_gbps, _ = _port_gbps(design)
    est = area or design_area(design)
    limit = float(design["power_limit"])
    tdp = limit * power.tdp_w(node, bf16, macs, gen, stacks * stack_gbps / 1000.0,
                              up_gbps + out_gbps / 8 * 2, est.silicon_mm2)
    return ChipSpec(
        name=name,
        process_nm=node,
        compute_units=units,
        clock_ghz=clock,
        tflops_fp32=bf16 / 16.0,  # vector fp32: 1/16 of the matrix rate (H100: 66.9 vs 989)
        tflops_bf16=bf16,
        tflops_fp8=bf16 * int(design["fp8_speedup"]),
        tflops_fp4=bf16 * int(design["fp4_speedup"]),
        sram_mb=float(design["sram_mb"]),
        hbm_gen=gen,
        hbm_stacks=stacks,
        hbm_gb=stacks * stack_gb,
        hbm_tbps=stacks * stack_gbps / 1000.0,
        scaleup_gbps=up_gbps,
        scaleup_links=int(design["shared_ports"]) or int(design["scaleup_links"]),
        scaleup_domain=int(design["scaleup_domain"]),
        scaleout_gbps=out_gbps,
        tdp_w=tdp,
        die_area_mm2=est.die_mm2,
        n_compute_dies=est.n_dies,
        price_usd=cost.chip_cost_usd(node, est.die_mm2, gen, stacks * stack_gb, stacks,
                                     n_dies=est.n_dies),
        # at its sustained peak (power_limit 1) a workload over the TDP is infeasible; under a
        # lower limit the chip throttles to it, as shipping chips do
        throttles=limit < 1.0,
        shared_ports=int(design["shared_ports"]),
        port_gbps=float(design["port_gbps"]) if int(design["shared_ports"]) else 0.0,
    )


def design_to_cluster(design: dict[str, Any], extra: dict[str, Any] | None = None) -> ClusterSpec:
    """Build the cluster a design describes; ``extra`` adds the non-searchable cluster keys
    (latencies, host power) from the experiment's ``[cluster]`` table."""
    kwargs = {k: design.get(k, DEFAULT_DESIGN[k]) for k in CLUSTER_PARAMETERS}
    kwargs["n_chips"] = int(kwargs["n_chips"])
    host, per_host = kwargs.pop("host_cpu"), int(kwargs.pop("chips_per_host"))
    ports = int(design.get("shared_ports", 0))
    kwargs["scaleout_ports"] = max(1, int(kwargs["scaleout_ports"])) if ports else None
    if kwargs["scaleup_fabric"] == "switched":
        kwargs["scaleup_fabric"] = None  # by topology and chip, as before the parameter
    if kwargs["cooling"] == "unstated":
        kwargs["cooling"] = None  # no cooling limit, as before the parameter
    kwargs["resilience"] = Resilience(**{k: kind(kwargs.pop(k))
                                         for k, kind in RESILIENCE_PARAMETERS.items()})
    kwargs.update(extra or {})
    if host != "generic":
        from codesign.model.cluster.build import host_fields

        kwargs.update(host_fields(host, 1, per_host, HOST_DRAM_GB))
    return ClusterSpec(**kwargs)


def _platform_design(chip: ChipSpec) -> dict[str, Any]:
    """The design parameters of a catalog chip's platform as built (platforms.toml): shared
    Ethernet ports and their split, scale-up fabric and domain, rack and its cooling, host
    CPU."""
    from codesign.model.catalog.platforms import platform_of

    p = platform_of(chip.id) if chip.id else None
    if p is None:
        return {}
    out: dict[str, Any] = {"scaleup_domain": p.scaleup_domain, "chips_per_rack": p.chips_per_rack,
                           "chips_per_host": max(1, round(p.chips_per_host / p.cpus_per_host)),
                           "host_cpu": p.host, "cooling": p.cooling,
                           "scaleup_fabric": p.scaleup if p.scaleup in
                           DESIGN_PARAMETERS["scaleup_fabric"].choices else "switched"}
    if p.shared_ports:
        out.update(shared_ports=p.shared_ports, port_gbps=p.port_gbps,
                   scaleout_ports=p.scaleout_ports)
    elif p.nic_gbps:
        out["scaleout_gbps"] = p.nic_gbps
    return out


def project_chip(chip: ChipSpec) -> dict[str, Any]:
    """The design point closest to a catalog chip: its resources in design-parameter terms
    (MACs per unit worked back from peak bf16, link bandwidth = scale-up / links, the HBM
    generation's nominal stack; ``power_limit`` = published TDP / the modelled sustained
    peak, at most 1). Unknown chip fields keep :data:`DEFAULT_DESIGN` values; an
    unpublished clock is taken as :data:`codesign.model.chip.datasheet.TYPICAL_CLOCK_GHZ`.

    A catalog chip is first completed by the stated assumptions of
    :func:`codesign.model.catalog.assume.explain_unknowns` (GB200 takes B200's compute units,
    H800 H100's), as ``codesign evaluate`` does. Raises ValueError naming the chip when it
    still lacks compute units or a bf16 peak.
    """
    if chip.id:
        from codesign.model.catalog.assume import explain_unknowns

        chip = explain_unknowns(chip)[0]
    macs = chip_area.macs_per_unit(chip)
    if macs is None:
        raise ValueError(f"chip {chip.id or chip.name!r} lacks compute units or a bf16 peak: "
                         "it cannot be projected into the design space")
    design = dict(DEFAULT_DESIGN)
    design.update({
        "compute_units": int(chip.compute_units),
        "macs_per_unit": round(macs),
        "clock_ghz": float(chip.clock_ghz or chip_area.TYPICAL_CLOCK_GHZ),
    })
    if chip.process_nm is not None and int(chip.process_nm) in (7, 5, 4, 3, 2):
        design["process_nm"] = float(chip.process_nm)
    if chip.tflops_fp8 is not None:
        design["fp8_speedup"] = round(chip.tflops_fp8 / chip.tflops_bf16)
    if chip.tflops_fp4 is not None:
        design["fp4_speedup"] = round(chip.tflops_fp4 / chip.tflops_bf16)
    for key in ("sram_mb", "hbm_stacks", "scaleup_links", "scaleup_domain", "scaleout_gbps"):
        value = getattr(chip, key)
        if value is not None:
            design[key] = value
    if chip.hbm_gen in tech.HBM:
        design["hbm_gen"] = chip.hbm_gen
    if chip.scaleup_gbps and chip.scaleup_links:
        design["scaleup_link_gbps"] = chip.scaleup_gbps / chip.scaleup_links
    design.update(_platform_design(chip))
    if chip.tdp_w:  # a chip rated below its modelled sustained peak is power-limited
        peak = design_to_chip(design).tdp_w
        lo = DESIGN_PARAMETERS["power_limit"].low or 0.0
        design["power_limit"] = min(1.0, max(lo, chip.tdp_w / peak)) if peak else 1.0
    return design
