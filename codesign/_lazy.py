"""Public names of a package imported on first use, so that importing a package stays cheap.

``codesign.model`` names :func:`~codesign.model.perf.evaluate`, but ``import
codesign.model.specs`` (a config check) must not pull in numba: each package's ``__init__``
lists its public names with :func:`exports` and imports the module behind a name only when the
name is first read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(package: str, table: dict[str, str]
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public names live in ``table``
    (name -> module path)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *table})

    return __getattr__, __dir__
