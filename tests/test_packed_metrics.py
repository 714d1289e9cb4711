"""The search loop keeps finished trials' metrics packed (search.feed.PackedMetrics): it must
read exactly as the dict it replaces, and copy, deep-copy and pickle to that dict."""

from __future__ import annotations

import copy
import math
import pickle
import sys
from collections.abc import Mapping

from codesign.search.journal.packed import PackedMetrics

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


def _journal_with_trials(path, n: int):
    """A journal of ``n`` finished trials, each with its metrics, written by codesign's
    backend; returns the storage and the metrics written."""
    import optuna
    from optuna.storages import JournalStorage

    from codesign.search.journal.sums import ChecksummedJournalBackend
    from codesign.search.storage.trial_rows import METRICS_ATTR

    storage = JournalStorage(ChecksummedJournalBackend(str(path), lazy_metrics=True))
    study = optuna.create_study(storage=storage, study_name="s")
    dist = optuna.distributions.FloatDistribution(0, 1000)
    written = []
    for i in range(n):
        metrics = {**METRICS, "mfu": 0.5, "tokens_per_s": 1e6 + i, "n_chips": 2 ** (i % 12)}
        written.append(metrics)
        study.add_trial(optuna.trial.create_trial(
            params={"x": i / 3}, distributions={"x": dist}, value=float(i),
            user_attrs={METRICS_ATTR: metrics}))
    return storage, written


def test_a_replay_leaves_metrics_in_the_journal_and_reads_them_back(tmp_path) -> None:
    """Replayed trials hold where their metrics are (JournalMetrics), read back equal to what
    was written, in a fresh process's replay as in the writer's; copies are plain dicts."""
    import optuna
    from optuna.storages import JournalStorage

    from codesign.search.journal.packed import JournalMetrics
    from codesign.search.journal.sums import ChecksummedJournalBackend
    from codesign.search.storage.trial_rows import METRICS_ATTR

    path = tmp_path / "j.log"
    storage, written = _journal_with_trials(path, 600)  # more than the decode cache holds
    fresh = JournalStorage(ChecksummedJournalBackend(str(path), lazy_metrics=True))
    for st in (storage, fresh):
        trials = optuna.load_study(study_name="s", storage=st).get_trials(deepcopy=False)
        held = [t.user_attrs[METRICS_ATTR] for t in trials]
        assert all(isinstance(m, JournalMetrics) for m in held)
        assert [dict(m) for m in held] == written
        assert held[7] == written[7] and held[7]["n_chips"] == 2 ** 7
        for c in (copy.copy(held[3]), copy.deepcopy(held[3]), pickle.loads(pickle.dumps(held[3]))):
            assert type(c) is dict and c == written[3]
    # the deep copies Optuna hands out (get_trials' default) hold plain dicts
    t = optuna.load_study(study_name="s", storage=fresh).get_trials()[5]
    assert type(t.user_attrs[METRICS_ATTR]) is dict and t.user_attrs[METRICS_ATTR] == written[5]


def test_metrics_read_back_from_the_file_the_replay_read(tmp_path) -> None:
    """A journal replaced by a rename (doctor's repair) under a live process: the metrics it
    holds are still read from the file it replayed, never from other bytes at that place."""
    import os

    import optuna

    from codesign.search.storage.trial_rows import METRICS_ATTR

    path = tmp_path / "j.log"
    storage, written = _journal_with_trials(path, 3)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    held = trials[2].user_attrs[METRICS_ATTR]
    dict(held)  # the file is opened at the first read
    other = tmp_path / "other.log"
    other.write_bytes(b"x" * path.stat().st_size)
    os.replace(other, path)
    from codesign.search.journal.packed import _line_metrics

    _line_metrics.cache_clear()
    assert dict(held) == written[2]


def test_the_front_holds_its_metrics_in_memory(tmp_path) -> None:
    """Front trials (read at every snapshot) hold PackedMetrics; dominated ones stay in the
    journal."""
    import optuna

    from codesign.search.front import ParetoFront
    from codesign.search.journal.packed import JournalMetrics
    from codesign.search.storage.trial_rows import METRICS_ATTR

    storage, written = _journal_with_trials(tmp_path / "j.log", 20)
    study = optuna.load_study(study_name="s", storage=storage)
    trials = study.get_trials(deepcopy=False)
    front = ParetoFront(study.directions)  # minimise: trial 0 (value 0) dominates the rest
    front.add(trials)
    assert [t.number for t in front.trials()] == [0]
    assert isinstance(trials[0].user_attrs[METRICS_ATTR], PackedMetrics)
    assert trials[0].user_attrs[METRICS_ATTR] == written[0]
    assert isinstance(trials[19].user_attrs[METRICS_ATTR], JournalMetrics)


def test_a_search_does_not_load_pyarrow_dataset(tmp_path) -> None:
    """The searching process reads and compacts its Parquet log file by file: importing
    ``pyarrow.dataset`` (38 MB of resident memory) is for readers only."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from codesign.search.experiment import load_experiment\n"
        "from codesign.search.bench_loop import engine\n"
        "from codesign.search.storage.compact import compact_log\n"
        f"exp = load_experiment(Path({str(root / 'experiments' / 'quickstart.toml')!r}))\n"
        "import dataclasses\nexp = dataclasses.replace(exp, population=8)\n"
        f"out = Path({str(tmp_path)!r})\n"
        "engine(exp, 200, out)\n"
        "run = next(out.rglob('run.json')).parent\n"
        "assert not list((run / 'trials').glob('part-*-w0.parquet')), 'not compacted'\n"
        "print('pyarrow.dataset' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_compact_replay_reads_as_optunas_and_shares_spaces(tmp_path) -> None:
    """The replay of CompactJournalStorage gives the trials plain Optuna's replay gives
    (params, distributions, values, attributes, states), with one distributions dict per
    space between trials created finished, choices as the distribution's own objects, and
    running trials (whose parameters still change) left unshared."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from codesign.search.journal.packed import CompactJournalStorage
    from codesign.search.journal.sums import ChecksummedJournalBackend

    path = tmp_path / "j.log"
    storage, _ = _journal_with_trials(path, 5)
    study = optuna.load_study(study_name="s", storage=storage)
    cat = optuna.distributions.CategoricalDistribution([512, 4096, "HBM3e"])
    for v in (4096, "HBM3e", 4096):
        study.add_trial(optuna.trial.create_trial(params={"c": v}, distributions={"c": cat},
                                                  value=1.0))
    running = study.ask({"c": cat})
    running.set_user_attr("k", 1)
    plain = JournalStorage(JournalFileBackend(str(path))).get_all_trials(0)
    backend = ChecksummedJournalBackend(str(path), lazy_metrics=True)
    compact = CompactJournalStorage(backend).get_all_trials(0, deepcopy=False)
    assert len(plain) == len(compact) == 9
    for p, c in zip(plain, compact, strict=True):
        assert (p.params, p.distributions, p.values, p.state, p.system_attrs) == (
            c.params, c.distributions, c.values, c.state, c.system_attrs)
        assert dict(p.user_attrs) == {k: dict(v) if isinstance(v, Mapping) else v
                                      for k, v in c.user_attrs.items()}
    assert compact[0]._distributions is compact[4]._distributions
    assert compact[5]._distributions is compact[7]._distributions
    own = compact[5].distributions["c"].choices
    assert compact[5].params["c"] is own[1] and compact[7].params["c"] is own[1]
    assert compact[6].params["c"] is own[2]
    assert compact[8].state == optuna.trial.TrialState.RUNNING
    assert compact[8]._distributions is not compact[5]._distributions


def test_a_search_replay_shares_times_and_keeps_few_line_offsets(tmp_path) -> None:
    """After a search, its journal's replay holds one start and one completion time object
    per population (the trials of a population record the same times, as committed together),
    one empty intermediate-values dict for all finished trials, and the byte offsets of only
    the lines not yet read (not one per line of the journal): the memory a 100,000-trial
    search holds per trial. The trials still read as Optuna's own replay gives them."""
    import dataclasses

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from codesign.search.bench import SEARCH_EXPERIMENT, experiments_dir
    from codesign.search.bench_loop import engine
    from codesign.search.experiment import load_experiment
    from codesign.search.journal.packed import CompactJournalStorage
    from codesign.search.journal.sums import ChecksummedJournalBackend

    exp = dataclasses.replace(load_experiment(experiments_dir() / SEARCH_EXPERIMENT),
                              population=8)
    engine(exp, 64, tmp_path)
    journal = next(tmp_path.rglob("study.log"))
    backend = ChecksummedJournalBackend(str(journal), lazy_metrics=True)
    storage = CompactJournalStorage(backend)
    trials = storage.get_all_trials(0, deepcopy=False)
    assert len(trials) == 64
    assert len(backend._log_number_offset) <= 2  # the next line to read (and the start)
    finished = [t for t in trials if t.state.is_finished()]
    assert len({id(t.intermediate_values) for t in finished}) == 1
    starts = {id(t.datetime_start) for t in finished}
    assert len(starts) <= 64 // 8 + 1  # one per population (a baseline's trial apart)
    plain = JournalStorage(JournalFileBackend(str(journal))).get_all_trials(0)
    for p, c in zip(plain, trials, strict=True):
        assert (p.params, p.values, p.datetime_start, p.datetime_complete, p.state) == (
            c.params, c.values, c.datetime_start, c.datetime_complete, c.state)
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0],
                              storage=storage)
    assert len(study.get_trials(deepcopy=False)) == 64
