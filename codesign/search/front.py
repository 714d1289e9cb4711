"""The study's constraint-aware Pareto front: its trials, its rows (with the improvement of
each design over each baseline) and its snapshots in ``RUN_DIR/pareto/``.

:class:`ParetoFront` keeps the same front incrementally (a population is inserted, nothing is
sorted again): the search loop feeds it the trials as they finish and writes its snapshots
from it, at a cost that grows with the front, not with the study."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState

from codesign.search import parquet_log
from codesign.search.baselines import BASELINE_ATTR
from codesign.search.experiment import Experiment
from codesign.search.journal.packed import keep_in_memory
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


def pareto_rows(exp: Experiment, study: optuna.Study,
                front: ParetoFront | None = None) -> list[dict[str, Any]]:
    """Rows of the constraint-aware Pareto front (``study.best_trials``), by trial number,
    with ``<objective>_vs_<baseline>``: the improvement of each design over each baseline
    trial (> 1 = better; design/baseline when maximising, baseline/design when minimising).
    With ``front`` (kept up to date with the study) the study is not read."""
    if front is not None:
        return _rows(exp, front.trials(), front.baselines)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    baselines = {t.user_attrs[BASELINE_ATTR]: t for t in complete
                 if BASELINE_ATTR in t.user_attrs}
    return _rows(exp, front_trials(study, complete), baselines)


def _rows(exp: Experiment, front: list[FrozenTrial],
          baselines: dict[str, FrozenTrial]) -> list[dict[str, Any]]:
    base = {name: (b.values, b.user_attrs.get(METRICS_ATTR, {}).get("feasible"))
            for name, b in baselines.items()}
    rows = []
    for t in front:
        row = row_from_trial(exp, t, "pareto")
        add_improvements(exp, row, t.values, base)
        rows.append(row)
    return rows


def add_improvements(exp: Experiment, row: dict[str, Any], values: Sequence[float],
                     baselines: dict[str, tuple[Sequence[float], Any]]) -> None:
    """Set ``<objective>_vs_<baseline>`` in ``row`` for a design of objective ``values``:
    its improvement over each baseline (name -> (its values, whether it is feasible)),
    > 1 = better (design/baseline when maximising, baseline/design when minimising); None
    where a value is not positive or the baseline is infeasible."""
    for name, (b_values, feasible) in baselines.items():
        for i, o in enumerate(exp.objectives):
            d, r = values[i], b_values[i]
            ok = d > 0 and r > 0 and feasible
            row[f"{o.metric}_vs_{name}"] = (d / r if o.direction == "maximize"
                                            else r / d) if ok else None


class _NonDominated:
    """The trials no other inserted trial dominates (minimised loss vectors; equal vectors
    are all kept), updated one insertion at a time."""

    def __init__(self, n_objectives: int) -> None:
        self.trials: list[FrozenTrial] = []
        self.loss = np.empty((0, n_objectives))

    def insert(self, trial: FrozenTrial, loss: np.ndarray) -> bool:
        """Insert ``trial`` unless dominated; True if it joined the front."""
        front = self.loss
        if len(front):
            if np.any(np.all(front <= loss, axis=1) & np.any(front < loss, axis=1)):
                return False  # dominated
            keep = ~(np.all(loss <= front, axis=1) & np.any(loss < front, axis=1))
            if not keep.all():
                self.trials = [t for t, k in zip(self.trials, keep, strict=True) if k]
                front = front[keep]
        self.trials.append(trial)
        self.loss = np.vstack([front, loss[None, :]])
        return True


class ParetoFront:
    """The front of :func:`front_trials` and the baselines of :func:`pareto_rows`, kept as
    trials are :meth:`add`-ed (each COMPLETE trial once, in any order) instead of sorting the
    study again: per trial, one comparison with the current front.

    As Optuna's ``best_trials``: once any trial has constraints only the feasible ones
    (every constraint <= 0) count, else every COMPLETE trial."""

    def __init__(self, directions: Sequence[StudyDirection]) -> None:
        self.signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0
                               for d in directions])
        self._feasible = _NonDominated(len(directions))
        self._all: _NonDominated | None = _NonDominated(len(directions))
        self.constrained = False
        self.n_complete = 0
        self.n_feasible = 0
        self._baselines: dict[str, FrozenTrial] = {}  # name -> its last trial by number
        self._baseline_first: dict[str, int] = {}  # name -> its first trial's number
        self._shared: dict[Any, Any] = {}  # metrics layouts of the front's trials

    def add(self, trials: Iterable[FrozenTrial]) -> None:
        """Insert the COMPLETE trials of ``trials`` (others are ignored)."""
        for t in trials:
            if t.state != TrialState.COMPLETE:
                continue
            self.n_complete += 1
            constraints = t.constraints
            if constraints and not self.constrained:
                self.constrained, self._all = True, None
            loss = np.array([np.inf if v is None else v for v in t.values]) * self.signs
            joined = self._all is not None and self._all.insert(t, loss)
            if all(x <= 0.0 for x in constraints.values()):
                self.n_feasible += 1
                joined = self._feasible.insert(t, loss) or joined
            name = t.user_attrs.get(BASELINE_ATTR)
            if joined or name is not None:  # read at every snapshot: held in memory
                keep_in_memory(t, self._shared)
            if name is not None:
                if name not in self._baselines or t.number >= self._baselines[name].number:
                    self._baselines[name] = t
                self._baseline_first[name] = min(t.number,
                                                 self._baseline_first.get(name, t.number))

    @property
    def baselines(self) -> dict[str, FrozenTrial]:
        """Baseline name -> its last COMPLETE trial, names in the order of their first trial
        (the dict :func:`pareto_rows` builds from the trial list)."""
        return {n: self._baselines[n]
                for n in sorted(self._baseline_first, key=self._baseline_first.__getitem__)}

    def trials(self) -> list[FrozenTrial]:
        """The front by trial number, each design once (as :func:`front_trials`)."""
        front = self._feasible if self.constrained or self._all is None else self._all
        return unique_designs(front.trials)


SNAPSHOT_EVERY = 1000
"""A Pareto-front snapshot is written every this many trials of a run (and at its end)..."""
SNAPSHOT_ROWS_EVERY = 2
"""... or, once the front has more than SNAPSHOT_EVERY / this designs, every this many
trials per design of the front (rounded to SNAPSHOT_EVERY): a snapshot rewrites the whole
front, so its cost per trial stays bounded however large the front grows."""


def snapshot_pareto(exp: Experiment, run: RunSpec, study: optuna.Study,
                    writer: str, front: ParetoFront | None = None) -> str | None:
    """Write the current Pareto front to ``RUN_DIR/pareto/`` (None if it is empty); with
    ``front`` (kept up to date with the study), from it without reading the study."""
    rows = pareto_rows(exp, study, front)
    if not rows:
        return None
    n = (front.n_complete if front is not None
         else len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
    return str(parquet_log.write_pareto(run.run_dir, exp, rows, n, writer))
