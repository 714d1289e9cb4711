"""Create, resume and join studies: storages, samplers, the population loop, Parquet logging.

A run directory holds everything about one study (see DESIGN.md, "Run directory"):
``experiment.toml`` + ``search_space.toml`` (the config as run), ``run.json`` (study name,
storage, fingerprint), ``study.log`` (the default embedded journal storage), ``trials/`` and
``pareto/`` (Parquet). The Optuna storage is the truth; Parquet is rebuilt from it if behind.

Example:
    >>> from codesign.config import load_experiment
    >>> exp = load_experiment("experiments/quickstart.toml")  # doctest: +SKIP
    >>> run = prepare_run(exp, out=None, study=None, storage=None)  # doctest: +SKIP
    >>> summary = run_search(exp, run, n_trials=64, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from codesign import parquet_log
from codesign.config import SAMPLERS, Experiment, load_experiment
from codesign.errors import ConfigError
from codesign.perf import evaluate_designs
from codesign.space import base_design, cluster_extra, design_from_params, distributions

RUN_FILE = "run.json"
JOURNAL_FILE = "study.log"
METRICS_ATTR = "codesign:metrics"
FINGERPRINT_ATTR = "codesign:fingerprint"
INFEASIBLE_CONSTRAINT = "mapping_feasible"

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class RunSpec:
    """Where a study lives: run directory, study name, storage URL (None = embedded journal)."""

    run_dir: Path
    study_name: str
    storage_url: str | None
    sampler: str
    seed: int


@dataclass(frozen=True)
class SearchSummary:
    """What one call of :func:`run_search` did (counts are trials, times seconds)."""

    run_dir: str
    study_name: str
    trials_run: int
    trials_total_complete: int
    feasible: int
    pareto_size: int
    seconds: float
    trials_path: str
    pareto_path: str


# --------------------------------------------------------------------------- run directory


def _safe_url(url: str | None) -> str | None:
    """The URL without any password (never written anywhere)."""
    if url is None:
        return None
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


def prepare_run(
    exp: Experiment,
    out: str | os.PathLike[str] | None,
    study: str | None,
    storage: str | None,
    sampler: str | None = None,
    seed: int | None = None,
    allow_space_change: bool = False,
) -> RunSpec:
    """Decide the run directory and check it against any study already there.

    Reads but never writes: a changed experiment on an existing run is a ConfigError (exit 2)
    unless ``allow_space_change``.
    """
    name = study or exp.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(None, "--study", "a name of letters, digits, '_', '.', '-'", name)
    run_dir = Path(out) if out is not None else Path("runs") / name
    sampler = sampler or exp.sampler
    if sampler not in SAMPLERS:
        raise ConfigError(None, "--sampler", f"one of: {', '.join(SAMPLERS)}", sampler)
    run = RunSpec(run_dir, name, storage or exp.storage_url, sampler,
                  exp.seed if seed is None else seed)
    info_path = run_dir / RUN_FILE
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info["study"] != name:
            raise ConfigError(info_path, "study", f"study {info['study']!r} (this run directory's)",
                              name)
        if info["fingerprint"] != exp.fingerprint() and not allow_space_change:
            raise ConfigError(
                exp.path, "<experiment>",
                f"the search space, workload, objectives and constraints of the existing study "
                f"in {run_dir} (fingerprint {info['fingerprint'][:12]}; pass "
                "--allow-space-change to continue anyway, or use a new --study)",
                f"a changed experiment (fingerprint {exp.fingerprint()[:12]})",
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(None, "--out", "an empty or new directory, or an existing run directory",
                          str(run_dir))
    return run


def _write_run_files(exp: Experiment, run: RunSpec) -> None:
    """Create the run directory with the config as run (only the first time)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run.run_dir / RUN_FILE
    if info_path.exists():
        return
    space_text = Path(exp.space.path).read_text(encoding="utf-8")
    (run.run_dir / "search_space.toml").write_text(space_text, encoding="utf-8")
    text, n = re.subn(r'(?m)^(\s*search_space\s*=\s*)(".*?"|\'.*?\')', r'\1"search_space.toml"',
                      exp.text, count=1)
    header = f"# config as run; fingerprint {exp.fingerprint()}\n"
    (run.run_dir / "experiment.toml").write_text(header + text, encoding="utf-8")
    copied = load_experiment(run.run_dir / "experiment.toml")
    if n != 1 or copied.fingerprint() != exp.fingerprint():
        raise RuntimeError("the copied experiment does not reproduce the original fingerprint")
    info = {
        "study": run.study_name,
        "storage": _safe_url(run.storage_url),
        "fingerprint": exp.fingerprint(),
        "experiment": "experiment.toml",
        "sampler": run.sampler,
        "seed": run.seed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = info_path.with_name(".run.json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, info_path)


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Experiment, RunSpec]:
    """The experiment and run spec stored in an existing run directory (ConfigError if none)."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        raise ConfigError(run_dir, "<run directory>", f"a run directory with {RUN_FILE}",
                          "no such file")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    exp = load_experiment(run_dir / info["experiment"])
    storage = info["storage"]
    if storage is not None and "***" in storage:
        storage = os.environ.get("CODESIGN_STORAGE_URL")
        if storage is None:
            raise ConfigError(info_path, "storage", "CODESIGN_STORAGE_URL set (password elided)",
                              info["storage"])
    return exp, RunSpec(run_dir, info["study"], storage, info["sampler"], int(info["seed"]))


# --------------------------------------------------------------------------- storage, sampler


def check_storage_url(url: str | None) -> None:
    """ConfigError unless ``url`` is a journal file path or a database URL."""
    if url is None:
        return
    if url.endswith((".log", ".journal")) and "://" not in url:
        return
    if url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://")):
        return
    raise ConfigError(None, "--storage",
                      "a journal file path (*.log, *.journal) or a sqlite:///, postgresql:// URL",
                      _safe_url(url))


def open_storage(run: RunSpec) -> BaseStorage:
    """The Optuna storage of a run (default: the journal file in the run directory)."""
    url = run.storage_url
    if url is None:
        return JournalStorage(JournalFileBackend(str(run.run_dir / JOURNAL_FILE)))
    if "://" not in url:
        return JournalStorage(JournalFileBackend(url))
    return RDBStorage(url)


def make_sampler(name: str, seed: int, population: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by short name (see :data:`codesign.config.SAMPLERS`)."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(None, "sampler", f"one of: {', '.join(SAMPLERS)}", name)


def derived_seed(seed: int, n_existing: int, worker: int) -> int:
    """A sampler seed that differs per resume point and per worker, so no proposal repeats."""
    return int(np.random.SeedSequence([seed, n_existing, worker]).generate_state(1)[0])


def open_study(exp: Experiment, run: RunSpec, worker: int = 0) -> optuna.Study:
    """Create or load the study; the sampler seed is derived from the trials already there."""
    storage = open_storage(run)
    directions = [o.direction for o in exp.objectives]
    probe = optuna.create_study(storage=storage, study_name=run.study_name,
                                directions=directions, load_if_exists=True)
    stored = probe.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        probe.set_user_attr(FINGERPRINT_ATTR, exp.fingerprint())
    n_existing = len(probe.get_trials(deepcopy=False))
    sampler = make_sampler(run.sampler, derived_seed(run.seed, n_existing, worker),
                           exp.population)
    return optuna.load_study(study_name=run.study_name, storage=storage, sampler=sampler)


# --------------------------------------------------------------------------- trial rows


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def objective_values(exp: Experiment, metrics: dict[str, Any]) -> list[float]:
    """Objective values of a trial, in the experiment's order."""
    return [float(metrics[o.metric]) for o in exp.objectives]


def constraint_values(exp: Experiment, metrics: dict[str, Any]) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible): the mapping search succeeded, then each bound."""
    out = {INFEASIBLE_CONSTRAINT: 0.0 if metrics["feasible"] else 1.0}
    for c in exp.constraints:
        v = float(metrics[c.metric])
        if c.max is not None:
            out[f"{c.metric}_max"] = v - c.max if math.isfinite(v) else 1e300
        if c.min is not None:
            out[f"{c.metric}_min"] = c.min - v if math.isfinite(v) else 1e300
    return out


def row_from_trial(exp: Experiment, t: FrozenTrial, writer: str) -> dict[str, Any]:
    """One Parquet row for a finished trial (everything from the storage)."""
    m = dict(t.user_attrs.get(METRICS_ATTR, {}))
    row: dict[str, Any] = {
        "trial": t.number,
        "is_baseline": "baseline" in t.user_attrs,
        "baseline": t.user_attrs.get("baseline"),
        "feasible": bool(m.get("feasible", False)),
        "constraints_ok": all(v <= 0 for v in t.constraints.values()),
        "reason": m.get("reason", ""),
        "writer": writer,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }
    row.update({f"param_{k}": v for k, v in t.params.items()})
    row.update({f"value_{o.metric}": v for o, v in zip(exp.objectives, t.values or [],
                                                        strict=False)})
    row.update(m)
    return row


# --------------------------------------------------------------------------- the loop


def _writer_tag(worker: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-w{worker}"


def sync_parquet(exp: Experiment, run: RunSpec, study: optuna.Study) -> int:
    """Write the COMPLETE trials the Parquet log lacks (after a crash); returns how many."""
    logged = parquet_log.logged_trials(run.run_dir)
    missing = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.number not in logged]
    if missing:
        tag = f"rebuild-{_writer_tag(0)}"
        parquet_log.write_trials(run.run_dir, exp,
                                 [row_from_trial(exp, t, tag) for t in missing], tag)
    return len(missing)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in metrics.items()}


def _tell(exp: Experiment, study: optuna.Study, trial: optuna.Trial,
          metrics: dict[str, Any]) -> FrozenTrial:
    """Record one evaluated design: COMPLETE with constraints, or FAIL if non-finite."""
    values = objective_values(exp, metrics)
    trial.set_user_attr(METRICS_ATTR, _json_safe(metrics))
    if not all(_finite(v) for v in values):
        trial.set_user_attr("fail_reason", f"non-finite objective values {values}")
        return study.tell(trial, state=TrialState.FAIL)
    for key, value in constraint_values(exp, metrics).items():
        trial.set_constraint(key, value)
    return study.tell(trial, values)


def run_search(
    exp: Experiment,
    run: RunSpec,
    n_trials: int,
    progress: bool = True,
    worker: int = 0,
) -> SearchSummary:
    """Run ``n_trials`` more trials of the study in ``run``, a population at a time.

    Each population is asked from the sampler, evaluated in one parallel kernel call, told,
    and appended to the Parquet log as one file; a Pareto snapshot is written at the end.
    """
    t0 = time.perf_counter()
    _write_run_files(exp, run)
    study = open_study(exp, run, worker)
    sync_parquet(exp, run, study)
    dists = distributions(exp.space)
    base = base_design(exp)
    extra = cluster_extra(exp)
    writer = _writer_tag(worker)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_trials, desc=f"{run.study_name}", unit="trial", file=sys.stderr)
    done = 0
    try:
        while done < n_trials:
            k = min(exp.population, n_trials - done)
            trials = [study.ask(dists) for _ in range(k)]
            told = 0
            rows = []
            try:
                designs = [design_from_params(base, t.params) for t in trials]
                metrics = evaluate_designs(designs, exp.job, extra)
                for t, m in zip(trials, metrics, strict=True):
                    frozen = _tell(exp, study, t, m)
                    told += 1
                    if frozen.state == TrialState.COMPLETE:
                        rows.append(row_from_trial(exp, frozen, writer))
            finally:
                for t in trials[told:]:  # interrupted: never leave a trial RUNNING
                    study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
                if rows:
                    parquet_log.write_trials(run.run_dir, exp, rows, writer)
            done += k
            if bar is not None:
                bar.update(k)
    finally:
        if bar is not None:
            bar.close()
    return finalize(exp, run, done, time.perf_counter() - t0, writer, study)


def pareto_rows(exp: Experiment, study: optuna.Study) -> list[dict[str, Any]]:
    """Rows of the constraint-aware Pareto front (``study.best_trials``), by trial number."""
    front = sorted(study.best_trials, key=lambda t: t.number)
    return [row_from_trial(exp, t, "pareto") for t in front]


def finalize(exp: Experiment, run: RunSpec, done: int, seconds: float, writer: str,
             study: optuna.Study | None = None) -> SearchSummary:
    """Write a Pareto snapshot of the study as it stands and summarise the run."""
    if study is None:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rows = pareto_rows(exp, study)
    pareto_path = run.run_dir / "pareto"
    if rows:
        pareto_path = parquet_log.write_pareto(run.run_dir, exp, rows, len(complete), writer)
    feasible = sum(1 for t in complete if all(v <= 0 for v in t.constraints.values()))
    return SearchSummary(
        run_dir=str(run.run_dir),
        study_name=run.study_name,
        trials_run=done,
        trials_total_complete=len(complete),
        feasible=feasible,
        pareto_size=len(rows),
        seconds=seconds,
        trials_path=str(run.run_dir / "trials"),
        pareto_path=str(pareto_path),
    )


def summary_dict(summary: SearchSummary) -> dict[str, Any]:
    """Plain dict of a summary (for JSON output)."""
    return asdict(summary)
