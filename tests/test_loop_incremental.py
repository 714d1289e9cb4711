"""The search loop's incremental state gives what the full scans give: the incremental Pareto
front equals Optuna's front of the same trials, the trial feed reads exactly the new trials,
and the generation counter and parent populations agree with the sampler's own."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.study import StudyDirection
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import TrialState

from codesign.search.baselines import BASELINE_ATTR
from codesign.search.feed import GenerationCounter, TrialFeed, create_trials
from codesign.search.front import ParetoFront
from codesign.search.repeats import unique_designs

optuna.logging.set_verbosity(optuna.logging.WARNING)
DIRS = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE]
DIST = {"x": optuna.distributions.IntDistribution(0, 10_000)}


def _trials(rng: np.random.Generator, n: int, constrained: bool) -> list:
    out = []
    for i in range(n):
        values = [float(v) for v in rng.integers(0, 12, size=len(DIRS))]  # many ties
        system = {}
        if constrained:
            system["constraints"] = [float(rng.choice([-1.0, 0.0, 1.0]))]
        t = optuna.trial.create_trial(params={"x": int(rng.integers(0, 40))}, distributions=DIST,
                                      values=values, system_attrs=system)
        t.number = i
        out.append(t)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("constrained", [False, True])
def test_incremental_front_equals_optuna_front(seed: int, constrained: bool) -> None:
    rng = np.random.default_rng(seed)
    trials = _trials(rng, 400, constrained)
    front = ParetoFront(DIRS)
    order = rng.permutation(len(trials))  # inserted in any order, a population at a time
    for start in range(0, len(order), 32):
        front.add([trials[i] for i in order[start:start + 32]])
        seen = [trials[i] for i in sorted(order[:start + 32])]
        want = unique_designs(_get_pareto_front_trials_by_trials(
            seen, DIRS, consider_constraint=any(t.constraints for t in seen)))
        assert [t.number for t in front.trials()] == [t.number for t in want]
    assert front.n_complete == len(trials)
    assert 0 < len(front.trials()) < len(trials)


def test_front_counts_feasible_and_keeps_last_baseline() -> None:
    t = []
    for i, (c, name) in enumerate([(-1.0, "b"), (1.0, None), (0.0, "a"), (-2.0, "b")]):
        x = optuna.trial.create_trial(params={"x": i}, distributions=DIST, values=[1.0, 1.0, 1.0],
                                      system_attrs={"constraints": [c]},
                                      user_attrs={BASELINE_ATTR: name} if name else {})
        x.number = i
        t.append(x)
    front = ParetoFront(DIRS)
    front.add([t[3], t[2], t[1], t[0]])
    assert front.n_feasible == 3
    assert list(front.baselines) == ["b", "a"]  # by each name's first trial
    assert front.baselines["b"].number == 3  # the last trial of that name


def _template(x: int, gen: int | None = None) -> optuna.trial.FrozenTrial:
    system = {"NSGAIISampler:generation": gen} if gen is not None else {}
    return optuna.trial.create_trial(params={"x": x}, distributions=DIST,
                                     values=[float(x), float(-x), 1.0], system_attrs=system)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_feed_reads_exactly_the_new_trials(tmp_path, kind: str) -> None:
    if kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    else:
        storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=storage, directions=DIRS)
    feed = TrialFeed(study)
    seen: list[int] = []
    feed.on_finished.append(lambda ts: seen.extend(t.number for t in ts))
    assert feed.refresh() == [] and feed.trials == []
    made = create_trials(study, [_template(i) for i in range(5)])
    assert [t.number for t in made] == list(range(5))
    study.enqueue_trial({"x": 7})
    running = study.ask(DIST)
    assert [t.number for t in feed.refresh()] == list(range(5))
    assert feed.waiting() == 0 and len(feed.trials) == 6
    study.enqueue_trial({"x": 8})
    other = optuna.load_study(study_name=study.study_name, storage=study._storage)
    create_trials(other, [_template(i) for i in range(10, 13)])  # another writer
    assert [t.number for t in feed.refresh()] == [7, 8, 9]
    assert feed.waiting() == 1
    study.tell(running, [1.0, 2.0, 3.0])
    assert [t.number for t in feed.refresh()] == [5]
    assert feed.refresh() == []
    assert seen == [0, 1, 2, 3, 4, 7, 8, 9, 5]
    full = study.get_trials(deepcopy=False)
    assert [(t.number, t.state, t.params, t.values) for t in feed.trials] == [
        (t.number, t.state, t.params, t.values) for t in full]
    assert feed.trials[6].state == TrialState.WAITING


def test_generation_counter_follows_the_samplers_rule() -> None:
    c = GenerationCounter("NSGAIISampler:generation", 3)
    assert c.generation() == 0
    trials = [_template(i, g) for i, g in enumerate([0, 0, 0, 1, 1])]
    c.add(trials[:2])
    assert c.generation() == 0
    c.add(trials[2:3])
    assert c.generation() == 1
    c.add(trials[3:])
    assert c.generation() == 1
    c.add([_template(9, 1)])
    assert c.generation() == 2


def test_feed_parents_equal_the_samplers(tmp_path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    pop = 8
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    sampler = optuna.samplers.NSGAIISampler(population_size=pop, seed=1)
    study = optuna.create_study(storage=storage, directions=DIRS, sampler=sampler)
    rng = np.random.default_rng(0)
    feed = TrialFeed(study)
    for gen in range(5):
        create_trials(study, [_template(int(x), gen) for x in rng.integers(0, 10_000, pop)])
        feed.refresh()
        study._thread_local.cached_all_trials = feed.trials
        ours = feed.parent_population(sampler, gen + 1)
        fresh = optuna.load_study(study_name=study.study_name, storage=storage,
                                  sampler=optuna.samplers.NSGAIISampler(population_size=pop))
        theirs = fresh.sampler.select_parent(fresh, gen + 1)  # Optuna's selection, afresh
        assert [t.number for t in ours] == [t.number for t in theirs]
        assert len(ours) == pop
        cached = fresh.sampler.get_parent_population(fresh, gen + 1)  # the ids we stored
        assert [t.number for t in cached] == sorted(t.number for t in ours)


@pytest.mark.parametrize("finite", [True, False])
def test_a_trial_template_is_the_trial_optuna_create_trial_makes(finite: bool) -> None:
    # trial_template builds the FrozenTrial without create_trial's per-param checks: the same
    # trial (times aside), and one that passes those checks
    from pathlib import Path

    from codesign.search.evaluate import evaluate_designs
    from codesign.search.experiment import load_experiment
    from codesign.search.space import base_design, cluster_extra, design_from_params
    from codesign.search.space import distributions as space_dists
    from codesign.search.study import trial_template

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "quickstart.toml")
    dists = space_dists(exp.space)
    study = optuna.create_study(directions=["maximize"] * len(exp.objectives),
                                sampler=optuna.samplers.NSGAIISampler(seed=0))
    params = {n: study.sampler.sample_independent(study, None, n, d) for n, d in dists.items()}
    metrics = evaluate_designs([design_from_params(base_design(exp), params)], exp.job,
                               cluster_extra(exp), exp.prices)[0]
    if not finite:
        metrics[exp.objectives[0].metric] = float("nan")
    got = trial_template(exp, study, dists, params, metrics, "w", 3, redraws=2)
    got._validate()
    want = optuna.trial.create_trial(
        params=params, distributions=dists, values=got.values if finite else None,
        user_attrs=got.user_attrs, system_attrs=got.system_attrs,
        state=TrialState.COMPLETE if finite else TrialState.FAIL)
    assert got.state == want.state and got.values == want.values
    assert "fail_reason" in got.user_attrs or finite
    same = {k: v for k, v in got.__dict__.items() if "datetime" not in k}
    assert same == {k: v for k, v in want.__dict__.items() if "datetime" not in k}
    assert got.datetime_start == got.datetime_complete is not None
