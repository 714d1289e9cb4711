"""Run a study: the population loop, Pareto snapshots and summaries, export to Parquet.

:func:`run_search` asks a population of designs from the study's sampler, evaluates it in one
parallel kernel call, records it in the Optuna storage and appends it to the Parquet log.
Where a study lives (run directory, storage, sampler) is :mod:`codesign.search.storage.rundir`,
which holds
:func:`prepare_run`, :func:`load_run` and :class:`RunSpec` (importable from here too); workers
sharing one study and their crash recovery are :mod:`codesign.search.workers`.

Example:
    >>> from codesign.search.experiment import load_experiment
    >>> exp = load_experiment("experiments/quickstart.toml")  # doctest: +SKIP
    >>> run = prepare_run(exp, out=None, study=None, storage=None)  # doctest: +SKIP
    >>> summary = run_search(exp, run, n_trials=64, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.search import parquet_log
from codesign.search.baselines import enqueue_baselines, enqueue_warm_start
from codesign.search.evaluate import evaluate_designs
from codesign.search.experiment import Experiment
from codesign.search.feed import TrialFeed, create_trials
from codesign.search.front import (
    SNAPSHOT_EVERY,
    SNAPSHOT_ROWS_EVERY,
    ParetoFront,
    pareto_rows,
    snapshot_pareto,
)
from codesign.search.journal.packed import CompactJournalStorage
from codesign.search.journal.snapshot import MIN_TRIALS as SNAPSHOT_TRIALS
from codesign.search.journal.snapshot import write_snapshot_elsewhere
from codesign.search.precompile import PRECOMPILE_TRIALS, compile_elsewhere
from codesign.search.recovery import _rdb, recover_stale_trials, sync_parquet
from codesign.search.repeats import (
    MAX_REDRAWS,
    REDRAWS_ATTR,
    DesignIndex,
    repeat_template,
    tell_repeat,
)
from codesign.search.repeats import repeats_since as repeats_since
from codesign.search.repeats import trials_so_far as trials_so_far
from codesign.search.space import (
    base_design,
    cluster_extra,
    design_from_params,
    distributions,
)
from codesign.search.storage.log_state import compact_along
from codesign.search.storage.log_state import finish as finish_log
from codesign.search.storage.rundir import (
    METRICS_ATTR,
    WRITER_KEY,
    RunSpec,
    _writer_tag,
    constraint_values,
    objective_values,
    open_storage,
    open_study,
    row_from_trial,
    write_run_files,
)
from codesign.search.storage.rundir import load_run as load_run
from codesign.search.storage.rundir import prepare_run as prepare_run
from codesign.search.storage.trial_rows import CONSTRAINTS_KEY, name_study
from codesign.search.workers import OWNER_ATTR, hold_worker_lock, owner_tag, preflight_journal


@dataclass(frozen=True)
class SearchSummary:
    """What one call of :func:`run_search` did (counts are trials, times seconds)."""

    run_dir: str
    study_name: str
    trials_run: int
    trials_total_complete: int
    feasible: int
    pareto_size: int
    seconds: float
    trials_path: str
    pareto_path: str
    repeats: int = 0
    """Proposals of this call that repeated a design already in the study (drawn again, or
    completed with the stored result instead of being evaluated)."""


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in metrics.items()}


def _tell(exp: Experiment, study: optuna.Study, trial: optuna.Trial,
          metrics: dict[str, Any], writer: str) -> FrozenTrial:
    """Record one evaluated design: COMPLETE with constraints, or FAIL if non-finite."""
    values = objective_values(exp, metrics)
    trial.set_user_attr(METRICS_ATTR, {**_json_safe(metrics), WRITER_KEY: writer})
    if not all(_finite(v) for v in values):
        trial.set_user_attr("fail_reason", f"non-finite objective values {values}")
        return study.tell(trial, state=TrialState.FAIL)
    study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY,
                                         list(constraint_values(exp, metrics).values()))
    return study.tell(trial, values)


def propose_population(study: optuna.Study, dists: dict[str, Any], k: int,
                       index: DesignIndex | None = None,
                       taken: set[Any] | None = None, feed: TrialFeed | None = None,
                       ) -> tuple[list[dict[str, Any]], int | None]:
    """``k`` parameter sets from the study's sampler without touching the storage.

    GA samplers (NSGA-II/III): the parent population of the new generation is read once and
    each child comes from the sampler's crossover and mutation; other samplers draw through
    ``sample_relative`` / ``sample_independent`` on a stand-in trial (samplers that write to
    the trial they sample, TPE and GP, go through ``study.ask`` in :func:`run_search`).
    With ``index``, a proposal that repeats a stored design or one already in this population
    (``taken``: keys of the population so far, updated) is drawn again, up to
    :data:`MAX_REDRAWS` times, and counted in ``index.repeats``. Returns the proposals and the
    GA generation (None for other samplers), which the trial templates record.
    ``feed``: the loop's :class:`~codesign.search.feed.TrialFeed`, so that the study is read
    only where it changed since the last population (without, a new one reads it whole)."""
    sampler = study.sampler
    if k <= 0:
        return [], None
    # Optuna caches the trial list per thread until the next ask; the samplers read it
    # (use_cache=True): this population must see every trial committed so far, so the cache
    # is the feed's list, brought up to date
    feed = TrialFeed(study) if feed is None else feed
    feed.refresh()
    study._thread_local.cached_all_trials = feed.trials
    ga = feed.generations is not None  # a GA sampler (NSGA-II/III)
    gen = feed.generations.generation() if feed.generations is not None else None
    system = {sampler._get_generation_key(): gen} if ga else {}
    stand_in = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={},
        system_attrs=system, intermediate_values={}, trial_id=-1)
    relative = {n: d for n, d in dists.items() if not d.single()}
    parents: list[FrozenTrial] = []
    strategy = getattr(sampler, "_child_generation_strategy", None)
    if ga and gen:
        parents = feed.parent_population(sampler, gen)
    if index is not None:
        index.update(feed.trials)
    taken = set() if taken is None else taken

    def draw() -> dict[str, Any]:
        if ga:
            params = strategy(study, relative, parents) if parents and strategy else {}
        else:
            space = {n: d for n, d in sampler.infer_relative_search_space(study, stand_in).items()
                     if n in dists}
            params = sampler.sample_relative(study, stand_in, space) if space else {}
        for name, dist in dists.items():
            if name not in params:
                params[name] = sampler.sample_independent(study, stand_in, name, dist)
        return {n: params[n] for n in dists}

    proposals = []
    if index is not None:
        index.redraws = []
    for _ in range(k):
        params = draw()
        if index is not None:
            n = 0
            while n < MAX_REDRAWS and (index.key(params) in taken
                                       or index.key(params) in index):
                n += 1
                params = draw()
            index.repeats += n
            index.redraws.append(n)
            taken.add(index.key(params))
        proposals.append(params)
    return proposals, gen


def trial_template(exp: Experiment, study: optuna.Study, dists: dict[str, Any],
                   params: dict[str, Any], metrics: dict[str, Any], writer: str,
                   gen: int | None, redraws: int = 0) -> FrozenTrial:
    """The finished trial that records one evaluated proposal (stored by
    :func:`~codesign.search.feed.create_trials`, a population in one write): COMPLETE with
    its constraints (and GA generation), or FAIL if non-finite (``redraws``: how many earlier
    draws of it repeated a stored design)."""
    values = objective_values(exp, metrics)
    system: dict[str, Any] = {}
    if gen is not None:
        system[study.sampler._get_generation_key()] = gen
    user: dict[str, Any] = {METRICS_ATTR: {**_json_safe(metrics), WRITER_KEY: writer}}
    if redraws:
        user[REDRAWS_ATTR] = redraws
    complete = all(_finite(v) for v in values)
    if complete:
        system[CONSTRAINTS_KEY] = list(constraint_values(exp, metrics).values())
    else:
        user["fail_reason"] = f"non-finite objective values {values}"
    # optuna.trial.create_trial's trial without its checks (they convert and test every
    # param of every trial): the params are the sampler's draws from ``dists``, one per
    # distribution, and the values finite (tests/test_loop_incremental.py compares the two)
    now = datetime.now()
    return FrozenTrial(number=-1, trial_id=-1, value=None, values=values if complete else None,
                       state=TrialState.COMPLETE if complete else TrialState.FAIL,
                       datetime_start=now, datetime_complete=now, params=params,
                       distributions=dists, user_attrs=user, system_attrs=system,
                       intermediate_values={})


def traffic_kw(exp: Experiment) -> dict[str, Any]:
    """The experiment's ``[traffic]`` and percentile metrics (``metric@pNN`` objectives or
    constraints, with ``[uncertainty] draws``) as :func:`evaluate_designs`' keywords (none
    without)."""
    kw: dict[str, Any] = ({"traffic": exp.traffic, "pools": exp.pools}
                          if exp.traffic is not None else {})
    if exp.percentile_metrics():
        kw.update(percentiles=exp.percentile_metrics(), draws=exp.uncertainty_draws)
    return kw


def _asks_trials(study: optuna.Study) -> bool:
    """Samplers that write to the trial they sample (TPE's constant liar, GP) need a real
    trial: they go through ``study.ask``; GA and random samplers draw in memory."""
    return not isinstance(study.sampler, optuna.samplers.BaseGASampler
                          | optuna.samplers.RandomSampler)


def run_search(
    exp: Experiment,
    run: RunSpec,
    n_trials: int,
    progress: bool = True,
    worker: int = 0,
    timings: list[tuple[int, float]] | None = None,
    evaluate: Callable[..., list[dict[str, Any]]] | None = None,
    warm_start: Sequence[tuple[dict[str, Any], str]] = (),
) -> SearchSummary:
    """Run ``n_trials`` more trials of the study in ``run``, a population at a time.

    ``timings``, if given, receives ``(trials done, perf_counter seconds)`` after each
    population (the benchmark measures per-trial cost along the run with it); ``evaluate``
    replaces :func:`~codesign.search.evaluate.evaluate_designs` (same arguments; the
    benchmark's trivial objective); ``warm_start``: designs of another study queued first,
    once per study (:func:`~codesign.search.warm_start.warm_start_params`).

    Each population is asked from the sampler, evaluated in one parallel kernel call and
    told; the Parquet log gets a file every :data:`LOG_ROWS` rows and at the end, with a
    Pareto snapshot.
    """
    t0 = time.perf_counter()
    if n_trials >= PRECOMPILE_TRIALS and evaluate is None:  # the compiler's memory elsewhere
        compile_elsewhere(str(exp.path))
    system_arrow_pool()
    write_run_files(exp, run)
    hold_worker_lock(run, worker)
    preflight_journal(run)
    study = open_study(exp, run, worker)
    name_study(exp, study)
    recover_stale_trials(run, study)
    enqueue_baselines(exp, run, study)
    if warm_start:
        enqueue_warm_start(run, study, list(warm_start))
    sync_parquet(exp, run, study)
    owner = owner_tag()
    dists = distributions(exp.space)
    base = base_design(exp)
    extra = cluster_extra(exp)
    writer = _writer_tag(worker)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_trials, desc=f"{run.study_name}", unit="trial", file=sys.stderr)
    done = 0
    next_snapshot = SNAPSHOT_EVERY
    next_compact = COMPACT_EVERY
    index = DesignIndex(dists)
    asks = _asks_trials(study)
    # the study as this loop sees it, read incrementally; the Pareto front kept from it
    feed = TrialFeed(study)
    front = ParetoFront(study.directions)
    feed.on_finished.append(front.add)
    pending: list[dict[str, Any]] = []  # finished trials' rows not yet in the Parquet log
    log_rows = _log_rows()

    def flush() -> None:
        rows, pending[:] = list(pending), []
        if rows:
            parquet_log.write_trials(run.run_dir, exp, rows, writer)

    try:
        while done < n_trials:
            k = min(exp.population, n_trials - done)
            # enqueued trials (baselines, re-runs of a dead worker's trials) and the proposals
            # of samplers that write to their trial go through ask/tell; fresh proposals of
            # the others are drawn in memory and committed finished (one write)
            feed.refresh()
            waiting = feed.waiting()
            trials = []
            for _ in range(k if asks else min(k, waiting)):
                trials.append(study.ask(dists))
                trials[-1].set_user_attr(OWNER_ATTR, owner)
                rdb = _rdb(study)
                if rdb is not None:  # alive, for workers on other machines
                    rdb.record_heartbeat(trials[-1]._trial_id)
            feed.refresh()
            index.update(feed.trials)
            # an asked trial whose design is stored (or earlier in this population) is not
            # evaluated: it takes the stored result (or its twin's, once evaluated)
            taken: dict[Any, int] = {}
            plan: list[FrozenTrial | int | None] = []
            for t in trials:
                key = index.key(t.params)
                prior = index.get(key)
                plan.append(prior if prior is not None else taken.get(key))
                index.repeats += plan[-1] is not None
                taken.setdefault(key, len(plan) - 1)
            proposals, gen = propose_population(study, dists, k - len(trials), index,
                                                set(taken), feed)
            told = 0
            rows = []
            try:
                asked = [t.params for t, p in zip(trials, plan, strict=True) if p is None]
                # a proposal still repeating a stored design after its redraws (a space too
                # small to draw a new one) takes the stored result too
                stored = [index.stored(p) for p in proposals]
                params = asked + [p for p, s in zip(proposals, stored, strict=True) if not s]
                designs = [design_from_params(base, p) for p in params]
                metrics = (evaluate or evaluate_designs)(designs, exp.job, extra, exp.prices,
                                                         **traffic_kw(exp))
                fresh = iter(metrics)
                finished: list[FrozenTrial] = []
                for t, p in zip(trials, plan, strict=True):
                    if p is None:
                        frozen = _tell(exp, study, t, next(fresh), writer)
                    else:
                        prior = p if isinstance(p, FrozenTrial) else finished[p]
                        frozen = (tell_repeat(study, t, prior, writer)
                                  if prior.state == TrialState.COMPLETE
                                  else study.tell(t, state=TrialState.FAIL))
                    finished.append(frozen)
                    told += 1
                    if frozen.state == TrialState.COMPLETE:
                        rows.append(row_from_trial(exp, frozen, writer))
                # every proposal of the population in one storage write (journal: one fsync)
                templates = [
                    repeat_template(study, dists, p, prior, writer, gen, n) if prior
                    else trial_template(exp, study, dists, p, next(fresh), writer, gen, n)
                    for p, prior, n in zip(proposals, stored, index.redraws, strict=True)]
                for frozen in create_trials(study, templates):
                    if frozen.state == TrialState.COMPLETE:
                        rows.append(row_from_trial(exp, frozen, writer))
            finally:
                for t in trials[told:]:  # interrupted: never leave a trial RUNNING
                    study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
                pending += rows
                if len(pending) >= log_rows:
                    flush()
            done += k
            if done >= next_compact:
                compact_along(exp, run)
                next_compact = done + COMPACT_EVERY
            if timings is not None:
                timings.append((done, time.perf_counter()))
            if done >= next_snapshot and done < n_trials:
                feed.refresh()
                snapshot_pareto(exp, run, study, writer, front)
                # every SNAPSHOT_EVERY trials, or less often once the front is large: a
                # snapshot rewrites the whole front, at most half a row per trial
                steps = max(1, SNAPSHOT_ROWS_EVERY * len(front.trials()) // SNAPSHOT_EVERY)
                next_snapshot = (done // SNAPSHOT_EVERY + steps) * SNAPSHOT_EVERY
            if bar is not None:
                bar.update(k)
    finally:
        flush()  # at the end, or interrupted: every row told so far
        if bar is not None:
            bar.close()
    feed.refresh()
    return finalize(exp, run, done, time.perf_counter() - t0, writer, study, index.repeats,
                    front)


def system_arrow_pool() -> None:
    """Arrow allocates from the C library's malloc in a searching process, not from its
    default mimalloc pool, which keeps the pages of every Parquet write and compaction: a
    quickstart search peaks at 363 MB instead of 396 MB at 20,000 trials and 580 MB instead of
    620 MB at 100,000 (same trials/s)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


LOG_ROWS = 256
"""Finished trials' rows a search gathers before appending them to the Parquet log as one file
(and the rest at its end, or when interrupted): a file of the quickstart's 32-row population
took 6.3 ms to build and write, one of 256 rows 13.7 ms (130 columns; measured one after the
other). The storage is the truth: rows a killed search had not written yet are
logged at the next start (:func:`~codesign.search.recovery.sync_parquet`)."""


def _log_rows() -> int:
    """:data:`LOG_ROWS`, or ``CODESIGN_TEST_LOG_ROWS`` where a test sets it (1: a file for
    every population, as tests of logs made of many small files need)."""
    value = os.environ.get("CODESIGN_TEST_LOG_ROWS", "")
    return int(value) if value.isdigit() and int(value) > 0 else LOG_ROWS


COMPACT_EVERY = 8192
"""Trials of a search between two compactions of its Parquet log
(:func:`~codesign.search.storage.log_state.compact_along`)."""


def finalize(exp: Experiment, run: RunSpec, done: int, seconds: float, writer: str,
             study: optuna.Study | None = None, repeats: int = 0,
             front: ParetoFront | None = None) -> SearchSummary:
    """Write a Pareto snapshot of the study as it stands and summarise the run (``repeats``:
    proposals of the run that repeated a stored design; ``front``: the study's front kept up
    to date by the loop, else the study is read)."""
    if study is None:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    if front is None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        n_complete = len(complete)
        feasible = sum(1 for t in complete if all(v <= 0 for v in t.constraints.values()))
    else:
        n_complete, feasible = front.n_complete, front.n_feasible
    rows = pareto_rows(exp, study, front)
    pareto_path = run.run_dir / "pareto"
    if rows:
        pareto_path = parquet_log.write_pareto(run.run_dir, exp, rows, n_complete, writer)
    # compact the Parquet log, record its state (with the front just computed)
    finish_log(exp, run, study, writer, (n_complete, rows))
    if n_complete >= SNAPSHOT_TRIALS and isinstance(study._storage, CompactJournalStorage):
        write_snapshot_elsewhere(study._storage)  # the next opening starts from here
    return SearchSummary(
        run_dir=str(run.run_dir),
        study_name=run.study_name,
        trials_run=done,
        trials_total_complete=n_complete,
        feasible=feasible,
        pareto_size=len(rows),
        seconds=seconds,
        trials_path=str(run.run_dir / "trials"),
        pareto_path=str(pareto_path),
        repeats=repeats,
    )


def summary_dict(summary: SearchSummary) -> dict[str, Any]:
    """Plain dict of a summary (for JSON output)."""
    return asdict(summary)


