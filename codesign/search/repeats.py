"""Designs already in a study: find them in O(1), never evaluate one twice, list each once.

A design is its searched parameters (the base of the space is the same for every trial), so
the key of a trial is the tuple of its parameter values in the space's order.
:class:`DesignIndex` maps each key to the first COMPLETE trial with it, built incrementally
from the study's trial list (only trials new or unfinished since the last update are read).
The search loop (:mod:`codesign.search.study`) asks the sampler again when a proposal repeats a
stored design and, where a trial already exists (enqueued or asked), completes it with the
stored result marked ``codesign:repeat_of``; :func:`unique_designs` keeps each design once on
a front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState

from codesign.search.storage.rundir import METRICS_ATTR, WRITER_KEY, RunSpec, open_storage

REPEAT_ATTR = "codesign:repeat_of"
"""User attribute of a trial completed with the stored result of an earlier trial (its
number) instead of being evaluated again."""

REDRAWS_ATTR = "codesign:redraws"
"""User attribute of a trial whose proposal was drawn again this many times because the
earlier draws repeated a design (absent when none did)."""

MAX_REDRAWS = 32
"""How many times a proposal that repeats a stored design is drawn again before the stored
result is reused instead (a nearly exhausted discrete space)."""

Key = tuple[Any, ...]


class DesignIndex:
    """The COMPLETE designs of a study by parameter tuple, and how many proposals repeated
    one (``repeats``: proposals drawn again or completed from a stored result)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        # the first COMPLETE trial of each design, by the hash of its key (a trial, or the
        # trials of keys whose hashes collide): no key tuple held, 120 bytes a trial less
        self._by_hash: dict[int, FrozenTrial | list[FrozenTrial]] = {}
        self.repeats = 0
        self.redraws: list[int] = []  # per proposal of the last population drawn
        self._scanned = 0
        self._open: set[int] = set()

    def key(self, params: dict[str, Any]) -> Key:
        """The design of a parameter set (None for a parameter it lacks)."""
        return tuple(params.get(n) for n in self.names)

    def update(self, trials: Sequence[FrozenTrial]) -> None:
        """Index the trials of ``trials`` (the study's list, by number) that are new or were
        unfinished at the last update; each trial is read about once."""
        todo = [i for i in sorted(self._open) if i < len(trials)]
        todo += range(self._scanned, len(trials))
        self._scanned = max(self._scanned, len(trials))
        for i in todo:
            t = trials[i]
            if t.state == TrialState.COMPLETE:
                self._add(self.key(t.params), t)
                self._open.discard(i)
            elif t.state.is_finished():
                self._open.discard(i)
            else:
                self._open.add(i)

    def _add(self, key: Key, t: FrozenTrial) -> None:
        h = hash(key)
        held = self._by_hash.get(h)
        if held is None:
            self._by_hash[h] = t
        elif self.get(key) is None:  # a design new under a hash already held
            self._by_hash[h] = [*held, t] if isinstance(held, list) else [held, t]

    def get(self, key: Key) -> FrozenTrial | None:
        """The first COMPLETE trial of the design ``key``, or None."""
        held = self._by_hash.get(hash(key))
        if held is None:
            return None
        for t in held if isinstance(held, list) else (held,):
            if self.key(t.params) == key:
                return t
        return None

    def __contains__(self, key: Key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(len(v) if isinstance(v, list) else 1 for v in self._by_hash.values())

    def stored(self, params: dict[str, Any]) -> FrozenTrial | None:
        """The first COMPLETE trial of the same design, or None."""
        return self.get(self.key(params))


def unique_designs(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` with each design once (the lowest trial number kept), by trial number."""
    first: dict[Key, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        first.setdefault(tuple(sorted(t.params.items())), t)
    return sorted(first.values(), key=lambda t: t.number)


def repeats_of(trials: Iterable[FrozenTrial]) -> int:
    """Proposals of ``trials`` that repeated a stored design: draws replaced
    (``codesign:redraws``) and trials given a stored result (``codesign:repeat_of``)."""
    return sum(int(t.user_attrs.get(REDRAWS_ATTR, 0)) + (REPEAT_ATTR in t.user_attrs)
               for t in trials)


def repeat_template(study: optuna.Study, dists: dict[str, Any], params: dict[str, Any],
                    prior: FrozenTrial, writer: str, gen: int | None,
                    redraws: int = 0) -> FrozenTrial:
    """A proposal of a design already stored in ``prior`` as a finished trial (not yet
    stored): ``prior``'s values, constraints and metrics, marked ``codesign:repeat_of``."""
    system: dict[str, Any] = {k: v for k, v in prior.system_attrs.items()
                              if k.startswith(_CONSTRAINTS_KEY)}
    if gen is not None:
        system[study.sampler._get_generation_key()] = gen
    user = {METRICS_ATTR: {**prior.user_attrs.get(METRICS_ATTR, {}), WRITER_KEY: writer},
            REPEAT_ATTR: prior.number}
    if redraws:
        user[REDRAWS_ATTR] = redraws
    return optuna.trial.create_trial(params=params, distributions=dists, values=prior.values,
                                     user_attrs=user, system_attrs=system)


def tell_repeat(study: optuna.Study, trial: optuna.Trial, prior: FrozenTrial,
                writer: str) -> FrozenTrial:
    """Finish an asked trial whose design is stored in ``prior`` with ``prior``'s result."""
    trial.set_user_attr(METRICS_ATTR, {**prior.user_attrs.get(METRICS_ATTR, {}),
                                       WRITER_KEY: writer})
    trial.set_user_attr(REPEAT_ATTR, prior.number)
    for key, value in prior.system_attrs.items():
        if key.startswith(_CONSTRAINTS_KEY):
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
    return study.tell(trial, prior.values)


def trials_so_far(run: RunSpec) -> int:
    """How many trials the run's study holds (0 before it exists); creates nothing."""
    from codesign.search.journal.check import JOURNAL_FILE

    if run.storage_url is None and not (run.run_dir / JOURNAL_FILE).exists():
        return 0
    try:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False))


def repeats_since(run: RunSpec, first: int) -> int:
    """Proposals that repeated a stored design among the trials numbered ``first`` and on
    (every worker's, from what each trial records)."""
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    return repeats_of(t for t in study.get_trials(deepcopy=False) if t.number >= first)
