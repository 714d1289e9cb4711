"""Throughput benchmarks: the evaluator kernel, the mapping search, and the Optuna search loop.

Three parts, each a plain dict (the keys of ``codesign bench --json``, see DESIGN.md):

* ``evaluator``: ``single_eval_us``, the median time of one :func:`eval_mapping` call, timed
  over a jitted loop (no Python call overhead), and ``evals_per_s``, the mapping-search rate
  (candidates / seconds of the MT-NLG search below).
* ``mapping_search``: :func:`codesign.model.perf.evaluate` (every parallel mapping of one chip,
  cluster and job) on three reference problems; best of a few runs after a warm-up call.
* ``search``: trials per second of the engine (:func:`codesign.search.study.run_search`: populations
  evaluated in one parallel kernel call, Parquet log) against a plain ``study.optimize`` loop
  that evaluates one design per trial, same sampler and the same kind of storage (journal file).

Numba compilation is excluded everywhere (a warm-up call comes first).

Example:
    >>> from codesign.search.bench import run_bench
    >>> doc = run_bench(quick=True, search_trials=64)  # doctest: +SKIP
    >>> sorted(doc)  # doctest: +SKIP
    ['environment', 'evaluator', 'mapping_search', 'notes', 'search']
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from codesign.model import catalog, pack
from codesign.model.kernels.layout import O_STEP_S, OUT_LEN
from codesign.model.kernels.train import eval_mapping
from codesign.model.perf import evaluate
from codesign.model.specs import ClusterSpec, TrainJob, mapping_short

SINGLE_EVAL_CALLS = 100_000
"""Calls of :func:`eval_mapping` per timed jitted loop."""
SINGLE_EVAL_REPEATS = 5
"""Timed loops; ``single_eval_us`` is the median."""
MAPPING_SEARCH_REPEATS = 5
"""Timed runs per mapping-search problem (after one warm-up); ``seconds`` is the best."""
SEARCH_TRIALS = 2000
"""Trials of the search benchmark (``--quick``: :data:`QUICK_SEARCH_TRIALS`)."""
QUICK_SEARCH_TRIALS = 300
SEARCH_EXPERIMENT = "quickstart.toml"
"""The experiment of the search benchmark, in the repository's ``experiments/`` folder."""


@dataclass(frozen=True)
class Problem:
    """One mapping-search benchmark problem (a catalog model and chip on ``n_chips``)."""

    name: str
    model: str
    seq_len: int
    global_batch: int
    chip: str
    n_chips: int
    scaleout_gbps: float | None = None
    """NIC per chip, Gbit/s, for a catalog chip whose NIC is cluster-specific (unpublished)."""

    def job(self) -> TrainJob:
        return TrainJob(catalog.get_model(self.model), self.seq_len, self.global_batch)


PROBLEMS = (
    Problem("mtnlg530b-a100-5128", "mtnlg-530b", 2048, 1920, "a100-sxm-80gb", 5128),
    Problem("llama3-405b-h100-16384", "llama3-405b", 8192, 2048, "h100-sxm", 16384),
    Problem("100k-chips", "llama3-405b", 8192, 8192, "h100-sxm", 100_000),
    # MI300X is rated (750 W) below its modelled sustained peak: candidates over the rating
    # are re-evaluated at lower clocks (DVFS), the costliest path of the evaluator
    Problem("llama3-70b-mi300x-1024-throttled", "llama3-70b", 8192, 1024, "mi300x", 1024,
            scaleout_gbps=400.0),
    # a 1 GW site of H100 as one job (825k chips at ~1.2 kW each, PUE 1.2)
    Problem("1gw-825k-chips", "llama3-405b", 8192, 16384, "h100-sxm", 825_000),
)
"""The problems of ``mapping_search``, in output order (names are part of the contract)."""


# --------------------------------------------------------------------------- evaluator


@njit(cache=False)  # numba's cache would not see a change in the kernels' modules
def _eval_loop(chip, cluster, model, job, mp, out, k):
    """Call :func:`eval_mapping` ``k`` times on one mapping; returns a checksum so the loop
    is not optimised away."""
    acc = 0.0
    for _ in range(k):
        st = eval_mapping(chip, cluster, model, job, mp, out)
        acc += out[O_STEP_S] + st
    return acc


def _problem_arrays(p: Problem) -> tuple[np.ndarray, ...]:
    job = p.job()
    return (pack.chip_array(catalog.get_chip(p.chip), p.scaleout_gbps),
            pack.cluster_array(ClusterSpec(p.n_chips)),
            pack.model_array(job.model), pack.job_array(job))


def single_eval_us(p: Problem = PROBLEMS[0], calls: int = SINGLE_EVAL_CALLS,
                   repeats: int = SINGLE_EVAL_REPEATS) -> tuple[float, dict[str, Any]]:
    """Median microseconds of one :func:`eval_mapping` call on the best mapping of ``p``,
    and that mapping. Each of ``repeats`` timed loops makes ``calls`` calls."""
    res = evaluate(catalog.get_chip(p.chip), ClusterSpec(p.n_chips), p.job())
    if not res.feasible:
        raise RuntimeError(f"benchmark problem {p.name} is infeasible: {res.reason}")
    mp = pack.fixed_array(res.mapping)  # every field fixed: a complete mapping
    arrays = _problem_arrays(p)
    out = np.zeros(OUT_LEN)
    _eval_loop(*arrays, mp, out, 1)  # compile (or load from cache)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _eval_loop(*arrays, mp, out, calls)
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times), res.mapping.as_dict()


# --------------------------------------------------------------------------- mapping search


def mapping_search(p: Problem, repeats: int = MAPPING_SEARCH_REPEATS) -> dict[str, Any]:
    """Best-of-``repeats`` seconds of :func:`codesign.model.perf.evaluate` on ``p`` (after a warm-up
    call), with the candidate counts and the best mapping found."""
    chip, cluster, job = catalog.get_chip(p.chip), ClusterSpec(p.n_chips), p.job()
    # warm-up (compile or load), counting the mappings the bounds rule out (not timed)
    ruled_out = evaluate(chip, cluster, job, scaleout_gbps=p.scaleout_gbps,
                         count_ruled_out=True).n_ruled_out
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = evaluate(chip, cluster, job, scaleout_gbps=p.scaleout_gbps)
        best = min(best, time.perf_counter() - t0)
    return {
        "name": p.name,
        "model": p.model,
        "chip": p.chip,
        "n_chips": p.n_chips,
        "seq_len": p.seq_len,
        "global_batch": p.global_batch,
        "seconds": best,
        "candidates": res.n_candidates,
        "feasible": res.n_feasible,
        "candidates_per_s": res.n_candidates / best if best > 0 else None,
        "ruled_out": ruled_out,
        "decided_per_s": (res.n_candidates + ruled_out) / best if best > 0 else None,
        "best_step_time_s": res.step_time_s if res.feasible else None,
        "mapping": res.mapping.as_dict() if res.feasible else None,
        "clock_fraction": res.clock_fraction if res.feasible else None,
    }


# --------------------------------------------------------------------------- search loop


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder (absent in an installed wheel).

    Found from this module's file (``codesign/search/bench.py``), two levels below the
    repository root.
    """
    return Path(__file__).resolve().parents[2] / "experiments"


SEARCH_REPEATS = 2
"""Runs of each side of the search comparison, interleaved (ours, plain, ours, plain)."""


def search(n_trials: int, experiment: Path | None = None, repeats: int = SEARCH_REPEATS,
           trivial: bool = True) -> dict[str, Any] | None:
    """Trials/s of the engine and of a plain Optuna loop on the quickstart experiment, run
    alternately ``repeats`` times each (see :mod:`codesign.search.bench_loop`), and with
    ``trivial`` the same comparison with a trivial objective on both sides (``trivial``
    key). None if the experiment file is not there (e.g. in an installed package).

    The keys of the first version are kept: ``durable_seconds`` and
    ``plain_optuna_seconds`` are medians over the runs, ``speedup`` their ratio; the ratio per
    pair is ``speedup_min`` / ``speedup_median`` / ``speedup_max``."""
    from codesign.search.bench_loop import compare, trivial_evaluator
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.experiment import load_experiment
    from codesign.search.space import base_design, cluster_extra

    path = experiment or experiments_dir() / SEARCH_EXPERIMENT
    if not path.is_file():
        return None
    exp = load_experiment(path)
    evaluate_designs([base_design(exp)], exp.job, cluster_extra(exp))  # warm-up the kernel
    model = compare(exp, n_trials, repeats)
    engine_s = statistics.median(model["durable_seconds_runs"])
    plain_s = statistics.median(model["plain_optuna_seconds_runs"])
    out = {
        "experiment": str(path),
        "trials": n_trials,
        "sampler": exp.sampler,
        "population": exp.population,
        "storage": "journal file",
        "durable_seconds": engine_s,
        "plain_optuna_seconds": plain_s,
        "durable_trials_per_s": n_trials / engine_s,
        "plain_optuna_trials_per_s": n_trials / plain_s,
        "speedup": plain_s / engine_s,
        "speedup_min": model["speedup"]["min"],
        "speedup_median": model["speedup"]["median"],
        "speedup_max": model["speedup"]["max"],
        "durable_feasible": model["durable_feasible"],
        "durable_trials_per_s_first": model["durable_trials_per_s_first"],
        "durable_trials_per_s_last": model["durable_trials_per_s_last"],
        "per_trial_cost_end_over_start": model["per_trial_cost_end_over_start"],
        "plain_optuna_feasible": model["plain_optuna_feasible"],
        "per_trial_ms_start": model["per_trial_ms_start"],
        "per_trial_ms_end": model["per_trial_ms_end"],
        "model": model,
        "trivial": compare(exp, n_trials, repeats, trivial_evaluator(exp)) if trivial else None,
    }
    return out


# --------------------------------------------------------------------------- all parts


def _version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("codesign")
    except metadata.PackageNotFoundError:
        return None


def run_bench(quick: bool = False, search_trials: int | None = None,
              log: Callable[[str], None] | None = None, repeats: int = SEARCH_REPEATS,
              long: int | None = None, long_trivial: bool = False) -> dict[str, Any]:
    """All benchmarks as one JSON-ready dict (the document of ``codesign bench --json``).

    ``search_trials`` overrides the trial count of the search part (default
    :data:`SEARCH_TRIALS`, :data:`QUICK_SEARCH_TRIALS` with ``quick``); ``log`` receives a
    line as each part starts (progress for a terminal); ``repeats``: runs of each side of
    the interleaved search comparison; ``long``: also one search of that many trials
    (``long_search`` key; ``long_trivial``: with the trivial objective), else None.
    """
    import numba
    import optuna

    if search_trials is not None and search_trials < 1:
        raise ValueError(f"`search_trials >= 1` must hold, but got {search_trials}")
    if repeats < 1 or (long is not None and long < 1):
        raise ValueError(f"`repeats >= 1` and `long >= 1` must hold, got {repeats}, {long}")
    say = log or (lambda _msg: None)
    n_trials = search_trials or (QUICK_SEARCH_TRIALS if quick else SEARCH_TRIALS)
    notes = [
        "numba compilation excluded: each part runs a warm-up call first",
        f"mapping_search.seconds: best of {MAPPING_SEARCH_REPEATS} runs of "
        "codesign.model.perf.evaluate",
        f"evaluator.single_eval_us: median of {SINGLE_EVAL_REPEATS} jitted loops of "
        f"{SINGLE_EVAL_CALLS} eval_mapping calls on the best {PROBLEMS[0].name} mapping",
        f"evaluator.evals_per_s: candidates / seconds of the {PROBLEMS[0].name} mapping search",
        "goodput_overhead: evaluate_designs of 128 goodput_100k designs with the goodput "
        "metrics and with them replaced by constants, alternately, median of 5 each",
        "uncertainty_bands: P10/P50/P90 of every metric of 100 quickstart designs with 256 "
        "paired draws each, point mapping search included, one process",
        "serving_traffic: serve_eval (goodput by bisection and P50/P90/P99 latencies of one "
        "disaggregated deployment) in a jitted loop, one thread, median of 5 loops",
        "evaluator.decided_per_s: (candidates evaluated + mappings ruled out by the search's "
        "exact bounds, which tests/test_search_floor.py checks sum to the whole space) / "
        "seconds",
    ]
    say("mapping search ...")
    searches = [mapping_search(p) for p in PROBLEMS]
    say("single evaluation ...")
    us, eval_mapping_used = single_eval_us()
    say("serving under traffic ...")
    from codesign.search.bench_serving import serving_traffic

    serving = serving_traffic()
    say("uncertainty bands of a front ...")
    from codesign.search.bench_uncertainty import front_bands

    bands_part = front_bands(experiments_dir()) if experiments_dir().is_dir() else None
    say("goodput overhead ...")
    from codesign.search.bench_goodput import goodput_overhead

    goodput_part = goodput_overhead(experiments_dir()) if experiments_dir().is_dir() else None
    first = searches[0]
    say(f"search loop ({n_trials} trials, engine and plain Optuna) ...")
    search_part = search(n_trials, repeats=repeats)
    if search_part is None:
        notes.append(f"search skipped: {experiments_dir() / SEARCH_EXPERIMENT} not found "
                     "(run from a source checkout)")
    else:
        notes.append("search: wall time from study creation to the last trial; engine = "
                     "codesign.search.study.run_search (one parallel kernel call per population, "
                     "Parquet log), plain = study.optimize evaluating one design per trial; "
                     f"run alternately (ours, plain) {repeats} times each, speedup_min/median/"
                     "max over the pairs; search.trivial: the same with a trivial objective "
                     "(a CRC of the design, no model) on both sides")
    long_part = None
    if long is not None and search_part is not None:
        from codesign.search.bench_loop import long_run
        from codesign.search.experiment import load_experiment

        say(f"long search ({long} trials) ...")
        long_part = long_run(load_experiment(experiments_dir() / SEARCH_EXPERIMENT), long,
                             trivial=long_trivial)
    return {
        "evaluator": {
            "evals_per_s": first["candidates"] / first["seconds"],
            "decided_per_s": first["decided_per_s"],
            "single_eval_us": us,
            "single_eval_mapping": eval_mapping_used,
        },
        "mapping_search": searches,
        "serving_traffic": serving,
        "uncertainty_bands": bands_part,
        "goodput_overhead": goodput_part,
        "search": search_part,
        "long_search": long_part,
        "environment": {
            "codesign": _version(),
            "python": platform.python_version(),
            "numba": numba.__version__,
            "optuna": optuna.__version__,
            "numba_threads": numba.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "notes": notes,
    }


def _runs(rates: list[float]) -> str:
    return "/".join(f"{r:.0f}" for r in rates)


def format_text(doc: dict[str, Any]) -> str:
    """A readable report of :func:`run_bench`'s document."""
    import pandas as pd

    ev = doc["evaluator"]
    lines = ["evaluator",
             f"  single eval_mapping call   {ev['single_eval_us']:.3f} us"
             f"   ({mapping_short(ev.get('single_eval_mapping')) or '-'})",
             f"  mapping search rate        {ev['evals_per_s']:,.0f} evals/s, "
             f"{ev.get('decided_per_s') or 0:,.0f} mappings decided/s (evaluated + ruled out "
             "by exact bounds)",
             "", "mapping search (codesign.model.perf.evaluate, all mappings of one problem)"]
    rows = [{"name": s["name"], "n_chips": s["n_chips"], "seconds": f"{s['seconds']:.4f}",
             "candidates": s["candidates"], "feasible": s["feasible"],
             "evals/s": f"{s['candidates_per_s']:,.0f}" if s["candidates_per_s"] else "-",
             "ruled out": s.get("ruled_out", 0),
             "decided/s": f"{s['decided_per_s']:,.0f}" if s.get("decided_per_s") else "-",
             "best_step_s": "-" if s["best_step_time_s"] is None
             else f"{s['best_step_time_s']:.3f}",
             "clock": "-" if s.get("clock_fraction") is None else f"{s['clock_fraction']:.3f}",
             "best mapping": mapping_short(s["mapping"]) or "-"} for s in doc["mapping_search"]]
    table = pd.DataFrame(rows).to_string(index=False)
    lines += ["  " + line for line in table.splitlines()]
    sv = doc.get("serving_traffic")
    if sv:
        srch = sv["search"]
        lines += ["", f"serving under traffic ({sv['name']}): {sv['evals_per_s']:,.0f} "
                  f"evaluations/s ({sv['single_eval_us']:.1f} us, goodput "
                  f"{sv['goodput_rps']:.1f} req/s, P99 TTFT {sv['ttft_p99_s']:.2f} s, "
                  f"P99 ITL {sv['itl_p99_s'] * 1e3:.1f} ms)",
                  f"  deployment search: one pool {srch['one_pool']['seconds'] * 1e3:.2f} ms "
                  f"(goodput {srch['one_pool']['goodput_rps']:.1f} req/s), disaggregated "
                  f"{srch['disaggregated']['seconds'] * 1e3:.2f} ms (goodput "
                  f"{srch['disaggregated']['goodput_rps']:.1f} req/s)"]
    ub = doc.get("uncertainty_bands")
    if ub:
        lines += ["", f"uncertainty bands ({ub['name']}): {ub['designs']} designs x "
                  f"{ub['draws']} paired draws in {ub['seconds']:.2f} s "
                  f"({ub['draws_per_s']:,.0f} draws/s, mapping searches included)"]
    go = doc.get("goodput_overhead")
    if go:
        lines += [f"goodput ({go['name']}): {go['designs']} designs in "
                  f"{go['seconds_with'] * 1e3:.0f} ms with the failure model, "
                  f"{go['seconds_without'] * 1e3:.0f} ms without ({go['overhead']:+.1%})"]
    lines += ["", "search loop"]
    se = doc["search"]
    if se is None:
        lines.append("  skipped (no experiments/quickstart.toml)")
    else:
        lines += [
            f"  {Path(se['experiment']).name}: {se['trials']} trials, sampler {se['sampler']} "
            f"(population {se['population']}), storage: {se['storage']}",
            f"  engine (run_search)        {se['durable_trials_per_s']:8.1f} trials/s"
            f"   ({se['durable_seconds']:.1f} s, {se['durable_feasible']} feasible)",
            f"  plain Optuna optimize      {se['plain_optuna_trials_per_s']:8.1f} trials/s"
            f"   ({se['plain_optuna_seconds']:.1f} s, {se['plain_optuna_feasible']} feasible)",
            f"  engine / plain             {se['speedup']:8.1f}x",
            f"  engine, first / last trials {se['durable_trials_per_s_first']:7.1f} / "
            f"{se['durable_trials_per_s_last']:.1f} trials/s "
            f"(per-trial cost end/start {se['per_trial_cost_end_over_start']:.2f})",
        ]
        for name, part in (("model", se.get("model")), ("trivial objective", se.get("trivial"))):
            if part:
                sp = part["speedup"]
                lines.append(
                    f"  {name:<18} ours {_runs(part['durable_trials_per_s_runs'])} vs plain "
                    f"{_runs(part['plain_optuna_trials_per_s_runs'])} trials/s; plain/ours "
                    f"min {sp['min']:.1f}x median {sp['median']:.1f}x max {sp['max']:.1f}x; "
                    f"per trial {part['per_trial_ms_start']:.2f} -> "
                    f"{part['per_trial_ms_end']:.2f} ms")
    lo = doc.get("long_search")
    if lo:
        lines += ["", f"long search ({lo['trials']} trials, {lo['objective']} objective): "
                  f"{lo['trials_per_s']:.1f} trials/s, per-trial cost end/start "
                  f"{lo['per_trial_cost_end_over_start']:.2f}, peak RSS {lo['peak_rss_mb']:.0f} MB",
                  "  trials/s by window: " + " ".join(
                      f"{w['trials']}:{w['trials_per_s']:.0f}" for w in lo["windows"])]
    env = doc["environment"]
    lines += ["", f"python {env['python']}, numba {env['numba']} ({env['numba_threads']} "
              f"threads), optuna {env['optuna']}, {env['cpus']} CPUs {env['machine']}", "notes"]
    lines += [f"  - {n}" for n in doc["notes"]]
    return "\n".join(lines)
