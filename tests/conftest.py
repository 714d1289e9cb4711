"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[object]:
    """``codesign`` processes started in ``tmp_path`` (test_faults.Procs); every one still
    running is killed after the test."""
    from test_faults import Procs

    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
