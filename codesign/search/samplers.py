"""The study's sampler: built by short name, seeded per resume point and worker.

``nsga2`` (default), ``nsga3``, ``tpe``, ``gp`` (needs ``codesign[gp]``: torch, scipy) and
``random``; see :data:`codesign.search.experiment.SAMPLERS`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import optuna

from codesign.errors import ConfigError
from codesign.search.experiment import SAMPLERS, Experiment


class SeededRun(Protocol):
    """What a sampler needs of a run (:class:`codesign.search.storage.rundir.RunSpec` has it;
    not imported here: rundir builds its samplers from this module)."""

    sampler: str
    seed: int


def make_sampler(name: str, seed: int, population: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by short name (see :data:`codesign.search.experiment.SAMPLERS`); ``gp``
    needs
    the extra ``codesign[gp]`` (torch, scipy): without it a ConfigError names the extra."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "gp":
        import importlib.util

        missing = [m for m in ("torch", "scipy") if importlib.util.find_spec(m) is None]
        if missing:  # Optuna's GPSampler imports them lazily, at the first proposal
            raise ConfigError(None, "--sampler", "gp with its optional dependencies installed: "
                              "pip install 'codesign[gp]'",
                              f"gp without {' and '.join(missing)}")
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(None, "sampler", f"one of: {', '.join(SAMPLERS)}", name)


def derived_seed(seed: int, n_existing: int, worker: int) -> int:
    """A sampler seed that differs per resume point and per worker, so no proposal repeats."""
    return int(np.random.SeedSequence([seed, n_existing, worker]).generate_state(1)[0])


def check_sampler(exp: Experiment, run: SeededRun) -> None:
    """Raise ConfigError (exit 2) if the run's sampler cannot be made here (e.g. ``gp``
    without its optional dependencies), before anything is written."""
    make_sampler(run.sampler, run.seed, exp.population)
