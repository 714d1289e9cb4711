"""Finished trials' metrics held in little memory, from the moment their journal line is read.

A trial's metrics (``codesign:metrics``, some 60 names) decode from the journal as a dict of
about 7 KB. :func:`pack_log` replaces them, in a decoded journal operation before Optuna's
replay applies it, by a :class:`JournalMetrics` (about 100 bytes: where the line is; read
again on access) when the line's place is known, else by a :class:`PackedMetrics` (about
700 bytes: the values, the names shared). Neither a running search nor a resume, ``pareto``
or ``report`` ever holds the dicts of all trials: the replay of 100,000 trials holds 10 MB of
metrics instead of 700 MB. :func:`keep_in_memory` turns a trial's metrics back into a
:class:`PackedMetrics` where they are read often (the Pareto front's trials).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

from codesign.search.storage.trial_rows import METRICS_ATTR


class JournalFile:
    """A journal file open for reading lines by place (``os.pread``: no shared file
    position, so safe across threads and forks). The descriptor is the file as it was when
    opened: a journal replaced by a rename (``codesign doctor``) is still read as it was."""

    __slots__ = ("__weakref__", "_fd", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return os.pread(self._fd, length, offset)

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


@functools.lru_cache(maxsize=256)
def _line_metrics(source: JournalFile, offset: int, length: int) -> dict[str, Any]:
    """The metrics of the journal line at ``offset`` (decoded once while recently used:
    a reader asks for the names of one trial after another)."""
    log = json.loads(source.read(offset, length))
    attrs = log.get("user_attrs") if "user_attrs" in log else log.get("user_attr")
    metrics = attrs[METRICS_ATTR] if type(attrs) is dict else None
    if type(metrics) is not dict:
        raise RuntimeError(f"{source.path}: the journal line at byte {offset} no longer holds "
                           "a trial's metrics (the file changed under this process)")
    return metrics


class JournalMetrics(Mapping[str, Any]):
    """A finished trial's metrics left in the journal: where its line is, read and decoded
    when asked for (recent ones cached). Reads as the dict it stands for, as
    :class:`PackedMetrics` does; a copy, deep copy or pickle of it is that plain dict."""

    __slots__ = ("_length", "_offset", "_source")

    def __init__(self, source: JournalFile, offset: int, length: int) -> None:
        self._source = source
        self._offset = offset
        self._length = length

    def _dict(self) -> dict[str, Any]:
        return _line_metrics(self._source, self._offset, self._length)

    def __getitem__(self, name: str) -> Any:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._dict() == dict(other.items())

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return dict(self._dict())

    def __copy__(self) -> dict[str, Any]:
        return dict(self._dict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self._dict()),))

    __hash__ = None  # type: ignore[assignment]


def keep_in_memory(trial: Any, shared: dict[Any, Any]) -> None:
    """Hold ``trial``'s metrics in memory (a :class:`PackedMetrics`) if they are left in the
    journal: for trials whose metrics are read again and again (the front's)."""
    attrs = trial._user_attrs
    metrics = attrs.get(METRICS_ATTR)
    if isinstance(metrics, JournalMetrics):
        attrs[METRICS_ATTR] = PackedMetrics(metrics._dict(), shared)


def pack_log(log: dict[str, Any], shared: dict[Any, Any],
             where: tuple[JournalFile, int, int] | None = None) -> dict[str, Any]:
    """``log`` (a decoded journal operation) with the metrics it records packed, in place:
    a trial created with them (``user_attrs``) or given them (``user_attr``). ``where``:
    the journal and the place of the line (offset, length in bytes), to leave them there
    (:class:`JournalMetrics`); else a :class:`PackedMetrics`, with ``shared`` the layouts of
    earlier packs, reused."""
    op = log.get("op_code")
    if op == JournalOperation.CREATE_TRIAL:
        attrs = log.get("user_attrs")
    elif op == JournalOperation.SET_TRIAL_USER_ATTR:
        attrs = log.get("user_attr")
    else:
        return log
    if type(attrs) is dict:
        metrics = attrs.get(METRICS_ATTR)
        if type(metrics) is dict:
            attrs[METRICS_ATTR] = (PackedMetrics(metrics, shared) if where is None
                                   else JournalMetrics(*where))
    return log


class PackedMetrics(Mapping[str, Any]):
    """A finished trial's metrics, read-only, in a fraction of a dict's memory: the names
    (and where each value sits) shared by every trial with the same ones, the float values
    in one ``array('d')``, the others (ints, bools, strings, None) in a tuple. Reads as the
    dict it replaces (``[]``, ``get``, ``dict(m)``, ``{**m}``, iteration in the same order,
    equality with a dict); a copy, deep copy or pickle of it is that plain dict."""

    __slots__ = ("_floats", "_layout", "_others")

    def __init__(self, metrics: dict[str, Any], shared: dict[Any, Any]) -> None:
        kinds = tuple(type(v) is float for v in metrics.values())
        key = ("packed-metrics", tuple(metrics), kinds)
        layout = shared.get(key)
        if layout is None:
            where, n_float, n_other = {}, 0, 0
            for name, is_float in zip(key[1], kinds, strict=True):
                where[name] = (True, n_float) if is_float else (False, n_other)
                n_float, n_other = n_float + is_float, n_other + (not is_float)
            layout = shared.setdefault(key, (key[1], where))
        self._layout = layout
        self._floats = array("d", (v for v in metrics.values() if type(v) is float))
        # strings repeat across trials (the mapping, the writer, a reason): one copy each
        self._others = tuple(sys.intern(v) if type(v) is str else v
                             for v in metrics.values() if type(v) is not float)

    def __getitem__(self, name: str) -> Any:
        is_float, i = self._layout[1][name]
        return self._floats[i] if is_float else self._others[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout[0])

    def __len__(self) -> int:
        return len(self._layout[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def _dict(self) -> dict[str, Any]:
        return {name: self[name] for name in self._layout[0]}

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return self._dict()

    def __copy__(self) -> dict[str, Any]:
        return self._dict()

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._dict(),))

    __hash__ = None  # type: ignore[assignment]


class CompactJournalStorage(JournalStorage):
    """Optuna's journal storage whose replay shares, between the trials created finished
    (a search's populations), the distributions of equal parameter spaces and each choice
    of a categorical parameter: one dict of distributions per space instead of one per trial
    (about 2 KB a trial, 200 MB at 100,000); also one empty intermediate-values dict for all
    of them and one pair of time objects per population (its trials record the same times).
    The trials read as Optuna's own."""

    def _sync_with_backend(self) -> None:
        replay = self._replay_result
        replay.apply_logs(self._sharing(replay, self._backend.read_logs(replay.log_number_read)))

    def _sharing(self, replay: Any, logs: Iterable[dict[str, Any]]
                 ) -> Iterator[dict[str, Any]]:
        """``logs``, each trial created finished made to share its distributions once the
        replay has applied its log (when the next one is asked for)."""
        shared = self.__dict__.setdefault("_shared_spaces", {})
        pending: tuple[Any, ...] | None = None
        for log in logs:
            yield log
            if pending is not None:
                _share(replay, *pending, shared)
                pending = None
            if (log.get("op_code") == JournalOperation.CREATE_TRIAL
                    and log.get("state") not in (None, TrialState.RUNNING.value,
                                                 TrialState.WAITING.value)
                    and type(log.get("distributions")) is dict):
                pending = (len(replay._trials) - 1, log["distributions"])
        if pending is not None:
            _share(replay, *pending, shared)


_NO_VALUES = ("intermediate values", "none")
"""Key of ``shared``: the empty intermediate values every finished trial created so shares."""
_TIMES = ("times", "last")
"""Key of ``shared``: the start and completion times of the last trial shared."""


def _share(replay: Any, trial_id: int, dists_json: dict[str, str],
           shared: dict[Any, Any]) -> None:
    """Trial ``trial_id`` of ``replay`` (created finished from ``dists_json``) with the
    distributions of the first trial of the same space and the choices' own objects."""
    t = replay._trials.get(trial_id)
    if t is None or t._distributions.keys() != dists_json.keys():
        return  # the log was not applied (an unknown study): nothing to share
    key = tuple(dists_json.items())
    t._distributions = shared.setdefault(key, t._distributions)
    if not t.intermediate_values:  # a finished trial: nothing reports to it any more
        t.intermediate_values = shared.setdefault(_NO_VALUES, t.intermediate_values)
    # a population's trials share their times (feed.create_trials): one object each
    last = shared.get(_TIMES)
    times = (t._datetime_start, t.datetime_complete)
    if last is not None and times == last:
        t._datetime_start, t.datetime_complete = last
    else:
        shared[_TIMES] = times
    for name, d in t._distributions.items():
        if isinstance(d, CategoricalDistribution) and name in t._params:
            try:
                t._params[name] = d.choices[d.to_internal_repr(t._params[name])]
            except ValueError:  # not one of the choices: left as it is
                pass
