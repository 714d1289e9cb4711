"""The ``codesign`` commands on the model alone: ``evaluate`` (:mod:`codesign.search.request`),
``catalog``, ``bench``.

Each parses nothing (see :mod:`codesign.cli`), calls the library and prints (strict JSON by
:mod:`codesign.cli.format`).
"""

from __future__ import annotations

import argparse
import json
import sys

from codesign.cli.format import _strict_json


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from codesign.search.request import EvaluateRequest, evaluate_request

    req = EvaluateRequest(**{f.name: getattr(args, f.name) for f in fields(EvaluateRequest)})
    out = evaluate_request(req)
    if args.json:
        print(json.dumps(_strict_json(out), allow_nan=False))
        return 0
    if not out["feasible"]:
        for key in ("chip", "die_area_mm2", "n_compute_dies", "tdp_w", "chip_cost_usd",
                    "n_chips", "model", "workload", "candidates"):
            print(f"{key:>22}: {out[key]}")
        print(f"{'cooling':>22}: {_cooling_line(out['cooling'])}")
        print(f"infeasible: {out['reason']}")
        return 0
    for key, value in out.items():
        if key in ("uncertainty", "goodput"):
            continue
        print(f"{key:>22}: {_cooling_line(value) if key == 'cooling' else value}")
    if out.get("goodput"):
        _print_goodput(out["goodput"])
    if "uncertainty" in out:
        _print_bands(out["uncertainty"])
    return 0


def _print_goodput(g: dict) -> None:
    """The goodput breakdown of a training job (``evaluate``'s ``goodput``)."""
    fails = ", ".join(f"{k} {v:.2f}" for k, v in g["failures_per_day"].items() if v)
    print(f"\ngoodput ({g['job_chips']:,} chips in the job): {g['interruptions_per_day']:.2f} "
          f"interruptions/day (MTBF {g['mtbf_h']:.2f} h): {fails}")
    print(f"  checkpoint {g['checkpoint_gb']:,.0f} GB, pauses training "
          f"{g['checkpoint_block_s']:.1f} s (write {g['checkpoint_write_s']:.1f} s), every "
          f"{g['checkpoint_interval_s']:.0f} s"
          f"; recovery {g['recover_s']:.0f} s per failure; spares {g['spare_chips']:.0f} "
          f"(absorb {g['spare_cover']:.0%} of failures)")
    print(f"  wall time: training {g['effective_training_fraction']:.1%}, checkpoints "
          f"{g['checkpoints']:.1%}, restarts {g['restarts']:.1%}, lost work "
          f"{g['lost_work']:.1%}, chips out for repair {g['repair']:.1%}")
    print(f"  {g['train_goodput_tokens_per_s']:,.0f} tokens/s delivered, "
          f"{g['cost_per_goodput_mtoken_usd']:.4g} USD per 1e6 delivered tokens")


def _print_bands(u: dict) -> None:
    """The bands of ``evaluate --uncertainty`` as a table (metric, P10, P50, P90)."""
    from codesign.model.metrics import METRICS

    print(f"\nuncertainty: {u['draws']} paired draws (seed {u['seed']}), the mapping held; "
          f"the mapping runs in {u['feasible_share']:.0%} of them")
    print(f"{'metric':>22}  {'P10':>12} {'P50':>12} {'P90':>12}  unit")
    for m, (p10, p50, p90) in u["bands"].items():
        unit = METRICS.get(m, ("",))[0]
        print(f"{m:>22}  {p10:>12.4g} {p50:>12.4g} {p90:>12.4g}  {unit}")
    e = u["error_model"]
    print(f"model error (log sd): speed {e['speed_between']:.3f} shared + "
          f"{e['speed_within']:.3f} own ({e['speed_rows']} rows, {e['speed_families']} "
          f"families); power {e['power_between']:.3f} + {e['power_within']:.3f} "
          f"({e['power_rows']} rows); constants: "
          + ", ".join(f"{s['name']} x{s['lo']:g}-{s['hi']:g}" for s in u["sources"]))


def _cooling_line(c: dict) -> str:
    """``air: rack 117.8 kW of 50 kW, chip limit 1000 W: does not fit (why)``."""
    import math

    if c["kind"] is None:
        return f"not stated (no limit): rack {c['rack_power_kw']:.1f} kW"
    chip = ("" if c["chip_limit_w"] is None or math.isnan(c["chip_limit_w"])
            else f", chip limit {c['chip_limit_w']:g} W")
    fits = "fits" if c["cooling_ok"] else f"does not fit ({c['violation']})"
    rack = f"rack {c['rack_power_kw']:.1f} kW of {c['rack_limit_kw']:g} kW"
    return f"{c['kind']}: {rack}{chip}: {fits}"


def cmd_catalog(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from codesign.model import catalog

    chips = [asdict(c) for c in catalog.chips()]
    models = {k: {**asdict(m), "params_total": m.params_total(),
                  "params_active": m.params_active()} for k, m in catalog.models().items()}
    if args.json:
        print(json.dumps({"chips": chips, "models": models}))
        return 0
    import pandas as pd

    cols = ["id", "vendor", "year", "process_nm", "tflops_bf16", "tflops_fp8", "sram_mb",
            "hbm_gen", "hbm_stacks", "hbm_gb", "hbm_tbps", "scaleup_gbps", "scaleup_domain",
            "scaleout_gbps", "tdp_w"]
    print(f"{len(chips)} reference chips (empty = unknown in the source data)")
    table = pd.DataFrame(chips, columns=cols)
    for col in ("year", "hbm_stacks", "scaleup_domain"):
        table[col] = table[col].astype("Int64")
    print(table.to_string(index=False, na_rep=""))
    print(f"\n{len(models)} reference models")
    mcols = ["name", "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab",
             "moe_experts", "moe_topk"]
    df = pd.DataFrame.from_dict(models, orient="index")
    df["params_b"] = (df["params_total"] / 1e9).round(1)
    df["active_b"] = (df["params_active"] / 1e9).round(1)
    print(df[[*mcols, "params_b", "active_b"]].to_string())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from codesign.search.bench import format_text, run_bench

    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    doc = run_bench(quick=args.quick, search_trials=args.search_trials, log=log,
                    repeats=args.repeats, long=args.long, long_trivial=args.long_trivial)
    if args.json:
        print(json.dumps(_strict_json(doc), allow_nan=False))
        return 0
    print(format_text(doc))
    return 0
