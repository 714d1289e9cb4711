"""Flag types and the argument parser of the ``codesign`` command (:func:`parser`); the
``evaluate`` flags in :mod:`codesign.cli.parser_evaluate`."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from codesign.errors import ConfigError

# --------------------------------------------------------------------------- flag types


def _int_at_least(low: int, high: int | None = None):
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so :func:`main` returns the exit code, and
    takes flags only as spelled (no abbreviations: ``--chips`` is unknown, not a guess
    between ``--chips-per-host`` and ``--chips-per-rack``; a flag added later never breaks a
    script that abbreviated another)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        found = re.fullmatch(r"argument ([^:]+): (?:expected (.*), got (.*)|(.*))", message)
        if found is None:
            raise ConfigError(None, self.prog, "valid flags (see --help)", message)
        flag, expected, got, other = found.groups()
        flag = "command" if flag == "COMMAND" else flag  # the subcommand, as it was always named
        if expected is None:
            choice = re.fullmatch(r"invalid choice: (.*) \(choose from (.*)\)", other)
            if choice is not None:
                got, expected = choice.group(1), f"one of: {choice.group(2)}"
            else:
                got, expected = other, "a valid value (see --help)"
        raise ConfigError(None, flag.split("/")[-1], expected, got.strip("'"))


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help text as written (examples keep their lines), each option's default appended
    where it has one and its text does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default in (None, False, argparse.SUPPRESS) or "default" in text
                or not action.option_strings):
            return text
        shown = ", ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})".strip()
