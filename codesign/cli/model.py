"""The ``codesign`` commands on the model alone: ``evaluate`` (:mod:`codesign.search.request`),
``catalog``, ``bench``.

Each parses nothing (see :mod:`codesign.cli`), calls the library and prints (strict JSON by
:mod:`codesign.cli.format`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from codesign.cli.format import (
    _strict_json,
    num,
    seconds,
    si,
    terminal_width,
    unit_of,
    with_unit,
)
from codesign.model.metrics import STEP_PARTS


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
    if getattr(args, "wide", False):
        for key, value in out.items():
            if key != "uncertainty":
                _print_key(key, value)
    else:
        width = terminal_width()
        lines = evaluate_summary(out, out.get("hbm_gb"))
        if out.get("goodput"):
            lines += _goodput_lines(out["goodput"])
        for line in lines:
            print(line if width is None else _wrap(line, width))
    if "uncertainty" in out:
        _print_bands(out["uncertainty"])
    return 0


def _print_key(key: str, value: Any, parent: str = "", depth: int = 0) -> None:
    """One key of ``evaluate``'s answer as ``--wide`` prints it: the value as the model gave
    it, then its unit (:func:`codesign.cli.format.unit_of`); a dict as one indented line per
    key, down to the last level."""
    label = f"{key:>22}" if depth == 0 else " " * (22 + 2 * depth) + key
    if isinstance(value, dict):
        print(f"{label}:" + ("" if value else " {}"))
        for k, v in value.items():
            _print_key(str(k), v, key, depth + 1)
        return
    unit = unit_of(key, parent)
    if parent.startswith("chip.") and key == "value":  # assumed: the chip field's unit
        unit = unit_of(parent.removeprefix("chip."))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    print(f"{label}: {value}" + (f" {unit}" if unit and number else ""))


def _wrap(line: str, width: int) -> str:
    """``line`` wrapped to ``width`` columns, continuation lines under its text."""
    import textwrap

    if len(line) <= width:
        return line
    indent = len(line) - len(line.lstrip())
    body = line[indent:]
    hang = indent + (_LABEL if len(body) > _LABEL and body[_LABEL - 1] == " " else 2)
    return textwrap.fill(line, width, subsequent_indent=" " * min(hang, width // 2),
                         break_long_words=False, break_on_hyphens=False)


_LABEL = 14
"""Width of the label column of ``evaluate``'s summary."""

SUMMARY_WIDTH = 100
"""Columns the summary's lists fill (its one screen: at most ~40 lines of this width)."""

_ADDITIVE = ("compute", "tp_cp_ep_comm", "pipeline_bubble", "pipeline_p2p", "dp_comm_exposed",
             "optimizer")
"""Parts that do not overlap: the step less their sum is what the breakdown does not itemise
(``host_offload_exposed`` lies partly in the pipeline and partly in the optimizer step)."""


def evaluate_summary(out: dict[str, Any], hbm_gb: float | None = None) -> list[str]:
    """``evaluate``'s feasible answer as one screen of text, a unit on every number: chip,
    cluster, workload, mapping, throughput, step time by part (training) or latency
    (serving), power by part, energy, cost, memory, clock, cooling, assumed values and, when
    asked for, serving under traffic. ``hbm_gb``: the chip's HBM, for the memory line."""
    from codesign.model.specs import mapping_short

    train = out["workload"] == "train"
    p = out.get("platform") or {}
    lines: list[str] = []

    def add(label: str, text: str) -> None:
        lines.append(f"{label:<{_LABEL}}{text}".rstrip())

    def part(label: str, value: float, total: float, unit: str, level: int = 0) -> None:
        name = "  " * (level + 1) + label
        pct = f"{100.0 * value / total:5.1f} %" if total > 0 else ""
        lines.append(f"{name:<{_LABEL + 16}}{value_text(value, unit):>12}  {pct}".rstrip())

    def value_text(value: float, unit: str) -> str:
        return seconds(value) if unit == "s" else with_unit(value, unit)

    def items(parts: list[str], end: str = "") -> None:
        """``parts`` joined by commas under the label column, as few lines of at most
        :data:`SUMMARY_WIDTH` columns as they fill."""
        line = ""
        for i, text in enumerate(parts):
            text += "," if i < len(parts) - 1 else end
            if line and _LABEL + len(line) + 1 + len(text) > SUMMARY_WIDTH:
                add("", line)
                line = text
            else:
                line = f"{line} {text}" if line else text
        if line:
            add("", line)

    area, dies = out.get("die_area_mm2"), out.get("n_compute_dies")
    die = ("die area n/a" if area is None else
           f"{num(area)} mm² per die x {dies or 1} die{'s' if (dies or 1) > 1 else ''}")
    add("chip", f"{out['chip']}: {die}, TDP {with_unit(out['tdp_w'], 'W')}, "
        f"{with_unit(out['chip_cost_usd'], 'USD')}")
    idle = out.get("idle_chips") or 0
    add("cluster", f"{num(out['n_chips'])} chips" + (f" ({num(idle)} idle)" if idle else "")
        + f", {p.get('topology')}, scale-up domain {num(p.get('scaleup_domain'))} chips "
        f"({p.get('scaleup_fabric') or 'switched'})"
        + (f", {num(p['chips_per_rack'])} chips/rack" if p.get("chips_per_rack") else ""))
    add("", f"host {p.get('host_cpu') or '(generic)'}: "
        f"{with_unit(p.get('host_w_per_chip'), 'W')}, "
        f"{with_unit(p.get('host_memory_gb_per_chip'), 'GB')} and "
        f"{with_unit(p.get('host_link_gbs'), 'GB/s')} per chip; scale-out "
        f"{with_unit(p.get('scaleout_gbps'), 'Gbit/s')} per chip")
    add("workload", f"{out['model']}, {'training' if train else 'serving'}")
    m = out.get("mapping") or {}
    extra = (" sp" if m.get("sequence_parallel") else "") + (
        f" offload {m['offload']}" if m.get("offload") not in (None, "none") else "")
    add("mapping", f"{mapping_short(m)}{extra} (best of {num(out.get('feasible_candidates'))} "
        f"feasible, {num(out.get('candidates'))} tried)")
    tps = (f"{with_unit(out['tokens_per_s'], 'tokens/s')}, "
           f"{with_unit(out['tokens_per_s_per_chip'], 'tokens/s')} per chip")
    if train:
        add("throughput", f"{tps}, MFU {num(100.0 * out['mfu'])} %")
        step = out["step_time_s"]
        add("step time", f"{seconds(step)} per step; by part (communication: what compute "
            "does not hide):")
        b = out.get("breakdown_s") or {}
        for key, label, level in STEP_PARTS:
            if b.get(key):
                part(label, b[key], step, "s", level)
        rest = step - sum(b.get(k) or 0.0 for k in _ADDITIVE)
        if not b.get("host_offload_exposed") and rest > 0.005 * step:
            part("rest (not itemised)", rest, step, "s")
    else:
        add("throughput", f"{tps} (output tokens)")
        add("latency", f"TTFT {seconds(out['ttft_s'])}, ITL {seconds(out['itl_s'])}; prefill "
            f"{seconds(out.get('prefill_s'))}, decode step {seconds(out.get('decode_step_s'))}"
            f" at {with_unit(out.get('decode_flops_per_byte'), 'FLOP/byte')}")
    chip_w = out["chip_power_w"]
    clock = out.get("clock_fraction")
    add("chip power", f"{with_unit(chip_w, 'W')} of {with_unit(out['tdp_w'], 'W')} TDP, "
        f"clock {num(100.0 * clock)} % of peak" if clock is not None else
        f"{with_unit(chip_w, 'W')} of {with_unit(out['tdp_w'], 'W')} TDP")
    for key, w in (out.get("power_breakdown_w") or {}).items():
        if w:
            part(key.replace("_", " "), w, chip_w, "W")
    cb = out.get("cluster_breakdown") or {}
    pw = cb.get("power_w") or {}
    add("cluster power", f"{watts(out['cluster_power_w'])} drawn, "
        f"{watts(out.get('provisioned_power_w'))} provisioned")
    if pw:
        total = sum(pw.values())
        items([f"{k} {watts(v)} {100.0 * v / total:.0f} %" for k, v in pw.items() if v])
    add("energy", f"{with_unit(out['tokens_per_joule'], 'tokens/J')}, "
        f"{with_unit(out.get('energy_per_token_j'), 'J/token')} (accelerators), "
        f"{with_unit(out.get('tokens_per_s_per_mw'), 'tokens/s')} per MW provisioned")
    capex = cb.get("capex_usd") or {}
    add("cost", f"{with_unit(out['cost_per_mtoken_usd'], 'USD')} per 1e6 tokens"
        + (f"; capex {usd(sum(capex.values()))} USD:" if capex else ""))
    items([f"{k} {usd(v)}" for k, v in capex.items() if v], " USD")
    mem = out.get("memory_gb_per_chip")
    of = (f" of {with_unit(hbm_gb, 'GB')} HBM ({100.0 * mem / hbm_gb:.0f} %)"
          if hbm_gb and mem is not None else "")
    terms = [f"{k.replace('_', ' ')} {num(v)}" for k, v in (out.get("memory_gb") or {}).items()
             if v]
    add("memory", f"{with_unit(mem, 'GB')} per chip{of}" + (":" if terms else ""))
    items(terms, " GB")
    if out.get("host_memory_gb"):
        add("", f"{with_unit(out['host_memory_gb'], 'GB')} per chip in host memory (offload)")
    add("cooling", _cooling_line(out["cooling"]))
    assumed = out.get("assumed") or {}
    add("assumed", "nothing (every number the model needs is in the chip's data)"
        if not assumed else f"{len(assumed)} value{'s' if len(assumed) > 1 else ''} the chip's "
        "data leaves out:")
    for key, a in assumed.items():
        unit = unit_of(key.removeprefix("chip."))
        lines.append(f"  {key} = {with_unit(a.get('value'), unit)}: {a.get('reason')}")
    if out.get("serving_traffic"):
        lines += _traffic_lines(out["serving_traffic"])
    return lines


def usd(value: float) -> str:
    """Dollars in a list of parts: SI suffixes from 10,000 on (``28.67M``), whole or not."""
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) >= 10_000:
        return si(float(value))
    return num(value)


def watts(value: float | None) -> str:
    """Power with the prefix that reads best: ``566 W``, ``154.2 kW``, ``1.031 MW``."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return num(value)
    for scale, unit in ((1e9, "GW"), (1e6, "MW"), (1e3, "kW")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value:.4g} W"


def _traffic_lines(t: dict[str, Any]) -> list[str]:
    """``serving_traffic`` (serving under a request stream) as summary lines."""
    lines = [""]
    head = f"{'traffic':<{_LABEL}}"
    if not t.get("feasible"):
        return [*lines, f"{head}nothing serves this traffic: {t.get('reason')}"]
    pct = f"P{100.0 * t['percentile']:g}"
    rate = (f"goodput {with_unit(t.get('goodput_rps'), 'requests/s')}"
            if t.get("goodput_rps") is not None
            else f"{with_unit(t.get('rate_rps'), 'requests/s')} offered")
    lines.append(f"{head}{t.get('mode')}, {rate}, "
                 f"{with_unit(t.get('output_tokens_per_s'), 'output tokens/s')}; "
                 f"latency limits at {pct}")
    for key, name in (("ttft_s", "TTFT"), ("itl_s", "ITL")):
        q = t.get(key) or {}
        lines.append(f"  {name:<{_LABEL - 2}}" + ", ".join(
            f"{k.upper()} {seconds(q.get(k))}" for k in ("p50", "p90", "p99")))
    lines.append(f"  {'request':<{_LABEL - 2}}{seconds(t.get('request_latency_s_at_percentile'))}"
                 f" end to end at {pct}")
    pools = []
    for pool in ("prefill", "decode"):
        mp = t.get(f"{pool}_mapping") or {}
        n = t.get(f"{pool}_chips")
        chips = f" {num(n)} chips" if n is not None else ""
        of = f" of {t['decode_chip']}" if pool == "decode" and t.get("decode_chip") else ""
        pools.append(f"{pool}{chips}{of} (tp{mp.get('tp')} pp{mp.get('pp')} ep{mp.get('ep')}, "
                     f"batch up to {num(mp.get('max_batch'))})")
    kv = (f"; KV transfer {seconds(t['kv_transfer_s'])}" if t.get("kv_transfer_s") is not None
          else "")
    lines.append(f"  {'pools':<{_LABEL - 2}}" + ", ".join(pools) + kv)
    util = t.get("prefill_utilisation")
    lines.append(f"  {'load':<{_LABEL - 2}}prefill busy "
                 f"{'n/a' if util is None else f'{100.0 * util:.1f} %'}, mean decode batch "
                 f"{num(t.get('decode_batch_mean'))} requests, "
                 f"{num(t.get('tokens_per_decode_step'))} tokens per decode step")
    lines.append(f"  {'power, cost':<{_LABEL - 2}}{watts(t.get('cluster_power_w'))}, "
                 f"{with_unit(t.get('tokens_per_joule'), 'tokens/J')}, "
                 f"{with_unit(t.get('cost_per_mtoken_usd'), 'USD')} per 1e6 output tokens")
    return lines


def _goodput_lines(g: dict[str, Any]) -> list[str]:
    """The goodput breakdown of a training job (``evaluate``'s ``goodput``), lines of at
    most about :data:`SUMMARY_WIDTH` columns."""
    fails = ", ".join(f"{k} {v:.2f}" for k, v in g["failures_per_day"].items() if v)
    pad = "  "
    return [
        "",
        f"{'goodput':<{_LABEL}}{g['job_chips']:,} chips in the job: "
        f"{g['interruptions_per_day']:.2f} interruptions/day (MTBF {g['mtbf_h']:.2f} h)",
        f"{pad}failures/day: {fails}",
        f"{pad}checkpoint {g['checkpoint_gb']:,.0f} GB every {g['checkpoint_interval_s']:.0f} s, "
        f"pauses training {g['checkpoint_block_s']:.1f} s (write "
        f"{g['checkpoint_write_s']:.1f} s); recovery {g['recover_s']:.0f} s per failure",
        f"{pad}spares {g['spare_chips']:.0f} chips (absorb {g['spare_cover']:.0%} of failures)",
        f"{pad}wall time: training {g['effective_training_fraction']:.1%}, checkpoints "
        f"{g['checkpoints']:.1%}, restarts {g['restarts']:.1%}, lost work "
        f"{g['lost_work']:.1%}, out for repair {g['repair']:.1%}",
        f"{pad}{g['train_goodput_tokens_per_s']:,.0f} tokens/s delivered, "
        f"{g['cost_per_goodput_mtoken_usd']:.4g} USD per 1e6 delivered tokens",
    ]


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
