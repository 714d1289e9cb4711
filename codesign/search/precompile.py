"""Compile the model's kernels for a search in a child process (:func:`compile_elsewhere`).

numba compiles a kernel the first time it is called with a type signature and keeps the
machine code in its on-disk cache (``cache=True``); later processes load it. Compiling costs
memory that the C allocator keeps after LLVM frees it: a 100,000-trial quickstart search whose
process compiled its kernels (a fresh install, or kernels changed since the cache was
written) peaked at 675 MB, one that loaded them from the cache at 478 MB (same machine).
A long search therefore first has a child process evaluate the experiment's base design,
which compiles (or loads) every kernel the search will call and writes the cache; the
searching process then only loads them.
"""

from __future__ import annotations

import subprocess
import sys

PRECOMPILE_TRIALS = 10_000
"""Searches of at least this many trials compile in a child process first (a shorter one
ends before its memory matters, and the child costs about 1 s with the cache warm)."""

_CHILD = (
    "import sys\n"
    "from codesign.search.experiment import load_experiment\n"
    "from codesign.search.evaluate import evaluate_designs\n"
    "from codesign.search.space import base_design, cluster_extra\n"
    "exp = load_experiment(sys.argv[1])\n"
    "evaluate_designs([base_design(exp)], exp.job, cluster_extra(exp), exp.prices,\n"
    "                 exp.traffic, exp.pools, exp.percentile_metrics(), 2)\n"
)


def compile_elsewhere(experiment_path: str, timeout_s: float = 1800.0) -> bool:
    """Evaluate the base design of the experiment at ``experiment_path`` in a child process
    (compiling and caching every kernel a search of it calls). True if the child succeeded;
    False otherwise (the search then compiles in its own process, as without this)."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(experiment_path)],
                              capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
