"""Look at a finished (or running) study: trials, fronts, hypervolume, what-if sensitivity.

Presentation-free: everything is a plain :class:`pandas.DataFrame` (or a row of one), in the
units of :data:`codesign.model.metrics.METRICS`; :mod:`codesign.results.report` draws on top of it.

The run object and its trial tables live here; the hypervolume history is computed in
:mod:`codesign.results.hypervolume` and the what-if sensitivity in
:mod:`codesign.results.sensitivity`, whose
public names this module re-exports.

Example:
    >>> import codesign
    >>> from codesign.results.inspect import hypervolume_history, sensitivity
    >>> run = codesign.load_run("runs/quickstart")  # doctest: +SKIP
    >>> best = run.best("tokens_per_joule")  # doctest: +SKIP
    >>> best[["trial", "value_tokens_per_joule", "param_sram_mb"]]  # doctest: +SKIP
    >>> hypervolume_history(run)["hypervolume"].is_monotonic_increasing  # doctest: +SKIP
    True
    >>> what_if = sensitivity(run, int(best["trial"]))  # doctest: +SKIP
    >>> what_if[["param", "from", "to", "rel_tokens_per_joule"]]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage

from codesign.errors import ConfigError
from codesign.results.hypervolume import HV_REFERENCE, hypervolume_history
from codesign.results.sensitivity import (
    CONTINUOUS_FACTOR,
    REPORTED_METRICS,
    evaluate_params,
    neighbours,
    sensitivity,
    violations,
)
from codesign.search import parquet_log
from codesign.search.experiment import Experiment
from codesign.search.front import front_trials, pareto_rows
from codesign.search.journal.check import check_journal
from codesign.search.storage import log_state
from codesign.search.storage import rundir as _rundir
from codesign.search.storage.log_state import front_source

__all__ = [
    "CONTINUOUS_FACTOR",
    "HV_REFERENCE",
    "REPORTED_METRICS",
    "Run",
    "evaluate_params",
    "front_source",
    "hypervolume_history",
    "infeasible_reasons",
    "load_run",
    "neighbours",
    "read_trials",
    "sensitivity",
    "violations",
]


# --------------------------------------------------------------------------- the Run object


class Run:
    """One run directory, opened for reading (see DESIGN.md, "Run directory").

    Properties are read lazily and cached; :meth:`refresh` drops the cache so a run still
    being written can be looked at again.

    Attributes:
        path: The run directory.
        experiment: The experiment as run (``RUN_DIR/experiment.toml``).
        spec: Study name, storage URL, sampler and seed
        (:class:`codesign.search.storage.rundir.RunSpec`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.experiment: Experiment
        self.spec: _rundir.RunSpec
        self.experiment, self.spec = _rundir.load_run(self.path)

    # ---------------------------------------------------------------- what the study is

    @property
    def name(self) -> str:
        """The study name."""
        return self.spec.study_name

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """``[(metric, "maximize" | "minimize"), ...]`` in the study's order."""
        return [(o.metric, o.direction) for o in self.experiment.objectives]

    @cached_property
    def storage(self) -> BaseStorage:
        """The run's Optuna storage (the truth; the Parquet log is derived from it).

        A damaged journal (torn or glued line) is a ConfigError naming ``codesign doctor``."""
        jpath = _rundir.journal_file(self.spec)
        if jpath is not None:
            if not jpath.is_file():
                raise ConfigError(jpath, "<journal>", "the run's Optuna journal", "no such file")
            health = check_journal(jpath, run_dir=self.path)
            if health.damaged:
                raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
        return _rundir.open_storage(self.spec)

    @cached_property
    def study(self) -> optuna.Study:
        """The live :class:`optuna.Study` (read it; searching goes through ``codesign``)."""
        return optuna.load_study(study_name=self.spec.study_name, storage=self.storage)

    # ---------------------------------------------------------------- tables

    @cached_property
    def trials(self) -> pd.DataFrame:
        """Every finished (COMPLETE) trial from the Parquet log ``RUN_DIR/trials/``, one row per
        trial number, sorted by it. Columns: ``trial``, ``is_baseline``, ``baseline``,
        ``feasible`` (the model found a mapping), ``constraints_ok`` (feasible and within every
        ``[constraints]`` bound), ``reason``, ``param_<name>``, ``value_<objective>``, every
        metric of :data:`codesign.model.metrics.METRICS` and the chosen mapping ``map_*``."""
        return read_trials(self.path, self.experiment)

    @cached_property
    def pareto(self) -> pd.DataFrame:
        """The current constraint-aware Pareto front (the rows of ``codesign pareto``:
        :func:`codesign.search.front.pareto_rows`), by trial number, with the columns of
        :attr:`trials` plus ``<objective>_vs_<baseline>`` improvement factors over each
        baseline chip as projected into the search space (its baseline trial; see
        :mod:`codesign.results.compare`, which lists what the projection changes)."""
        rows = self._front[0]
        names = parquet_log.schema(self.experiment).names
        if not rows:
            return _empty_trials(self.experiment)
        df = pd.DataFrame(rows)
        extra = [c for c in df.columns if c not in names and not c.startswith("_")]
        return df[[c for c in names if c in df.columns] + extra].reset_index(drop=True)

    @cached_property
    def log_view(self) -> log_state.LogView:
        """Whether the Parquet log stands in for the storage
        (:func:`codesign.search.storage.log_state.log_view`): when it does, :attr:`pareto`,
        :meth:`front_trials` and :attr:`stored` read the log and its recorded front, not the
        journal; ``log_view.note`` says when the log may be behind a running search."""
        return log_state.log_view(self.path, self.spec)

    @cached_property
    def _front(self) -> tuple[list[dict[str, Any]], Any]:
        view = self.log_view
        if view.usable:
            return (log_state.front_rows(self.path, self.experiment, view),
                    log_state.LogStudy(self.name, self.experiment, self.path))
        return pareto_rows(self.experiment, self.study), self.study

    @property
    def stored(self) -> Any:
        """What :func:`codesign.results.compare.compare_run` reads of the study: the study
        itself, or its baseline trials from the log (:class:`~codesign.search.storage.
        log_state.LogStudy`) when the log stands in for it."""
        return self._front[1]

    def front_trials(self) -> list[Any]:
        """The front's trials (:func:`codesign.search.front.front_trials`), read from the
        log when it stands in for the storage (:class:`~codesign.search.storage.log_state.
        LogTrial`: number, params, values, the metrics in ``user_attrs``)."""
        rows, study = self._front
        if isinstance(study, log_state.LogStudy):
            return [log_state.LogTrial(self.experiment, r) for r in rows]
        return front_trials(study)

    @property
    def baselines(self) -> pd.DataFrame:
        """The reference-chip warm-start trials (``is_baseline``), with the chip id in
        ``baseline``; empty if the experiment lists no ``baselines``."""
        df = self.trials
        return df[df["is_baseline"].fillna(False).astype(bool)].reset_index(drop=True)

    @property
    def feasible(self) -> pd.DataFrame:
        """The trials that meet every constraint (``constraints_ok``)."""
        df = self.trials
        return df[df["constraints_ok"].astype(bool)].reset_index(drop=True)

    def best(self, objective: str) -> pd.Series:
        """The best feasible trial (``constraints_ok``) for one objective, in its direction;
        ties go to the lowest trial number.

        Raises:
            ValueError: ``objective`` is not one of the study's objectives (the message lists
                them), or no trial is feasible yet.
        """
        directions = dict(self.objectives)
        if objective not in directions:
            raise ValueError(f"{objective!r} is not an objective of study {self.name!r}; "
                             f"valid objectives: {', '.join(directions)}")
        ok = self.feasible
        if ok.empty:
            raise ValueError(f"study {self.name!r} has no feasible trial yet "
                             f"({len(self.trials)} complete)")
        col = ok[f"value_{objective}"]
        pick = col.idxmax() if directions[objective] == "maximize" else col.idxmin()
        return ok.loc[pick]

    def refresh(self) -> Run:
        """Forget cached trials, front and study, so the next access reads them again."""
        for key in ("trials", "pareto", "study", "storage", "log_view", "_front"):
            self.__dict__.pop(key, None)
        return self

    def __repr__(self) -> str:
        objectives = ", ".join(f"{d} {m}" for m, d in self.objectives)
        try:
            df = self.trials
            counts = (f"{len(df)} complete trials "
                      f"({int(df['constraints_ok'].astype(bool).sum())} feasible)")
        except Exception as exc:  # a repr never raises
            counts = f"trials unreadable: {exc}"
        front = f", pareto {len(self.__dict__['pareto'])}" if "pareto" in self.__dict__ else ""
        return (f"<codesign.Run {self.name!r} at {str(self.path)!r}: {counts}{front}; "
                f"objectives: {objectives}>")


def load_run(path: str | os.PathLike[str]) -> Run:
    """Open a run directory for reading (notebooks, reports). ConfigError if ``path`` is not
    a run directory.

    Example:
        >>> import codesign
        >>> run = codesign.load_run("runs/quickstart")  # doctest: +SKIP
        >>> run.pareto[["trial", "value_tokens_per_joule"]]  # doctest: +SKIP
    """
    return Run(path)


def _empty_trials(exp: Experiment) -> pd.DataFrame:
    return parquet_log.schema(exp).empty_table().to_pandas()


def read_trials(run_dir: str | os.PathLike[str], exp: Experiment) -> pd.DataFrame:
    """The Parquet trial log of a run as a DataFrame: one row per trial number (the last
    written wins if a crash logged one twice), sorted by trial number. Files are read under
    the experiment's current schema: a column added since older files were written (a new
    metric) is null in their rows. One version of the log is read, even while ``codesign
    export`` replaces it (:func:`codesign.search.parquet_log.read_log`); a file that does not read
    is
    a ConfigError naming it and ``codesign export``."""
    table = parquet_log.read_log(run_dir, parquet_log.schema(exp))
    if table is None:
        return _empty_trials(exp)
    df = table.to_pandas()
    df = df.drop_duplicates("trial", keep="last").sort_values("trial", kind="stable")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- infeasibility


def _violations(exp: Experiment, df: pd.DataFrame) -> list[str]:
    """:func:`codesign.results.sensitivity.violations` of every row of ``df``, by column."""
    parts = []
    for c in exp.constraints:
        v = (pd.to_numeric(df[c.metric], errors="coerce").to_numpy(dtype=float)
             if c.metric in df.columns else np.full(len(df), np.nan))
        with np.errstate(invalid="ignore"):
            if c.max is not None:
                parts.append(np.where(~(v <= c.max), f"{c.metric} > {c.max:g}", ""))
            if c.min is not None:
                parts.append(np.where(~(v >= c.min), f"{c.metric} < {c.min:g}", ""))
    return [", ".join(p for p in row if p) for row in zip(*parts, strict=True)] if parts \
        else [""] * len(df)

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def infeasible_reasons(run: Run, by: str = "reason") -> pd.DataFrame:
    """Why trials are infeasible, most frequent first.

    A trial the model rejects (no mapping fits, the chip cannot be built) counts under the
    model's reason text, as given (``kind`` = ``"model"``); a trial the model accepts but a
    ``[constraints]`` bound rejects counts under the bounds it misses, e.g.
    ``"tdp_w > 1200"`` (``kind`` = ``"constraint"``). Each trial counts once.

    Args:
        run: The run.
        by: ``"reason"`` (exact text) or ``"category"`` (numbers in the model's text
            replaced by ``#``, so "7 > 6" and "8 > 4" stacks fall together; a constraint
            keeps its bound, e.g. ``"tdp_w > 1200"``).

    Returns:
        Columns ``reason``, ``category``, ``kind``, ``count`` (trials) and ``share`` (of the
        infeasible trials); with ``by="category"``, ``reason`` is one example text.
    """
    if by not in ("reason", "category"):
        raise ValueError(f"`by` must be 'reason' or 'category', but got (by={by!r})")
    df = run.trials
    bad = df[~df["constraints_ok"].astype(bool)]
    cols = ["reason", "category", "kind", "count", "share"]
    if bad.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "count" else
                                          "float64" if c == "share" else object)
                             for c in cols})
    model = ~bad["feasible"].astype(bool)
    missed = _violations(run.experiment, bad)
    reasons = [
        (str(r) or "(no reason given)") if m else v or "constraint violated"
        for m, r, v in zip(model, bad["reason"].fillna(""), missed, strict=True)
    ]
    table = pd.DataFrame({
        "reason": reasons,
        # a model reason's numbers vary per trial ("9 > 8"); a constraint's bound is the
        # experiment's own number, so it stays ("tdp_w > 1200", never "tdp_w > #")
        "category": [_NUMBER.sub("#", r) if m else r
                     for m, r in zip(model, reasons, strict=True)],
        "kind": np.where(model, "model", "constraint"),
    })
    other = "category" if by == "reason" else "reason"  # one example of the other column
    counts = (table.groupby([by, "kind"], sort=False)
              .agg(**{other: (other, "first"), "count": ("kind", "size")})
              .reset_index())
    counts["share"] = counts["count"] / len(bad)
    counts = counts.sort_values(["count", "reason"], ascending=[False, True], kind="stable")
    return counts[cols].reset_index(drop=True)
