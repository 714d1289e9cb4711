"""Designs already in a study: find them in O(1), never evaluate one twice, list each once.

A design is its searched parameters (the base of the space is the same for every trial), so
the key of a trial is the tuple of its parameter values in the space's order.
:class:`DesignIndex` maps each key to the first COMPLETE trial with it, built incrementally
from the study's trial list (only trials new or unfinished since the last update are read).
The search loop (:mod:`codesign.study`) asks the sampler again when a proposal repeats a
stored design and, where a trial already exists (enqueued or asked), completes it with the
stored result marked ``codesign:repeat_of``; :func:`unique_designs` keeps each design once on
a front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

REPEAT_ATTR = "codesign:repeat_of"
"""User attribute of a trial completed with the stored result of an earlier trial (its
number) instead of being evaluated again."""

MAX_REDRAWS = 32
"""How many times a proposal that repeats a stored design is drawn again before the stored
result is reused instead (a nearly exhausted discrete space)."""

Key = tuple[Any, ...]


class DesignIndex:
    """The COMPLETE designs of a study by parameter tuple, and how many proposals repeated
    one (``repeats``: proposals drawn again or completed from a stored result)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self.by_key: dict[Key, FrozenTrial] = {}
        self.repeats = 0
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
                self.by_key.setdefault(self.key(t.params), t)
                self._open.discard(i)
            elif t.state.is_finished():
                self._open.discard(i)
            else:
                self._open.add(i)

    def stored(self, params: dict[str, Any]) -> FrozenTrial | None:
        """The first COMPLETE trial of the same design, or None."""
        return self.by_key.get(self.key(params))


def unique_designs(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` with each design once (the lowest trial number kept), by trial number."""
    first: dict[Key, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        first.setdefault(tuple(sorted(t.params.items())), t)
    return sorted(first.values(), key=lambda t: t.number)
