"""Jitted-vs-``py_func`` harness shared by the training and serving kernel tests.

``out_len`` is the kernel's output length (``layout.OUT_LEN`` for training,
``layout.IOUT_LEN`` for serving); the test modules bind it with :func:`functools.partial`.
"""

import numpy as np

from codesign.kernels import layout as L

RTOL = 1e-12  # jitted and pure-Python kernels run the same float operations


def run_eval(fn, arrays, mp, *, out_len: int) -> tuple[int, np.ndarray]:
    """Run an evaluate kernel ``fn(*arrays, mp, out)``; return (status, out)."""
    out = np.full(out_len, -7.0)  # garbage: the kernel must overwrite every slot
    return int(fn(*arrays, mp, out)), out


def eval_both(kernel, arrays, mp, *, out_len: int) -> tuple[int, np.ndarray]:
    """An evaluate kernel jitted and as Python: same status, same outputs."""
    st_j, out_j = run_eval(kernel, arrays, mp, out_len=out_len)
    with np.errstate(all="ignore"):
        st_p, out_p = run_eval(kernel.py_func, arrays, mp, out_len=out_len)
    assert st_j == st_p, (mp.tolist(), st_j, st_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, out_j


def run_search(fn, arrays, fixed=None, *, out_len: int):
    """Run a mapping-search kernel; return (status, best mapping, best outputs, counts)."""
    fixed = np.full(L.MAP_LEN, -1, np.int64) if fixed is None else fixed
    best_mp = np.zeros(L.MAP_LEN, np.int64)
    best_out = np.zeros(out_len)
    counts = np.zeros(L.N_STATUS, np.int64)
    status = int(fn(*arrays, fixed, best_mp, best_out, counts))
    return status, best_mp, best_out, counts


def search_both(kernel, arrays, fixed=None, *, out_len: int):
    """A search kernel jitted and as Python (its py_func calls the jitted evaluator):
    same status, counts (pruning included), mapping and outputs."""
    st_j, mp_j, out_j, cnt_j = run_search(kernel, arrays, fixed, out_len=out_len)
    st_p, mp_p, out_p, cnt_p = run_search(kernel.py_func, arrays, fixed, out_len=out_len)
    assert st_j == st_p
    np.testing.assert_array_equal(cnt_j, cnt_p)
    np.testing.assert_array_equal(mp_j, mp_p)
    np.testing.assert_allclose(out_j, out_p, rtol=RTOL, atol=0.0)
    return st_j, mp_j, out_j, cnt_j
