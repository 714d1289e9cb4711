"""numba kernels: pure functions over flat float64/int64 arrays, status codes, no Python objects.

Nothing in this package imports Optuna or pandas. The column order of every array is defined in
:mod:`codesign.model.kernels.layout`; :mod:`codesign.model.pack` is the only place that fills them
from specs.

numba's on-disk cache (``cache=True``) checks only the source file of each cached function, not
the files of the functions it calls: ``infer.py`` compiled against an older ``train.py`` would
be reused. :func:`_drop_stale_cache` therefore keys the whole cache on a hash of every kernel
source and clears it when any of them changes (first import after an edit or an upgrade).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def _drop_stale_cache() -> None:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for src in sorted(here.glob("*.py")):
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "codesign-kernels.sha256"
    try:
        if stamp.read_text() == digest.hexdigest():
            return
    except OSError:
        pass
    try:
        for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:  # a read-only install: numba then recompiles in memory as needed
        pass


_drop_stale_cache()
