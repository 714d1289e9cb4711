"""Monte Carlo draws of one design through the mapping kernels: the chip array scaled column by
column by each draw's factors, the (fixed) mapping evaluated again (:func:`run_draws`). The
draws are made outside and passed in, so every design of a comparison sees the same ones
(paired)."""

from __future__ import annotations

import numpy as np
from numba import njit

from codesign.model.kernels import layout as L
from codesign.model.kernels.infer_search import infer_search
from codesign.model.kernels.train_search import search_mappings


@njit(cache=True)
def _scaled(chip, cols, factors, d, out):
    """``out`` = ``chip`` with column ``cols[j]`` multiplied by ``factors[d, j]``."""
    out[:] = chip
    for j in range(cols.shape[0]):
        out[cols[j]] *= factors[d, j]


TRAIN = 0
INFER = 1


@njit(cache=True)
def run_draws(kind, chip, cols, factors, cluster, model, job, fixed, outs, status):
    """For each draw ``d`` (row of ``factors``, float64[n, k]): the mapping search of ``kind``
    (:data:`TRAIN`: :func:`.train_search.search_mappings`, :data:`INFER`:
    :func:`.infer_search.infer_search`; ``fixed``: every field set, so one mapping) on the
    chip array with column ``cols[j]`` (int64[k]) multiplied by ``factors[d, j]``;
    ``outs[d]`` (float64[n, OUT_LEN or IOUT_LEN]) receives its outputs, ``status[d]``
    (int64[n]) its status. Returns the number of draws with S_OK."""
    c = np.empty_like(chip)
    mp = np.zeros(L.MAP_LEN, np.int64)
    counts = np.zeros(L.N_STATUS, np.int64)
    ok = 0
    for d in range(factors.shape[0]):
        _scaled(chip, cols, factors, d, c)
        counts[:] = 0
        if kind == TRAIN:
            status[d] = search_mappings(c, cluster, model, job, fixed, mp, outs[d], counts)
        else:
            status[d] = infer_search(c, cluster, model, job, fixed, mp, outs[d], counts)
        ok += status[d] == L.S_OK
    return ok
