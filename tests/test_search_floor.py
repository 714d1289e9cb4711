"""The mapping search made faster (issue 16) gives the same answers: the best mapping and step
of every ``codesign bench`` problem and of gigawatt-scale clusters as the search before the
change (pinned here from that code), and it accounts for every mapping of the space: those
it evaluates plus those its exact bounds rule out (``counts[N_STATUS]``) are the whole
enumeration of ``test_kernels.full_candidates``. The calibration rows are pinned by
``tests/test_layout_golden.py`` (``validate --json``, byte for byte)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels import SEARCH_CASES, full_candidates

from codesign.model.catalog import get_chip, get_model
from codesign.model.kernels import layout as L
from codesign.model.kernels.train_search import search_mappings
from codesign.model.perf import evaluate
from codesign.model.specs import ClusterSpec, TrainJob
from codesign.search import bench

BEFORE = {  # computed by the search of commit aad5486 (before issue 16's kernel work)
    "mtnlg530b-a100-5128": ([8, 21, 30, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0], 17.343503940455456),
    "llama3-405b-h100-16384": ([8, 64, 8, 4, 1, 1, 1, 0, 1, 1, 0, 0, 0], 6.646225271994139),
    "100k-chips": ([8, 6, 512, 4, 1, 1, 1, 0, 1, 1, 0, 0, 0], 5.481146308223738),
    "llama3-70b-mi300x-1024-throttled": ([2, 1, 512, 1, 1, 1, 1, 0, 2, 1, 0, 0, 0],
                                         7.470313986917327),
    "1gw-825k-chips": ([8, 21, 1024, 4, 1, 1, 1, 0, 1, 1, 0, 0, 0], 2.6610830549825524),
}


@pytest.mark.parametrize("problem", bench.PROBLEMS, ids=[p.name for p in bench.PROBLEMS])
def test_bench_problems_keep_their_best_mapping(problem: bench.Problem) -> None:
    chip, cluster, model, job = bench._problem_arrays(problem)[:4]
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    mp, out = np.zeros(L.MAP_LEN, np.int64), np.zeros(L.OUT_LEN)
    counts = np.zeros(L.N_STATUS + 1, np.int64)
    assert search_mappings(chip, cluster, model, job, fixed, mp, out, counts) == L.S_OK
    want_mp, want_step = BEFORE[problem.name]
    assert mp.tolist() == want_mp
    assert out[L.O_STEP_S] == pytest.approx(want_step, rel=1e-12)
    assert counts[L.N_STATUS] > counts[:L.N_STATUS].sum()  # the bounds decide most


@pytest.mark.parametrize(("n_chips", "pp", "tokens_per_s"),
                         [(825_000, 21, 50437256.27003401), (3_000_000, 64, 77216640.20866725)])
def test_gigawatt_clusters_keep_their_best_mapping(n_chips: int, pp: int,
                                                   tokens_per_s: float) -> None:
    """Llama-3 405B, global batch 16,384 on 825k (1 GW) and 3M H100: the data-parallel
    degrees are the batch's divisors, not every integer up to the chip count."""
    job = TrainJob(get_model("llama3-405b"), seq_len=8192, global_batch=16384)
    res = evaluate(get_chip("h100-sxm"), ClusterSpec(n_chips=n_chips), job)
    m = res.mapping
    assert (m.tp, m.pp, m.dp, m.cp, m.micro_batch, m.zero) == (8, pp, 1024, 4, 1, 1)
    assert res.tokens_per_s == pytest.approx(tokens_per_s, rel=1e-12)


@pytest.mark.parametrize("name", list(SEARCH_CASES))
def test_evaluated_plus_ruled_out_is_the_whole_space(name: str) -> None:
    """Without offload (whose retries only follow an evaluation), every mapping of the full
    enumeration is either evaluated or counted as ruled out by an exact bound."""
    arrays = SEARCH_CASES[name]()
    fixed = np.full(L.MAP_LEN, -1, np.int64)
    fixed[L.P_OFFLOAD] = 0
    n_space = sum(1 for _ in full_candidates(arrays, fixed))
    mp, out = np.zeros(L.MAP_LEN, np.int64), np.zeros(L.OUT_LEN)
    counts = np.zeros(L.N_STATUS + 1, np.int64)
    search_mappings(*arrays, fixed, mp, out, counts)
    assert counts[:L.N_STATUS].sum() + counts[L.N_STATUS] == n_space
    short = np.zeros(L.N_STATUS, np.int64)  # without the slot: the same search
    mp2, out2 = np.zeros(L.MAP_LEN, np.int64), np.zeros(L.OUT_LEN)
    search_mappings(*arrays, fixed, mp2, out2, short)
    np.testing.assert_array_equal(short, counts[:L.N_STATUS])
    np.testing.assert_array_equal(mp2, mp)
