"""The ``codesign`` commands on the model alone: ``evaluate``, ``catalog``, ``validate``,
``bench``.

Each parses nothing (see :mod:`codesign.cli`), calls the library and prints (strict JSON by
:mod:`codesign.cli.format`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codesign.cli.format import _strict_json
from codesign.errors import ConfigError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from codesign.model import catalog
    from codesign.model.pack import UnknownSpecError
    from codesign.model.perf import evaluate, result_metrics, sized_cluster
    from codesign.model.specs import ClusterSpec, InferJob, InferResult, Mapping, TrainJob
    from codesign.search.design import design_to_chip
    from codesign.search.experiment import load_design, load_workload

    assumed: dict[str, Any] = {}
    if args.chip.endswith(".toml"):
        chip = design_to_chip(load_design(args.chip), name=Path(args.chip).stem)
    elif args.chip in catalog.chip_ids():
        from codesign.model.catalog.assume import explain_unknowns

        chip, why = explain_unknowns(catalog.get_chip(args.chip))
        assumed = {f"chip.{k}": {"value": a.value, "reason": a.reason} for k, a in why.items()}
    else:
        raise ConfigError(None, "--chip",
                          f"a design TOML or one of: {', '.join(catalog.chip_ids())}", args.chip)
    if args.power_limit_w is not None:
        from dataclasses import replace

        chip = replace(chip, tdp_w=args.power_limit_w, throttles=True)
    _check_workload_flags(args)
    if args.workload.endswith(".toml"):
        job = load_workload(args.workload)
    elif args.workload in catalog.model_ids() and args.input_len is not None:
        job = InferJob(catalog.get_model(args.workload), args.input_len,
                       512.0 if args.output_len is None else args.output_len,
                       args.concurrency, args.precision, args.kv_precision,
                       args.ttft_slo_s, args.itl_slo_s)
    elif args.workload in catalog.model_ids():
        job = TrainJob(catalog.get_model(args.workload), args.seq_len or 4096,
                       args.global_batch or 1024, args.precision, args.attention)
    else:
        raise ConfigError(None, "--workload",
                          f"a workload TOML or one of: {', '.join(catalog.model_ids())}",
                          args.workload)
    if args.n_chips is not None and args.power_budget_mw is not None:
        raise ConfigError(None, "--power-budget-mw", "either --n-chips or --power-budget-mw",
                          f"both (--n-chips {args.n_chips})")
    if args.n_chips is not None:
        _check_degrees(args)
    n_chips = args.n_chips or (chip.scaleup_domain or 8)
    cluster = ClusterSpec(n_chips=n_chips, topology=args.topology,
                          oversubscription=args.oversubscription,
                          power_budget_mw=args.power_budget_mw)
    mapping = Mapping(tp=args.tp or 0, pp=args.pp or 0, dp=args.dp or 0, cp=args.cp or 0,
                      ep=args.ep or 0, vpp=args.vpp or 0, micro_batch=args.micro_batch or 0,
                      recompute=args.recompute, zero=args.zero,
                      sequence_parallel=None if args.sequence_parallel is None
                      else bool(args.sequence_parallel),
                      ep_overlap=None if args.ep_overlap is None else bool(args.ep_overlap),
                      hybrid_shard=None if args.hybrid_shard is None
                      else bool(args.hybrid_shard))
    try:
        res = evaluate(chip, cluster, job, mapping, scaleout_gbps=args.scaleout_gbps)
    except UnknownSpecError as exc:
        raise ConfigError(None, "--chip", "a chip with every number the model needs",
                          str(exc)) from None
    cluster = sized_cluster(chip, cluster, args.scaleout_gbps)
    m = result_metrics(chip, cluster, res, job, scaleout_gbps=args.scaleout_gbps)
    serving = isinstance(res, InferResult)
    out = {
        "chip": chip.id or chip.name,
        "die_area_mm2": chip.die_area_mm2,
        "n_compute_dies": chip.n_compute_dies,
        "tdp_w": chip.tdp_w,
        "chip_cost_usd": m["chip_cost_usd"],
        "n_chips": cluster.n_chips,
        "model": job.model.name,
        "workload": "infer" if serving else "train",
        "mapping": res.mapping.as_dict(),
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
        "tokens_per_joule": res.tokens_per_joule,
        "cost_per_mtoken_usd": m["cost_per_mtoken_usd"],
        "tokens_per_s_per_mw": m["tokens_per_s_per_mw"],
        "energy_per_token_j": m["energy_per_token_j"],
        "feasible": res.feasible,
        "reason": res.reason,
        "candidates": res.n_candidates,
        "feasible_candidates": res.n_feasible,
    })
    if not serving:
        out["breakdown_s"] = res.breakdown_s
    out["power_breakdown_w"] = res.power_w
    out["clock_fraction"] = res.clock_fraction
    out["assumed"] = assumed
    if not res.feasible:  # no mapping: no numbers to report, only the reason (exit 0)
        out = _without_numbers(out)
    if args.json:
        print(json.dumps(_strict_json(out), allow_nan=False))
        return 0
    if not res.feasible:
        for key in ("chip", "die_area_mm2", "n_compute_dies", "tdp_w", "chip_cost_usd",
                    "n_chips", "model", "workload", "candidates"):
            print(f"{key:>22}: {out[key]}")
        print(f"infeasible: {res.reason}")
        return 0
    for key, value in out.items():
        print(f"{key:>22}: {value}")
    return 0


_TRAIN_FLAGS = ("seq_len", "global_batch")
_SERVE_FLAGS = ("output_len", "concurrency", "kv_precision", "ttft_slo_s", "itl_slo_s")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_workload_flags(args: argparse.Namespace) -> None:
    """Workload flags that the chosen workload would silently ignore are bad input."""
    given = [k for k in ("input_len", *_TRAIN_FLAGS, *_SERVE_FLAGS)
             if getattr(args, k) is not None]
    for key in given:
        got = f"{_flag(key)} {getattr(args, key)}"
        if args.workload.endswith(".toml"):
            raise ConfigError(None, _flag(key), "a flag for a model id as --workload (a "
                              "workload TOML sets its own workload)",
                              f"{got} with --workload {args.workload}")
        if key in _TRAIN_FLAGS and args.input_len is not None:
            raise ConfigError(None, _flag(key), "a flag for training only (--input-len makes "
                              "the workload serving)", f"{got} with --input-len")
        if key in _SERVE_FLAGS and args.input_len is None:
            raise ConfigError(None, _flag(key), "a flag for serving only (give --input-len "
                              "to serve requests)", f"{got} without --input-len")


def _check_degrees(args: argparse.Namespace) -> None:
    """The parallel degrees given must fit --n-chips: their product is at most --n-chips, and
    equal to it when tp, pp, dp and cp are all given (a product that does not divide it is an
    infeasible mapping, reported as such)."""
    given = [(k, getattr(args, k)) for k in ("tp", "pp", "dp", "cp") if getattr(args, k)]
    if not given:
        return
    product = 1
    for _, v in given:
        product *= v
    key = " x ".join(_flag(k) for k, _ in given)
    if len(given) == 4 and product != args.n_chips:
        raise ConfigError(None, key, f"a product equal to --n-chips ({args.n_chips}) when "
                          "--tp, --pp, --dp and --cp are all given", product)
    if product > args.n_chips:
        raise ConfigError(None, key, f"a product at most --n-chips ({args.n_chips})", product)


_DESIGN_KEYS = ("chip", "die_area_mm2", "n_compute_dies", "tdp_w", "chip_cost_usd", "n_chips",
                "model", "workload", "feasible", "reason", "candidates",
                "feasible_candidates", "assumed")
"""Keys of ``evaluate``'s output that describe what was asked (the chip, its price, the
cluster, the workload, why it failed), so they stay when no mapping is feasible."""


def _without_numbers(out: dict[str, Any]) -> dict[str, Any]:
    """An infeasible evaluation: every predicted metric None (JSON null) instead of the
    model's placeholder 0.0, the mapping's degrees None; the chip, cluster and reason kept."""
    return {k: v if k in _DESIGN_KEYS
            else {m: None for m in v} if k == "mapping"
            else None
            for k, v in out.items()}


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


def _validate_hardware(args: argparse.Namespace) -> int:
    from codesign.validate.hardware import GATE_CHIPS, gate_summary, hardware_table

    if args.cases is not None:
        raise ConfigError(None, "--hardware", "--hardware or --cases, not both (--hardware "
                          "checks catalog chips, --cases measured LLM runs)",
                          f"--hardware --cases {args.cases}")
    if args.workload != "all":
        raise ConfigError(None, "--hardware", "--hardware or --workload, not both",
                          f"--hardware --workload {args.workload}")
    rows = _strict_json(hardware_table())
    if args.json:
        print(json.dumps({"chips": rows}, allow_nan=False))
        return 0
    import pandas as pd

    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    columns = (  # (header, row key, format)
        ("node_nm", "process_nm", "g"), ("dies", "n_compute_dies", "d"),
        ("pred_dies", "predicted_n_dies", "d"), ("die_mm2", "die_area_mm2", ".0f"),
        ("pred_die_mm2", "predicted_die_area_mm2", ".0f"),
        ("area_err_%", "die_area_error_pct", "+.1f"), ("hbm", "hbm_stacks", "d"),
        ("max_hbm", "max_hbm_stacks", "d"), ("tdp_w", "tdp_w", ".0f"),
        ("pred_tdp_w", "predicted_tdp_w", ".0f"), ("tdp_err_%", "tdp_error_pct", "+.1f"),
        ("clock@tdp", "clock_at_tdp", ".2f"),
    )
    table = pd.DataFrame([{
        "id": r["id"],
        **{head: num(r[key], fmt) for head, key, fmt in columns},
        "assumptions / reason": "; ".join(x for x in (r["assumptions"], r["reason"]) if x),
    } for r in rows])
    width = {c: max([len(c), *(len(x) for x in table[c])]) for c in table.columns}
    text = table.to_string(index=False, justify="left", formatters={
        c: (lambda x, w=width[c]: f"{x:<{w}}") for c in table.columns})
    print("\n".join(line.rstrip() for line in text.splitlines()))
    s = gate_summary(rows)
    print()
    print(f"within {s['pct']:g} % among {', '.join(GATE_CHIPS)}: "
          f"die area {s['die_area']['within']}/{s['die_area']['compared']}, "
          f"TDP {s['tdp']['within']}/{s['tdp']['compared']} "
          f"(no published or predicted value: area {', '.join(s['die_area']['not_compared'])}; "
          f"TDP {', '.join(s['tdp']['not_compared']) or 'none'})")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from codesign.model.specs import mapping_short

    if args.hardware:
        return _validate_hardware(args)
    from codesign.validate.predictions import (
        CASE_KEYS,
        compact,
        default_cases_path,
        load_cases,
        run_cases,
        summarize,
    )

    path = args.cases if args.cases is not None else default_cases_path()
    cases = load_cases(path, args.assume_input_len)
    if args.workload != "all":
        cases = [c for c in cases if c.workload == args.workload]
        if not cases:
            raise ConfigError(path, "workload", f"at least one {args.workload!r} row "
                              "(--workload filters the rows of --cases)", "none")
    df = run_cases(cases)
    rows = _strict_json([{k: r[k] for k in CASE_KEYS} for r in df.to_dict("records")])
    summary = _strict_json(summarize(df))
    if args.json:
        print(json.dumps({"cases": rows, "summary": summary}, allow_nan=False))
        return 0
    import pandas as pd

    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    table = pd.DataFrame([{
        "case_id": r["case_id"],
        "metric": r["metric"],
        "measured": num(r["measured"], ".4g"),
        "predicted": num(r["predicted"], ".4g"),
        "error_pct": num(r["error_pct"], "+.1f"),
        "mapping": mapping_short(r["mapping"]),
        "assumed": compact(r["assumed"]),
        "conflicts (row wins)": compact(r["conflicts"], conflicts=True),
        "reason": r["reason"] or "",  # why not predicted
    } for r in rows])
    left = ("case_id", "metric", "mapping", "assumed", "conflicts (row wins)", "reason")
    width = {c: max([len(c), *(len(x) for x in table[c])]) for c in left}
    text = table.to_string(index=False, justify="left", formatters={
        c: (lambda x, w=width[c]: f"{x:<{w}}") for c in left})
    print("\n".join(line.rstrip() for line in text.splitlines()))
    print()

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    def stats(s: dict[str, Any]) -> str:
        return (f"{s['predicted']}/{s['rows']} predicted, abs error % median "
                f"{pct(s['median_abs_error_pct'])}, mean {pct(s['mean_abs_error_pct'])}, "
                f"p90 {pct(s['p90_abs_error_pct'])}")

    print(f"cases: {summary['cases']} ({summary['predicted']} predicted, "
          f"{summary['not_predicted']} not predicted)  file: {path}")
    print(f"abs error %, all predicted: median {pct(summary['median_abs_error_pct'])}, "
          f"mean {pct(summary['mean_abs_error_pct'])}, p90 {pct(summary['p90_abs_error_pct'])}")
    for w, s in summary["by_workload"].items():
        print(f"  {w}: {stats(s)}")
    print(f"  MoE training: {stats(summary['moe_train'])}")
    if summary["by_family"]:
        fam = pd.DataFrame([{"family": f, "rows": s["rows"], "predicted": s["predicted"],
                             "median_abs_error_pct": pct(s["median_abs_error_pct"]),
                             "mean_abs_error_pct": pct(s["mean_abs_error_pct"]),
                             "p90_abs_error_pct": pct(s["p90_abs_error_pct"])}
                            for f, s in summary["by_family"].items()])
        print("by family:")
        print(fam.to_string(index=False))
    if summary["not_predicted_reasons"]:
        print("not predicted:")
        for reason, n in summary["not_predicted_reasons"].items():
            print(f"  {n} x {reason}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from codesign.search.bench import format_text, run_bench

    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    doc = run_bench(quick=args.quick, search_trials=args.search_trials, log=log)
    if args.json:
        print(json.dumps(_strict_json(doc), allow_nan=False))
        return 0
    print(format_text(doc))
    return 0
