"""The study's constraint-aware Pareto front: its trials, its rows (with the improvement of
each design over each baseline) and its snapshots in ``RUN_DIR/pareto/``."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState

from codesign.search import parquet_log
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.experiment import Experiment
from codesign.search.repeats import unique_designs
from codesign.search.storage.rundir import METRICS_ATTR, RunSpec, row_from_trial


def front_trials(study: optuna.Study,
                 complete: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The trials of ``study.best_trials`` (constraint-aware Pareto front) by trial number,
    each design once (its first trial: repeats of a design share its values), without
    deep-copying every trial of the study (``complete``: its COMPLETE trials, if already
    read). Do not modify the returned trials."""
    if complete is None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return unique_designs(_get_pareto_front_trials_by_trials(
        complete, study.directions, consider_constraint=any(t.constraints for t in complete)))


def pareto_rows(exp: Experiment, study: optuna.Study) -> list[dict[str, Any]]:
    """Rows of the constraint-aware Pareto front (``study.best_trials``), by trial number,
    with ``<objective>_vs_<baseline>``: the improvement of each design over each baseline
    trial (> 1 = better; design/baseline when maximising, baseline/design when minimising)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = front_trials(study, complete)
    baselines = {t.user_attrs[BASELINE_ATTR]: t for t in complete
                 if BASELINE_ATTR in t.user_attrs}
    rows = []
    for t in front:
        row = row_from_trial(exp, t, "pareto")
        for name, b in baselines.items():
            for i, o in enumerate(exp.objectives):
                d, r = t.values[i], b.values[i]
                ok = d > 0 and r > 0 and b.user_attrs.get(METRICS_ATTR, {}).get("feasible")
                ratio = (d / r if o.direction == "maximize" else r / d) if ok else None
                row[f"{o.metric}_vs_{name}"] = ratio
        rows.append(row)
    return rows


SNAPSHOT_EVERY = 1000
"""A Pareto-front snapshot is written every this many trials of a run (and at its end)."""


def snapshot_pareto(exp: Experiment, run: RunSpec, study: optuna.Study,
                    writer: str) -> str | None:
    """Write the current Pareto front to ``RUN_DIR/pareto/`` (None if it is empty)."""
    rows = pareto_rows(exp, study)
    if not rows:
        return None
    n = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return str(parquet_log.write_pareto(run.run_dir, exp, rows, n, writer))
