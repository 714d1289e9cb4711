"""The three kinds of failure: bad user input, infeasible design, bug.

Bad input is a :class:`ConfigError` (exit code 2, nothing touched). An infeasible design is not
an exception at all: it is a result with ``feasible=False`` and a reason, recorded as an Optuna
constraint. Anything else is a bug (exit code 1).
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """User input is wrong: names the file, the key path, what was expected and what was got.

    ``file=None`` means the value came from the command line (a flag).

    Example:
        >>> err = ConfigError("exp.toml", "budget.trials", "an integer >= 1", 0)
        >>> str(err)
        "exp.toml: budget.trials: expected an integer >= 1, got 0"
    """

    def __init__(self, file: str | Path | None, key: str, expected: str, got: object) -> None:
        self.file = str(file) if file is not None else "<command line>"
        self.key = key
        self.expected = expected
        self.got = got
        super().__init__(f"{self.file}: {key}: expected {expected}, got {got!r}")
