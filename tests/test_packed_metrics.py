"""The search loop keeps finished trials' metrics packed (search.feed.PackedMetrics): it must
read exactly as the dict it replaces, and copy, deep-copy and pickle to that dict."""

from __future__ import annotations

import copy
import math
import pickle
import sys

from codesign.search.feed import PackedMetrics

METRICS = {"tokens_per_s": 1.5e6, "feasible": True, "n_chips": 1024, "reason": "",
           "mfu": float("nan"), "mapping": "tp8 pp1", "idle_chips": 0, "tdp_w": 700.0,
           "extra": None, "codesign:writer": "host-1-w0"}


def test_reads_as_the_dict_it_replaces() -> None:
    shared: dict = {}
    m = PackedMetrics(dict(METRICS), shared)
    assert list(m) == list(METRICS) and len(m) == len(METRICS)
    for k, v in METRICS.items():
        got = m[k]
        assert type(got) is type(v), k  # ints stay ints, bools bools, None None
        assert got == v or (isinstance(v, float) and math.isnan(v) and math.isnan(got))
    assert m.get("missing", 7) == 7 and "feasible" in m
    plain = dict(m)
    assert list(plain.items())[:2] == list(METRICS.items())[:2]
    assert {**m}.keys() == METRICS.keys()
    no_nan = {k: v for k, v in METRICS.items() if k != "mfu"}
    assert PackedMetrics(no_nan, shared) == no_nan


def test_copies_are_plain_dicts_and_layouts_are_shared() -> None:
    shared: dict = {}
    a = PackedMetrics(dict(METRICS), shared)
    b = PackedMetrics({**METRICS, "tokens_per_s": 2.0}, shared)
    assert a._layout is b._layout  # one layout for every trial with the same names
    for c in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert type(c) is dict and list(c) == list(METRICS)
    assert b["tokens_per_s"] == 2.0
    # a trial's ~50 float metrics: the dict and its float objects against the packed form
    many = {**{f"m{i}": i + 0.5 for i in range(50)}, **METRICS}
    p = PackedMetrics(many, shared)
    packed = sys.getsizeof(p) + sys.getsizeof(p._floats) + sys.getsizeof(p._others)
    plain = sys.getsizeof(many) + sum(sys.getsizeof(v) for v in many.values()
                                      if type(v) is float)
    assert packed < plain / 3
