"""The study as the search loop sees it, kept up to date at a cost per population that does not
grow with the number of trials.

:class:`TrialFeed` holds the study's trial list and refreshes it by reading only the trials
created since the last refresh and those unfinished then (an Optuna journal storage is read
from its replay, which Optuna already brings up to date incrementally; other storages through
``get_all_trials``, whose list is sliced). It counts the GA generation as trials finish,
resolves the NSGA-II/III parent population of a generation from the previous generation only
(the ids Optuna caches in the study's system attributes, or the elite of the previous
generation and its parents, cached there in turn) and commits a population of finished trials
in one journal write (one lock, one fsync) where the storage is a journal file.

Every answer is the one Optuna's own full scans give (``study.get_trials``,
``BaseGASampler.get_parent_population``): the same trials, in the same order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.storages import JournalStorage
from optuna.storages.journal._base import BaseJournalSnapshot
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial, TrialState

from codesign.search.journal.packed import PackedMetrics
from codesign.search.storage.trial_rows import METRICS_ATTR


class TrialFeed:
    """The trials of ``study`` by number (``trials``: the list ``study.get_trials`` returns,
    without a full read per refresh) and by trial id (``by_id``); ``on_finished`` callbacks
    receive each trial once, when it is first seen finished, in trial-number order."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.trials: list[FrozenTrial] = []
        self.by_id: dict[int, FrozenTrial] = {}
        """Trials by id: a journal replay's own dict of them (every study's trials, each as
        stored now; read only), else one kept here."""
        self._own_ids = True
        self.on_finished: list[Callable[[list[FrozenTrial]], None]] = []
        self._open: list[int] = []  # numbers of trials unfinished at the last refresh
        self._shared: dict[tuple[Any, ...], Any] = {}  # distributions, metrics layouts
        self._spaces: set[int] = set()  # ids of the shared distribution dicts (kept alive)
        sampler = study.sampler
        self.generations: GenerationCounter | None = None
        """The GA generation counter (None for other samplers)."""
        if isinstance(sampler, optuna.samplers.BaseGASampler):
            self.generations = GenerationCounter(sampler._get_generation_key(),
                                                 sampler.population_size or 0)
            self.on_finished.append(self.generations.add)

    def _read(self) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """(trials created since the last refresh, the open trials as they are now)."""
        storage = self.study._storage
        if isinstance(storage, JournalStorage):
            with storage._thread_lock:
                storage._sync_with_backend()
                replay = storage._replay_result
                self.by_id, self._own_ids = replay._trials, False  # no second dict
                ids = replay._study_id_to_trial_ids[self.study._study_id]
                new = [replay._trials[i] for i in ids[len(self.trials):]]
                now = [replay._trials[self.trials[n]._trial_id] for n in self._open]
            return new, now
        everything = storage.get_all_trials(self.study._study_id, deepcopy=False)
        return everything[len(self.trials):], [everything[n] for n in self._open]

    def refresh(self) -> list[FrozenTrial]:
        """Read the trials new since the last refresh and re-read the unfinished ones; returns
        (and passes to ``on_finished``) those first seen finished now, by number."""
        new, now = self._read()
        finished = []
        still_open = []
        own = self._own_ids
        for t in now:
            self.trials[t.number] = t
            if own:
                self.by_id[t._trial_id] = t
            (finished if t.state.is_finished() else still_open).append(t)
        for t in new:
            assert t.number == len(self.trials), "trial numbers are the list positions"
            if t.state.is_finished():
                self._compact(t)
            self.trials.append(t)
            if own:
                self.by_id[t._trial_id] = t
            (finished if t.state.is_finished() else still_open).append(t)
        self._open = [t.number for t in still_open]
        finished.sort(key=lambda t: t.number)
        if finished:
            for callback in self.on_finished:
                callback(finished)
        return finished

    def _compact(self, t: FrozenTrial) -> None:
        """Share what every trial repeats (attribute and parameter names, the distributions)
        between the stored trials, in place: the same contents, a third of the memory. Only
        finished trials, which nothing changes any more."""
        for attrs in (t._user_attrs, t._params, t._system_attrs):
            _intern_keys(attrs)
            for value in attrs.values():
                if isinstance(value, dict):
                    _intern_keys(value)
        metrics = t._user_attrs.get(METRICS_ATTR)
        if type(metrics) is dict:
            t._user_attrs[METRICS_ATTR] = PackedMetrics(metrics, self._shared)
        if id(t._distributions) in self._spaces:
            return  # shared already (a compact journal replay shares as it reads)
        try:
            key = tuple(t._distributions.items())
            t._distributions = self._shared.setdefault(key, t._distributions)
        except TypeError:  # an unhashable distribution: left as it is
            return
        self._spaces.add(id(t._distributions))
        for name, d in t._distributions.items():  # a choice: the distribution's own object
            if isinstance(d, CategoricalDistribution) and name in t._params:
                try:
                    t._params[name] = d.choices[d.to_internal_repr(t._params[name])]
                except ValueError:  # not one of the choices: left as it is
                    pass

    def waiting(self) -> int:
        """Trials WAITING at the last refresh (enqueued, not yet asked)."""
        return sum(1 for n in self._open if self.trials[n].state == TrialState.WAITING)

    def parent_population(self, sampler: optuna.samplers.BaseGASampler,
                          generation: int) -> list[FrozenTrial]:
        """``sampler.get_parent_population(study, generation)`` without reading every trial:
        from the ids cached in the study's system attributes, else (NSGA-II/III) the elite of
        the previous generation and its parents, cached there as Optuna does."""
        if generation == 0:
            return []
        study = self.study
        key = sampler._get_parent_cache_key_prefix() + str(generation)
        ids = study._storage.get_study_system_attrs(study._study_id).get(key)
        if ids is not None:
            parents = sorted((self.by_id[i] for i in set(ids) if i in self.by_id),
                             key=lambda t: t.number)
        elif type(sampler).select_parent in _STANDARD_SELECT:
            population = (sampler.get_population(study, generation - 1)
                          + self.parent_population(sampler, generation - 1))
            parents = sampler._elite_population_selection_strategy(study, population)
            study._storage.set_study_system_attr(study._study_id, key,
                                                 [t._trial_id for t in parents])
        else:
            parents = sampler.get_parent_population(study, generation)
        return parents


def _intern_keys(d: dict[str, Any]) -> None:
    """Replace the keys of ``d`` by interned equal strings (order and values kept)."""
    items = [(sys.intern(k) if type(k) is str else k, v) for k, v in d.items()]
    d.clear()
    d.update(items)


_STANDARD_SELECT = (optuna.samplers.NSGAIISampler.select_parent,
                    optuna.samplers.NSGAIIISampler.select_parent)
"""``select_parent`` of the samplers whose selection :meth:`TrialFeed.parent_population`
repeats (the elite of the previous generation's population and parents)."""


class GenerationCounter:
    """The generation a new GA population belongs to, by the GA samplers' rule (the newest
    generation among COMPLETE trials until it has ``population_size`` of them), counted as
    trials finish (:meth:`add`, a :attr:`TrialFeed.on_finished` callback)."""

    def __init__(self, key: str, population_size: int) -> None:
        self.key = key
        self.population_size = population_size
        self.newest: int | None = None
        self.count = 0

    def add(self, trials: list[FrozenTrial]) -> None:
        """Count the COMPLETE trials of ``trials``."""
        for t in trials:
            if t.state != TrialState.COMPLETE:
                continue
            g = t.system_attrs.get(self.key, -1)
            if self.newest is None or g > self.newest:
                self.newest, self.count = g, 1
            elif g == self.newest:
                self.count += 1

    def generation(self) -> int:
        """The generation of the next population."""
        if self.newest is None or self.newest < 0:
            return 0
        return self.newest if self.count < self.population_size else self.newest + 1


def _iso(when: Any) -> str | None:
    """A trial time as the journal records it (UTC, microseconds), None for None."""
    return when.astimezone(UTC).isoformat(timespec="microseconds") if when else None


def _encoded(dist: Any, encoded: dict[int, tuple[Any, str]]) -> str:
    """``distribution_to_json(dist)``, once per object (``encoded`` keeps the object alive,
    so its identity is not reused)."""
    hit = encoded.get(id(dist))
    if hit is None:
        hit = encoded[id(dist)] = (dist, distribution_to_json(dist))
    return hit[1]


def _create_log(study_id: int, template: FrozenTrial,
                times: tuple[str | None, str | None] | None = None,
                encoded: dict[int, tuple[Any, str]] | None = None) -> dict[str, Any]:
    """The journal record of ``JournalStorage.create_new_trial(study_id, template)``
    (``times``: its start and completion as recorded, instead of the template's;
    ``encoded``: distributions already encoded, by identity, filled as it goes: a
    population's trials share their distribution objects)."""
    log: dict[str, Any] = {"study_id": study_id, "state": template.state}
    if template.values is not None and len(template.values) > 1:
        log["value"] = None
        log["values"] = template.values
    else:
        log["value"] = template.value
        log["values"] = None
    start, complete = times or (_iso(template.datetime_start), _iso(template.datetime_complete))
    log["datetime_start"] = start
    if complete:
        log["datetime_complete"] = complete
    encoded = {} if encoded is None else encoded
    log["distributions"] = {k: _encoded(d, encoded) for k, d in template.distributions.items()}
    log["params"] = {k: template.distributions[k].to_internal_repr(p)
                     for k, p in template.params.items()}
    log["user_attrs"] = template.user_attrs
    log["system_attrs"] = template.system_attrs
    log["intermediate_values"] = template.intermediate_values
    return log


def create_trials(study: optuna.Study, templates: list[FrozenTrial]) -> list[FrozenTrial]:
    """Create a finished trial from each template, in order, and return them as stored.

    On a journal file this is one write of every record (one lock, one fsync) instead of one
    per trial; the records are those ``create_new_trial`` writes, except that every trial of
    the population records the same start (the earliest) and completion (the latest): they
    were evaluated together, and the replay then holds two time objects per population
    instead of two per trial. Other storages: one ``create_new_trial`` each."""
    storage = study._storage
    if not templates:
        return []
    if not isinstance(storage, JournalStorage) or isinstance(storage._backend,
                                                              BaseJournalSnapshot):
        return [storage.get_trial(storage.create_new_trial(study._study_id, template_trial=t))
                for t in templates]
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        starts = [t.datetime_start for t in templates if t.datetime_start]
        ends = [t.datetime_complete for t in templates if t.datetime_complete]
        times = (_iso(min(starts)) if starts else None, _iso(max(ends)) if ends else None)
        encoded: dict[int, tuple[Any, str]] = {}
        storage._backend.append_logs([
            {"op_code": JournalOperation.CREATE_TRIAL, "worker_id": worker,
             **_create_log(study._study_id, t, times if t.state.is_finished() else None,
                           encoded)}
            for t in templates])
        storage._sync_with_backend()
        last = storage._replay_result._last_created_trial_id_by_this_process
        trials = storage._replay_result._trials
        return [trials[i] for i in range(last - len(templates) + 1, last + 1)]
