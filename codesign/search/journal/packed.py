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
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from optuna.distributions import json_to_distribution
from optuna.storages import JournalStorage
from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult
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
    """Optuna's journal storage whose replay (:class:`_CompactReplay`) shares, between the
    trials created finished (a search's populations), the distributions of equal parameter
    spaces and each choice of a categorical parameter: one dict of distributions per space
    instead of one per trial (about 2 KB a trial, 200 MB at 100,000); also one empty
    intermediate-values dict for all of them and one pair of time objects per population
    (its trials record the same times). The trials read as Optuna's own. A long study's
    replay starts from its snapshot where one matches the journal
    (:mod:`codesign.search.journal.snapshot`; ``from_snapshot``: the lines it held, 0 if
    none was used)."""

    from_snapshot = 0

    def _sync_with_backend(self) -> None:
        replay = self._replay_result
        if type(replay) is JournalStorageReplayResult and replay.log_number_read == 0:
            from codesign.search.journal.snapshot import load_snapshot

            loaded = load_snapshot(self._backend, self._worker_id_prefix)
            self.from_snapshot = 0 if loaded is None else loaded.log_number_read
            replay = self._replay_result = loaded or _CompactReplay(self._worker_id_prefix)
        replay.apply_logs(self._backend.read_logs(replay.log_number_read))


_SKIPPED = ("distributions", "params", "datetime_start", "datetime_complete")
"""Keys of a trial's creation that :class:`_CompactReplay` applies itself."""


class _CompactReplay(JournalStorageReplayResult):
    """Optuna's replay, which decodes the distributions of a trial created finished once per
    parameter space instead of once per trial (eight JSON decodes a trial, 800,000 at
    100,000 trials: a third of a replay's time) and its times once per population, and
    gives those trials shared objects: the space's distributions, each categorical choice's
    own object, the empty intermediate values, the population's times. Anything else (running
    and waiting trials, whose spaces still grow; any log it does not expect) is replayed by
    Optuna's own code."""

    def __init__(self, worker_id_prefix: str) -> None:
        super().__init__(worker_id_prefix)
        self._spaces: dict[Any, dict[str, Any]] = {}
        self._times: dict[str, Any] = {}  # the last population's times, by their text
        self._no_values: dict[int, float] = {}

    def _apply_create_trial(self, log: dict[str, Any]) -> None:
        dists, params = log.get("distributions"), log.get("params")
        if (type(dists) is not dict or not dists or type(params) is not dict
                or log.get("state") in (None, TrialState.RUNNING.value,
                                        TrialState.WAITING.value)
                or log.get("intermediate_values")):
            super()._apply_create_trial(log)
            return
        key = tuple(dists.items())
        space = self._spaces.get(key)
        try:
            if space is None:
                space = {k: json_to_distribution(v) for k, v in dists.items()}
            # a choice comes back as the shared distribution's own object
            values = {k: space[k].to_external_repr(p) for k, p in params.items()}
            times = [self._time(log.get(k)) for k in ("datetime_start", "datetime_complete")]
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            super()._apply_create_trial(log)  # Optuna says what is wrong with it
            return
        self._spaces.setdefault(key, space)
        held = {k: log.pop(k) for k in _SKIPPED if k in log}
        log["datetime_start"] = None
        n = len(self._trials)
        try:
            super()._apply_create_trial(log)
        finally:
            del log["datetime_start"]
            log.update(held)
        t = self._trials.get(n)
        if t is not None and len(self._trials) == n + 1:
            t._distributions, t._params = space, values
            t._datetime_start, t.datetime_complete = times
            t.intermediate_values = self._no_values

    def _time(self, text: Any) -> Any:
        """A time of the journal as Optuna reads it (local, naive), one object per text (the
        texts of the last population are kept)."""
        if text is None:
            return None
        when = self._times.get(text)
        if when is None:
            if len(self._times) > 8:
                self._times.clear()
            when = self._times[text] = datetime.fromisoformat(text).astimezone().replace(
                tzinfo=None)
        return when
