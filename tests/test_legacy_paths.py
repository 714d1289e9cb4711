"""The 0.1 import paths (flat modules) keep working for one release after issue 14's move.

Each old path gives the very module object of its new home (so attribute access, private
names and monkeypatching behave as before) with one DeprecationWarning naming the new path.
Run in a fresh interpreter: the modules of this test session are already imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from codesign import _legacy

SCRIPT = textwrap.dedent("""
    import importlib, json, warnings
    from codesign import _legacy
    out = {}
    for old, new in _legacy.MOVED.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = importlib.import_module("codesign." + old)
        b = importlib.import_module("codesign." + new)
        out[old] = [a is b, [str(w.message) for w in caught
                             if issubclass(w.category, DeprecationWarning)]]
    # a submodule of a moved package, and the README's 0.1 notebook API
    import codesign.catalog.assume as old_assume
    import codesign.model.catalog.assume as new_assume
    out["catalog.assume"] = [old_assume is new_assume, []]
    from codesign.inspect import load_run, sensitivity
    from codesign.perf import evaluate
    from codesign.validate import predict, load_cases
    import codesign
    out["api"] = [load_run is codesign.load_run and evaluate is codesign.evaluate
                  and callable(sensitivity) and callable(predict) and callable(load_cases), []]
    print(json.dumps(out))
""")


def test_every_old_path_is_the_new_module_with_a_warning() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert set(_legacy.MOVED) <= set(out)
    for old, (same, warned) in out.items():
        assert same, old
        if old in _legacy.MOVED:
            new = "codesign." + _legacy.MOVED[old]
            assert any(new in w for w in warned), (old, warned)


def test_new_path_maps_packages_and_their_submodules() -> None:
    assert _legacy.new_path("codesign.perf") == "codesign.model.perf"
    assert _legacy.new_path("codesign.kernels.train") == "codesign.model.kernels.train"
    assert _legacy.new_path("codesign.catalog") == "codesign.model.catalog"
    assert _legacy.new_path("codesign.model.perf") is None  # already new
    assert _legacy.new_path("codesign") is None
    assert _legacy.new_path("numpy.linalg") is None


def test_the_old_entry_point_and_module_run() -> None:
    """``python -m codesign`` and the console script ``codesign.cli:entry`` are unchanged."""
    proc = subprocess.run([sys.executable, "-m", "codesign", "catalog"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "h100-sxm" in proc.stdout


def test_a_closed_pipe_ends_quietly() -> None:
    """``codesign catalog | head -1``: the reader is gone before the output is written (here
    deterministically: the pipe's read end is closed before the command starts). The command
    ends with exit 0 and no traceback (it used to end in a BrokenPipeError traceback)."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "codesign", "catalog"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
