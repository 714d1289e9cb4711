"""The design-space search: experiment -> space -> designs -> metrics -> study -> log.

* :mod:`~codesign.search.experiment` reads an experiment and its search space
  (:mod:`~codesign.search.toml_checks` reports every bad value,
  :mod:`~codesign.search.workload_file` the workload table);
* :mod:`~codesign.search.space` turns Optuna parameters into designs,
  :mod:`~codesign.search.design` designs into chip and cluster specs,
  :mod:`~codesign.search.evaluate` a population of designs into metrics and
  :mod:`~codesign.search.request` one ``codesign evaluate`` request into its answer;
* :mod:`~codesign.search.study` runs the population loop (create, resume),
  :mod:`~codesign.search.pool` K processes on one machine; :mod:`~codesign.search.samplers`
  builds the sampler, :mod:`~codesign.search.front` keeps the Pareto front,
  :mod:`~codesign.search.repeats` never evaluates a design twice,
  :mod:`~codesign.search.baselines` queues the reference chips;
* :mod:`~codesign.search.storage` (run directory, storage URLs, run.json, trial rows),
  :mod:`~codesign.search.workers` (locks, liveness), :mod:`~codesign.search.recovery` (trials
  a dead worker left, the Parquet log's catch-up), :mod:`~codesign.search.parquet_log`,
  :mod:`~codesign.search.export` and :mod:`~codesign.search.journal` (checks, checksums,
  repair) keep a run whole under faults;
* :mod:`~codesign.search.bench` times the evaluator and the loop.

The search imports the model, never the results, the validation or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codesign._lazy import exports

if TYPE_CHECKING:
    from codesign.search.evaluate import evaluate_designs
    from codesign.search.experiment import (
        Experiment,
        SearchSpace,
        load_experiment,
        load_search_space,
    )
    from codesign.search.study import SearchSummary, run_search

_PUBLIC = {
    "run_search": "codesign.search.study",
    "SearchSummary": "codesign.search.study",
    "load_experiment": "codesign.search.experiment",
    "load_search_space": "codesign.search.experiment",
    "Experiment": "codesign.search.experiment",
    "SearchSpace": "codesign.search.experiment",
    "evaluate_designs": "codesign.search.evaluate",
}
__all__ = [
    "Experiment",
    "SearchSpace",
    "SearchSummary",
    "evaluate_designs",
    "load_experiment",
    "load_search_space",
    "run_search",
]
__getattr__, __dir__ = exports(__name__, _PUBLIC)
