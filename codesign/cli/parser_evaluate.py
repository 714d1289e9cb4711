"""The flags of ``codesign evaluate``."""

from __future__ import annotations

from typing import Any

from codesign.cli.flags import _float_in, _int_at_least, _positive_float


def add_evaluate(sub: Any) -> None:
    """Add the ``evaluate`` subcommand and its flags to ``sub`` (argparse subparsers)."""
    from codesign.model.specs import (
        ATTENTION_IMPLS,
        OFFLOAD_MODES,
        PRECISIONS,
        RECOMPUTE_MODES,
        TOPOLOGIES,
    )
    from codesign.search.design import DESIGN_PARAMETERS
    from codesign.search.experiment import MAX_BATCH, MAX_TOKENS

    e = sub.add_parser("evaluate", help="predict one chip + cluster on one workload")
    e.add_argument("--chip", required=True,
                   help="catalog chip id, spec-sheet chip TOML ([chip]) or design TOML ([design])")
    e.add_argument("--workload",
                   help="catalog model id, Hugging Face config.json or workload TOML "
                   "([workload]); default: the [workload] of a design file as --chip "
                   "(codesign export-design writes one)")
    n_info, over = DESIGN_PARAMETERS["n_chips"], DESIGN_PARAMETERS["oversubscription"]
    e.add_argument("--n-chips", type=_int_at_least(1, n_info.high), default=None,
                   help="chips in the cluster (default: a design file's [cluster], else the "
                   "chip's scale-up domain: 8 for an HGX H100)")
    e.add_argument("--power-budget-mw", type=_positive_float, default=None,
                   help="size the cluster by a facility power budget (MW) instead")
    e.add_argument("--site-mw", type=_positive_float, default=None,
                   help="with --power-budget-mw: split the budget over sites of this size "
                        "(MW; whole sites, a job never spans two)")
    e.add_argument("--job-chips", type=_int_at_least(1, n_info.high), default=None,
                   help="chips one job uses: the cluster (each site) runs as many identical "
                        "jobs as fit, the rest idle (default: one job on all)")
    e.add_argument("--power-limit-w", type=_positive_float, default=None,
                   help="run the chip under this power limit (W, its TDP): over it, the chip "
                        "lowers its clock (DVFS)")
    e.add_argument("--seq-len", type=_int_at_least(1, MAX_TOKENS),
                   help="with a model id, training: sequence length (tokens; default 4096)")
    e.add_argument("--global-batch", type=_int_at_least(1, MAX_BATCH),
                   help="with a model id, training: sequences per step (default 1024)")
    e.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="matmul (and, serving, weight) precision")
    e.add_argument("--input-len", type=_int_at_least(1, MAX_TOKENS),
                   help="with a model id: serve requests of this many prompt tokens")
    e.add_argument("--output-len", type=_float_in(1.0, MAX_TOKENS),
                   help="serving: generated tokens per request (default 512)")
    e.add_argument("--concurrency", type=_int_at_least(1, MAX_BATCH),
                   help="serving: requests in flight (default: as many as fit)")
    e.add_argument("--kv-precision", choices=PRECISIONS, help="serving: KV-cache precision")
    e.add_argument("--ttft-slo-s", type=_positive_float, help="serving: TTFT limit, s")
    e.add_argument("--itl-slo-s", type=_positive_float, help="serving: ITL limit, s")
    e.add_argument("--attention", choices=ATTENTION_IMPLS, default="flash",
                   help="with a model id: fused (flash) or unfused attention kernels")
    e.add_argument("--scaleout-gbps", type=_positive_float, help="NIC Gbit/s per chip")
    e.add_argument("--topology", choices=TOPOLOGIES, default=None,
                   help="scale-out topology (default: the catalog chip's platform's, else "
                        "fat-tree)")
    e.add_argument("--no-platform", action="store_true",
                   help="a catalog chip in the generic cluster (fat-tree, its NIC, a generic "
                        "110 W / 3,000 USD host per chip) instead of its platform as built")
    e.add_argument("--host-cpu", help="host CPU id of hosts.csv (default: the platform's)")
    e.add_argument("--chips-per-host", type=_int_at_least(1, 64))
    e.add_argument("--scaleup-fabric", choices=("switched", "ethernet", "direct"),
                   help="how the scale-up domain is wired (default: the platform's)")
    e.add_argument("--chips-per-rack", type=_int_at_least(1, 1024))
    e.add_argument("--cooling", choices=("air", "liquid"),
                   help="rack cooling, which bounds rack kW and chip TDP (default: the "
                        "platform's; else none stated, no limit)")
    e.add_argument("--scaleout-ports", type=_int_at_least(0, 256),
                   help="shared-port chips (Maia 100, Gaudi 3): ports facing scale-out")
    e.add_argument("--oversubscription", type=_float_in(over.low, over.high), default=1.0,
                   help="scale-out bandwidth oversubscription (1 = non-blocking)")
    for flag in ("tp", "pp", "dp", "cp", "ep", "vpp"):
        e.add_argument(f"--{flag}", type=_int_at_least(1))
    e.add_argument("--micro-batch", type=_int_at_least(1))
    e.add_argument("--recompute", choices=RECOMPUTE_MODES)
    e.add_argument("--zero", type=int, choices=(0, 1, 2, 3))
    e.add_argument("--sequence-parallel", type=int, choices=(0, 1))
    e.add_argument("--ep-overlap", type=int, choices=(0, 1),
                   help="MoE: run the expert-parallel all-to-all under another micro-batch's "
                   "compute (1) or not (0); searched when unset")
    e.add_argument("--hybrid-shard", type=int, choices=(0, 1),
                   help="ZeRO-3: shard within the scale-up domain, replicate across (1), or "
                   "over the whole data-parallel group (0); searched when unset")
    e.add_argument("--offload", choices=OFFLOAD_MODES,
                   help="training: model states kept in host memory (optimizer: Adam on the "
                   "host CPU; weights: streamed a layer at a time); searched when unset, used "
                   "only where HBM does not hold the mapping")
    e.add_argument("--host-memory-gb", type=_positive_float,
                   help="host DRAM per chip, GB (default: the platform's)")
    e.add_argument("--host-link-gbs", type=_positive_float,
                   help="GB/s per direction between a chip and host memory (default: the "
                   "platform's: PCIe or NVLink-C2C)")
    tg = e.add_argument_group(
        "serving under traffic", "any of these adds serving_traffic: the best deployment's "
        "goodput and P50/P90/P99 TTFT and ITL (limits: --ttft-slo-s, --itl-slo-s)")
    tg.add_argument("--rate-rps", type=_positive_float,
                    help="offered requests/s (default: report the goodput)")
    tg.add_argument("--input-cv", type=_float_in(0.0, 10.0),
                    help="coefficient of variation of prompt length, lognormal (default 0)")
    tg.add_argument("--output-cv", type=_float_in(0.0, 10.0),
                    help="coefficient of variation of output length, lognormal (default 0)")
    tg.add_argument("--prefix-hit", type=_float_in(0.0, 0.99),
                    help="share of prompt tokens served from the prefix cache (default 0)")
    tg.add_argument("--spec-k", type=_int_at_least(0, 16),
                    help="speculative decoding: draft tokens per step (default 0: none)")
    tg.add_argument("--spec-accept", type=_float_in(0.0, 1.0),
                    help="speculative decoding: acceptance rate per draft token")
    tg.add_argument("--chunk", type=_int_at_least(0, MAX_TOKENS),
                    help="one pool: prefill tokens per step, 0 = whole prompts (default: searched)")
    tg.add_argument("--slo-percentile", type=_float_in(0.5, 0.9999),
                    help="percentile the latency limits apply to (default 0.99)")
    tg.add_argument("--disaggregated", action="store_true",
                    help="separate prefill and decode pools (split searched)")
    tg.add_argument("--prefill-chips", type=_int_at_least(1, n_info.high),
                    help="with --disaggregated: chips of the prefill pool")
    tg.add_argument("--decode-chip", help="with --disaggregated: catalog chip id or chip TOML "
                    "file of the decode "
                    "pool (default: --chip)")
    tg.add_argument("--kv-over-scaleup", action="store_true",
                    help="with --disaggregated: the KV cache moves over the scale-up network")
    e.add_argument("--uncertainty", nargs="?", const=256, default=None, type=_int_at_least(1),
                   metavar="N", help="P10/P50/P90 bands from N paired Monte Carlo draws of the "
                   "model's error and the estimated constants (default N: 256)")
    e.add_argument("--json", action="store_true", help="print one JSON object (every key)")
    e.add_argument("--wide", action="store_true",
                   help="text: every key of the answer, not only the one-screen summary")
