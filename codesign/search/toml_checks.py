"""Strict TOML reading for :mod:`codesign.search.experiment`: the file reader and the typed getters.

:func:`_read` turns a UTF-8 TOML file into a :class:`_Table`, whose getters check each value's
type, bounds or choices and reject unknown keys (with a "did you mean" hint); every problem is
a :class:`~codesign.errors.ConfigError` naming the file, the key path, what was expected and
what was got. Also the sha256 of a JSON-able object (the fingerprints of the config types).
Internal to the config readers: :mod:`codesign.search.experiment` builds the public types on top.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.search.design import SPACE_PARAMETERS


class _Plain(str):
    """Text shown as is (unquoted) in the "got" part of an error."""

    def __repr__(self) -> str:
        return str(self)


_MISSING = _Plain("nothing")
_REQUIRED = object()
_NOUNS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "list": "an array", "table": "a table"}


def _one_of(options: Iterable[Any]) -> str:
    return "one of: " + ", ".join(str(o) for o in options)


def _suggest(got: object, options: Iterable[Any]) -> str:
    if not isinstance(got, str):
        return ""
    close = difflib.get_close_matches(got, [str(o) for o in options], n=3)
    close.sort(key=lambda name: sorted(name) != sorted(got))  # a swap of letters wins ties
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(kind: str, low: float | None, high: float | None, low_open: bool) -> str:
    text = _NOUNS[kind]
    if low is not None and high is not None:
        return f"{text} in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"{text} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{text} <= {high}"
    return text


def _check(file: str, key: str, value: Any, kind: str, *, low: float | None = None,
           high: float | None = None, low_open: bool = False,
           choices: Iterable[Any] | None = None, expected: str | None = None) -> Any:
    """Check one value of ``kind`` ("int", "float", "str", "bool", "list", "table") against
    its bounds or choices; return it (ints as int, numbers as float) or raise ConfigError."""
    if expected is None:
        expected = _one_of(choices) if choices is not None else _describe(kind, low, high, low_open)
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {"int": is_num and isinstance(value, int), "float": is_num,
          "str": isinstance(value, str), "bool": isinstance(value, bool),
          "list": isinstance(value, list), "table": isinstance(value, dict)}[kind]
    if value is _MISSING or not ok or (kind == "float" and not math.isfinite(value)):
        raise ConfigError(file, key, expected, value)
    if choices is not None and value not in choices:
        raise ConfigError(file, key, expected + _suggest(value, choices), value)
    if (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and value > high):
        raise ConfigError(file, key, expected, value)
    return float(value) if kind == "float" else value


def _check_design(file: str, key: str, name: str, value: Any) -> Any:
    """Check a value for design parameter ``name`` against its kind, range or choices."""
    info = SPACE_PARAMETERS[name]
    return _check(file, key, value, info.kind, low=info.low, high=info.high, choices=info.choices)


@dataclass
class _Table:
    """A TOML table being read; knows its file and key path so every error can name them."""

    file: str
    path: str
    data: dict[str, Any]

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, expected: str, got: object) -> ConfigError:
        return ConfigError(self.file, self.at(key), expected, got)

    def only(self, allowed: Iterable[str]) -> None:
        """Reject keys not in ``allowed``, suggesting the closest allowed one."""
        allowed = list(allowed)
        for key in self.data:
            if key not in allowed:
                raise self.error(key, _one_of(allowed) + _suggest(key, allowed),
                                 _Plain(f"unknown key {key!r}"))

    def get(self, key: str, kind: str, default: Any = _REQUIRED, **rules: Any) -> Any:
        """The checked value at ``key`` (see :func:`_check`), ``default`` if absent."""
        if key not in self.data and default is not _REQUIRED:
            return default
        return _check(self.file, self.at(key), self.data.get(key, _MISSING), kind, **rules)

    def table(self, key: str, required: bool = True, expected: str | None = None) -> _Table:
        """The sub-table at ``key``; an empty one if absent and not ``required``."""
        if key not in self.data and not required:
            return _Table(self.file, self.at(key), {})
        data = self.get(key, "table", expected=expected or f"a table [{self.at(key)}]")
        return _Table(self.file, self.at(key), data)

    def unique(self, key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """``values`` (the checked items of the array at ``key``) if none repeats."""
        seen: dict[Any, int] = {}
        for i, value in enumerate(values):
            if value in seen:
                raise self.error(f"{key}[{i}]", f"no duplicates (same as {key}[{seen[value]}])",
                                 value)
            seen[value] = i
        return values


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a user's file; a missing or unreadable one is a ConfigError naming it."""
    file = str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(file, "<file>", "an existing file", _Plain("no such file")) from None
    except OSError as exc:
        raise ConfigError(file, "<file>", "a readable file", _Plain(exc.strerror or str(exc))) \
            from None


def _read(path: str | os.PathLike[str]) -> tuple[str, _Table]:
    """The text and top-level table of a UTF-8 TOML file."""
    file = str(path)
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        got = _Plain(f"byte 0x{raw[exc.start]:02x} at line {line}")
        raise ConfigError(file, "<file>", "UTF-8 text", got) from None
    if text.startswith("\ufeff"):  # copied into the run as is, it could never be read back
        raise ConfigError(file, "<file>", "UTF-8 text without a byte-order mark (save the file "
                          "as UTF-8, not 'UTF-8 with BOM')",
                          _Plain("a UTF-8 byte-order mark (EF BB BF) at the start"))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        if msg.startswith(("Cannot overwrite", "Cannot declare")):
            msg += " (a key or table is defined twice)"
        raise ConfigError(file, "<toml>", "valid TOML", _Plain(msg)) from None
    return text, _Table(file, "", data)


def _sha256(obj: object) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
