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


@pytest.fixture(scope="module")
def file_per_population() -> Iterator[None]:
    """Searches write a Parquet file for every population (``CODESIGN_TEST_LOG_ROWS=1``)
    instead of one every :data:`codesign.search.study.LOG_ROWS` rows: for tests of logs made
    of many small files (compaction, a lost or damaged file, a worker killed before logging a
    population). In-process searches and the subprocesses that inherit the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODESIGN_TEST_LOG_ROWS", "1")
        yield
