"""The import paths of the flat layout (codesign 0.1), kept working for one release.

Issue 14 moved every module into a folder by concept (``codesign.perf`` is now
:mod:`codesign.model.perf`, ``codesign.study`` :mod:`codesign.search.study`, ...). A script
that still imports an old path gets the very module object of the new one (so monkeypatching
and private names behave as before) and one :class:`DeprecationWarning` naming the new path.
``codesign.validate`` and ``codesign.cli`` are packages now and need no alias: their
``__init__`` re-exports what the old modules offered.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    # old flat module: its module now
    "specs": "model.specs",
    "tech": "model.tech",
    "efficiency": "model.efficiency",
    "pack": "model.pack",
    "perf": "model.perf",
    "metrics": "model.metrics",
    "traffic": "model.traffic",
    "catalog": "model.catalog",
    "kernels": "model.kernels",
    "chip_area": "model.chip.datasheet",
    "cost": "model.chip.cost",
    "power": "model.chip.power",
    "facility": "model.cluster.facility",
    "config": "search.experiment",
    "config_toml": "search.toml_checks",
    "config_workload": "search.workload_file",
    "design": "search.design",
    "space": "search.space",
    "study": "search.study",
    "parquet_log": "search.parquet_log",
    "rundir": "search.storage.rundir",
    "runfile": "search.storage.runfile",
    "storage_check": "search.storage.urls",
    "trial_rows": "search.storage.trial_rows",
    "workers": "search.workers",
    "repeats": "search.repeats",
    "journal_check": "search.journal.check",
    "journal_replay": "search.journal.replay",
    "journal_sums": "search.journal.sums",
    "log_check": "search.journal.log_check",
    "doctor": "search.journal.doctor",
    "bench": "search.bench",
    "inspect": "results.inspect",
    "report": "results.report",
    "compare": "results.compare",
    "sensitivity": "results.sensitivity",
    "hypervolume": "results.hypervolume",
    "cases": "validate.cases",
    "hardware": "validate.hardware",
    "cli_model": "cli.model",
    "cli_study": "cli.study",
    "cli_format": "cli.format",
}
"""``codesign.<old>`` -> ``codesign.<new>``; a package's submodules follow it."""


def new_path(fullname: str) -> str | None:
    """The module path that replaced ``fullname`` (``codesign.x[.y]``), or None if not moved."""
    prefix, _, rest = fullname.partition(".")
    if prefix != "codesign" or not rest:
        return None
    head, _, tail = rest.partition(".")
    if head not in MOVED:
        return None
    return "codesign." + MOVED[head] + ("." + tail if tail else "")


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed: nothing to run."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new = new_path(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new} (codesign 0.2); the old path goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        spec = importlib.machinery.ModuleSpec(fullname, _Alias(new),
                                              is_package=hasattr(module, "__path__"))
        return spec


def install() -> None:
    """Put the alias finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())  # before PathFinder: an old package's submodules
