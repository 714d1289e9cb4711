"""Helpers shared by the tests that drive ``codesign.cli.main`` in-process."""

import json
from typing import Any

import pytest

from codesign.cli import main


def no_nan(text: str) -> Any:
    """``parse_constant`` hook for :func:`json.loads` that rejects NaN/Infinity."""
    raise AssertionError(f"not strict JSON: {text}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI with ``argv``; return (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """Run a ``--json`` command that must succeed and print exactly one strict JSON object."""
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1, out
    doc = json.loads(out, parse_constant=no_nan)
    assert isinstance(doc, dict)
    json.dumps(doc, allow_nan=False)  # no inf from overflowing literals either
    return doc
