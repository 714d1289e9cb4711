"""The search-loop benchmarks of ``codesign bench``: our durable loop against plain Optuna, with
the model and with a trivial objective, and the long run (cost along 100,000 trials, memory).

* :func:`compare`: ``run_search`` (populations, one kernel call each, journal file, Parquet
  log) and a plain ``study.optimize`` loop (one design per trial, same sampler, journal file)
  run alternately, A B A B, ``repeats`` times each on a machine that other jobs may share;
  the ratio is reported as min / median / max over the pairs.
* the trivial objective: both sides evaluate :func:`trivial_evaluator` instead of the model,
  so the storage and sampler overhead is seen apart from the batch evaluation.
* :func:`long_run`: one search of ``n`` trials; trials/s per window along the run, the
  per-trial cost of the last window over the first, and the peak RSS of the process.

Timings only: nothing here is asserted by the tests.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

LONG_WINDOWS = 10
"""Windows of a long run's trials/s report."""


def trivial_evaluator(exp: Any) -> Callable[..., list[dict[str, Any]]]:
    """An evaluator with :func:`~codesign.search.evaluate.evaluate_designs`'s signature that
    does not run the model: the metrics of the base design (evaluated once), with each
    objective replaced by a deterministic value in [0.5, 1.5) from a CRC of the design.

    Not a constant: with equal values every design would be on the Pareto front, and the
    front (written every 1,000 trials) would grow with the study instead of the loop being
    measured."""
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.space import base_design, cluster_extra

    template = evaluate_designs([base_design(exp)], exp.job, cluster_extra(exp))[0]
    metrics = [o.metric for o in exp.objectives]

    def evaluate(designs: list[dict[str, Any]], *_args: Any) -> list[dict[str, Any]]:
        out = []
        for d in designs:
            h = zlib.crc32(repr(sorted(d.items(), key=lambda kv: kv[0])).encode())
            m = dict(template)
            for i, name in enumerate(metrics):
                m[name] = 0.5 + ((h >> (8 * i)) & 0xFF) / 256
            out.append(m)
        return out

    return evaluate


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def plain_optuna(exp: Any, n_trials: int, journal: Path,
                 evaluate: Callable[..., list[dict[str, Any]]] | None = None,
                 ) -> tuple[float, int]:
    """A plain Optuna loop on ``exp``: one design evaluated per trial (``evaluate``: instead
    of the model). Returns (seconds, feasible trials)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from codesign.search.evaluate import evaluate_designs
    from codesign.search.space import base_design, cluster_extra, design_from_params, distributions
    from codesign.search.storage.rundir import constraint_values, make_sampler, objective_values

    dists = distributions(exp.space)
    base = base_design(exp)
    extra = cluster_extra(exp)
    evaluate = evaluate or evaluate_designs

    def objective(trial: optuna.Trial) -> list[float]:
        params = {name: _suggest(trial, name, d) for name, d in dists.items()}
        metrics = evaluate([design_from_params(base, params)], exp.job, extra)[0]
        for key, value in constraint_values(exp, metrics).items():
            trial.set_constraint(key, value)
        return objective_values(exp, metrics)

    t0 = time.perf_counter()
    study = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(str(journal))),
        directions=[o.direction for o in exp.objectives],
        sampler=make_sampler(exp.sampler, exp.seed, exp.population),
    )
    study.optimize(objective, n_trials=n_trials)
    seconds = time.perf_counter() - t0
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = sum(1 for t in complete if all(v <= 0 for v in t.constraints.values()))
    return seconds, feasible


def engine(exp: Any, n_trials: int, out: Path,
           evaluate: Callable[..., list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """One ``run_search`` of ``n_trials`` in a new run directory under ``out``: seconds
    (from study creation), feasible trials and the population marks (trials, seconds since
    the start)."""
    from codesign.search.storage.rundir import prepare_run
    from codesign.search.study import run_search

    t0 = time.perf_counter()
    run = prepare_run(exp, out=out, study="bench", storage=None)
    marks: list[tuple[int, float]] = []
    summary = run_search(exp, run, n_trials, progress=False, timings=marks, evaluate=evaluate)
    return {"seconds": time.perf_counter() - t0, "feasible": summary.feasible,
            "marks": [(n, t - t0) for n, t in marks]}


def edge_rates(marks: list[tuple[int, float]], window: int) -> tuple[float, float]:
    """Trials/s over the first and the last ``window`` trials of a run (population marks,
    seconds from its start)."""
    if not marks:
        return 0.0, 0.0
    first = next(m for m in marks if m[0] >= window)
    total = marks[-1][0]
    before_last = max((m for m in marks if m[0] <= total - window), default=(0, 0.0))
    return first[0] / first[1], (total - before_last[0]) / (marks[-1][1] - before_last[1])


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def compare(exp: Any, n_trials: int, repeats: int = 2,
            evaluate: Callable[..., list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Our loop (A) and plain Optuna (B), run A B A B ... ``repeats`` times each on ``exp``.

    Returns per-run seconds of each side, the ratio plain/ours of each A-B pair as min /
    median / max, and the per-trial cost (ms) of our loop over its first and last window of
    trials (median over its runs)."""
    ours: list[dict[str, Any]] = []
    plain: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="codesign-bench-") as tmp:
        for i in range(repeats):
            ours.append(engine(exp, n_trials, Path(tmp) / f"engine{i}", evaluate))
            plain.append(plain_optuna(exp, n_trials, Path(tmp) / f"plain{i}.log", evaluate))
    window = min(1000, max(1, n_trials // 4))
    edges = [edge_rates(r["marks"], window) for r in ours]
    ratios = [p[0] / o["seconds"] for o, p in zip(ours, plain, strict=True)]
    start = statistics.median(1e3 / s for s, _ in edges)
    end = statistics.median(1e3 / e for _, e in edges if e)
    return {
        "trials": n_trials,
        "repetitions": repeats,
        "order": "interleaved: ours, plain, ours, plain, ...",
        "durable_seconds_runs": [o["seconds"] for o in ours],
        "plain_optuna_seconds_runs": [p[0] for p in plain],
        "durable_trials_per_s_runs": [n_trials / o["seconds"] for o in ours],
        "plain_optuna_trials_per_s_runs": [n_trials / p[0] for p in plain],
        "speedup": _spread(ratios),
        "durable_feasible": ours[-1]["feasible"],
        "plain_optuna_feasible": plain[-1][1],
        "window_trials": window,
        "durable_trials_per_s_first": statistics.median(s for s, _ in edges),
        "durable_trials_per_s_last": statistics.median(e for _, e in edges),
        "per_trial_ms_start": start,
        "per_trial_ms_end": end,
        "per_trial_cost_end_over_start": end / start if start else None,
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (``ru_maxrss``: KiB on Linux,
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def long_run(exp: Any, n_trials: int, trivial: bool = False,
             windows: int = LONG_WINDOWS) -> dict[str, Any]:
    """One search of ``n_trials`` (``trivial``: the trivial objective instead of the model):
    trials/s in ``windows`` windows along the run, the per-trial cost of the last window
    over the first, and the process's peak RSS (MB) before and after."""
    evaluate = trivial_evaluator(exp) if trivial else None
    rss_before = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="codesign-bench-long-") as tmp:
        run = engine(exp, n_trials, Path(tmp) / "engine", evaluate)
    size = max(1, n_trials // windows)
    rates = []
    prev = (0, 0.0)
    for m in run["marks"]:
        if m[0] - prev[0] >= size or m is run["marks"][-1]:
            if m[1] > prev[1]:
                rates.append({"trials": m[0], "trials_per_s": (m[0] - prev[0]) / (m[1] - prev[1])})
            prev = m
    first, last = rates[0]["trials_per_s"], rates[-1]["trials_per_s"]
    return {
        "trials": n_trials,
        "objective": "trivial" if trivial else "model",
        "seconds": run["seconds"],
        "trials_per_s": n_trials / run["seconds"],
        "windows": rates,
        "per_trial_cost_end_over_start": first / last if last else None,
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
