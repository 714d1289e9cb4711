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
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState

from codesign import catalog, doctor, parquet_log
from codesign.config import SAMPLERS, Experiment, load_experiment
from codesign.design import project_chip
from codesign.doctor import JOURNAL_FILE, RUN_FILE
from codesign.errors import ConfigError
from codesign.perf import evaluate_designs
from codesign.space import (
    base_design,
    cluster_extra,
    design_from_params,
    distributions,
    project_params,
)

METRICS_ATTR = "codesign:metrics"
FINGERPRINT_ATTR = "codesign:fingerprint"
INFEASIBLE_CONSTRAINT = "mapping_feasible"

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats are recorded by this engine's own loop, not by Study.optimize (on purpose)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
warnings.filterwarnings("ignore", message=".*heartbeat_interval.*experimental",
                        category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*grace_period.*experimental",
                        category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class RunSpec:
    """Where a study lives: run directory, study name, storage URL (None = embedded journal)."""

    run_dir: Path
    study_name: str
    storage_url: str | None
    sampler: str
    seed: int
    changed: bool = False  # the experiment changed (allowed): rewrite the config and the log


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


def normalize_storage(url: str | None) -> str | None:
    """Make a journal path or sqlite URL absolute, so the run finds it from any directory."""
    if url is None:
        return None
    if "://" not in url:
        return str(Path(url).resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def _stored_fingerprint(name: str, url: str | None, run_dir: Path) -> str | None:
    """The fingerprint a study already in the storage was created with (None if no study).

    Read-only for journal files: a missing file is not created.
    """
    if url is None:
        url_path = run_dir / JOURNAL_FILE
    elif "://" not in url:
        url_path = Path(url)
    else:
        url_path = None
    if url_path is not None and not url_path.exists():
        return None
    run = RunSpec(run_dir, name, str(url_path) if url_path is not None else url, "random", 0)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(run))
    except KeyError:
        return None
    return study.user_attrs.get(FINGERPRINT_ATTR)


def _changed(exp: Experiment, where: object, fingerprint: str, allow: bool) -> bool:
    """True if the experiment differs from ``fingerprint`` and that is allowed; else raise."""
    if fingerprint == exp.fingerprint():
        return False
    if not allow:
        raise ConfigError(
            exp.path, "<experiment>",
            f"the search space, workload, objectives and constraints of the existing study in "
            f"{where} (fingerprint {fingerprint[:12]}; pass --allow-space-change to continue "
            "anyway, or use a new --study)",
            f"a changed experiment (fingerprint {exp.fingerprint()[:12]})",
        )
    return True


_CREATION_LEFTOVERS = {"experiment.toml", "search_space.toml", ".run.json.tmp"}
"""What a run directory holds if its creation was killed before run.json (rewritten then)."""


def prepare_run(
    exp: Experiment,
    out: str | os.PathLike[str] | None,
    study: str | None,
    storage: str | None,
    sampler: str | None = None,
    seed: int | None = None,
    allow_space_change: bool = False,
) -> RunSpec:
    """Decide the run directory and storage, and check them against any study already there.

    Reads but never writes. A changed experiment on an existing study (in the run directory
    or in a shared storage) is a ConfigError (exit 2) unless ``allow_space_change``; the
    objectives of a study never change. A run made with ``--storage X`` continues in X.
    """
    name = study or exp.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(None, "--study", "a name of letters, digits, '_', '.', '-'", name)
    run_dir = Path(out) if out is not None else Path("runs") / name
    sampler = sampler or exp.sampler
    if sampler not in SAMPLERS:
        raise ConfigError(None, "--sampler", f"one of: {', '.join(SAMPLERS)}", sampler)
    check_storage_url(storage)
    url = normalize_storage(storage or exp.storage_url)
    changed = False
    info_path = run_dir / RUN_FILE
    if info_path.exists():
        stored_exp, stored_run = load_run(run_dir)
        if stored_run.study_name != name:
            raise ConfigError(info_path, "study",
                              f"study {stored_run.study_name!r} (this run directory's)", name)
        if url is None:
            url = stored_run.storage_url
        elif _safe_url(url) != _safe_url(stored_run.storage_url):
            raise ConfigError(None, "--storage",
                              f"this run's storage {_safe_url(stored_run.storage_url)}",
                              _safe_url(url))
        changed = _changed(exp, run_dir, stored_exp.fingerprint(), allow_space_change)
        if changed and [(o.metric, o.direction) for o in exp.objectives] != [
                (o.metric, o.direction) for o in stored_exp.objectives]:
            raise ConfigError(exp.path, "objectives",
                              "the objectives the study was created with (a study's objectives "
                              "never change; use a new --study)",
                              [o.metric for o in exp.objectives])
    elif run_dir.exists() and any(p.name not in _CREATION_LEFTOVERS for p in run_dir.iterdir()):
        raise ConfigError(None, "--out", "an empty or new directory, or an existing run directory",
                          str(run_dir))
    stored = _stored_fingerprint(name, url, run_dir)
    if stored is not None:
        changed = _changed(exp, _safe_url(url) or run_dir, stored, allow_space_change) or changed
    return RunSpec(run_dir, name, url, sampler, exp.seed if seed is None else seed, changed)


def write_run_files(exp: Experiment, run: RunSpec) -> None:
    """Write the config as run: the first time, or after an allowed change, when the trial log
    is first rewritten under the new schema and the previous config moves to
    ``history/<time>/``. Idempotent: does nothing once the run holds ``exp``."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run.run_dir / RUN_FILE
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info["fingerprint"] == exp.fingerprint():
            return
        if not run.changed:
            raise RuntimeError("the run directory holds another experiment; prepare_run checks")
        study = open_study(exp, run)
        tag = f"rewrite-{_writer_tag(0)}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        parquet_log.rewrite_trials(run.run_dir, exp,
                                   [row_from_trial(exp, t, tag) for t in complete], tag)
        old = run.run_dir / "history" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        old.mkdir(parents=True)
        for name in (RUN_FILE, "experiment.toml", "search_space.toml"):
            os.replace(run.run_dir / name, old / name)
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
    if url is None or "://" not in url:
        # absolute: Optuna's lock is a symlink to this path, relative ones would dangle
        path = run.run_dir / JOURNAL_FILE if url is None else Path(url)
        return JournalStorage(JournalFileBackend(str(path.resolve())))
    return RDBStorage(url, heartbeat_interval=heartbeat_s(), grace_period=2 * heartbeat_s())


def heartbeat_s() -> int:
    """Heartbeat interval of database storages, s (CODESIGN_HEARTBEAT_S, default 60): a
    RUNNING trial whose heartbeat is older than twice this belongs to a dead worker."""
    return max(1, int(os.environ.get("CODESIGN_HEARTBEAT_S", "60")))


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
    """Create or load the study; the sampler seed is derived from the trials already there
    and the worker index. After an allowed change the stored fingerprint is updated."""
    storage = open_storage(run)
    directions = [o.direction for o in exp.objectives]
    probe = optuna.create_study(storage=storage, study_name=run.study_name,
                                directions=directions, load_if_exists=True)
    stored = probe.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None or (stored != exp.fingerprint() and run.changed):
        probe.set_user_attr(FINGERPRINT_ATTR, exp.fingerprint())
    elif stored != exp.fingerprint():  # prepare_run checks this first; a race or a bug
        raise RuntimeError(f"study {run.study_name!r} was changed by another process")
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
    m.pop(WRITER_KEY, None)  # internal (the "writer" column says who wrote the row)
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


WRITER_KEY = "_writer"  # inside the metrics attribute: which process evaluated the trial
OWNER_ATTR = "codesign:owner"  # host-pid-start of the process that asked a trial
RETRY_ATTR = "codesign:retry_of"  # a re-run of the trial a dead worker left RUNNING
ORPHAN_GRACE_S = 60.0
"""A RUNNING trial with no owner (its worker died between ask and recording itself) is
recovered once it is this old; live workers record themselves microseconds after ask."""


def _writer_tag(worker: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-w{worker}"


def _process_start(pid: int) -> str:
    """Start time of a process (Linux /proc clock ticks; "" where unavailable), so a reused
    pid is not mistaken for the original process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_tag() -> str:
    """This process as the owner of the trials it asks: ``host|pid|start``."""
    return f"{socket.gethostname()}|{os.getpid()}|{_process_start(os.getpid())}"


def owner_dead(tag: str) -> bool:
    """True if the process of an owner tag is gone (same host only: a remote owner is not
    judged here)."""
    host, pid, start = [*tag.split("|"), "", "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if not pid_alive(int(pid)):
        return True
    return bool(start) and _process_start(int(pid)) != start


_WORKER_LOCKS: dict[str, Any] = {}  # open lock files of this process's workers (held till exit)


def _workers_dir(run: RunSpec) -> Path:
    """Where the workers of a storage mark themselves alive: next to its journal file (all
    run directories sharing one journal see each other), else in the run directory."""
    jpath = journal_file(run)
    if jpath is None:
        return run.run_dir / "workers"
    return jpath.resolve().with_name(jpath.name + ".workers")


def hold_worker_lock(run: RunSpec, worker: int) -> Path:
    """Mark this worker alive for as long as the process lives: an exclusive flock on
    ``<journal>.workers/<host>-<pid>-w<worker>.lock`` (the kernel releases it on any exit,
    kill -9 included)."""
    import fcntl

    folder = _workers_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{socket.gethostname()}-{os.getpid()}-w{worker}.lock"
    if str(path) not in _WORKER_LOCKS:
        fh = open(path, "a+b")
        fcntl.flock(fh, fcntl.LOCK_EX)
        _WORKER_LOCKS[str(path)] = fh
    return path


def other_live_workers(run: RunSpec) -> int:
    """How many other workers on this machine hold their lock on the run's storage (stale
    lock files of dead workers are removed)."""
    import fcntl

    live = 0
    for path in _workers_dir(run).glob("*.lock"):
        if str(path) in _WORKER_LOCKS or path.name.startswith("."):  # ours, .recover.lock
            continue
        with open(path, "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
                continue
            path.unlink(missing_ok=True)
    return live


def journal_file(run: RunSpec) -> Path | None:
    """The journal file of a run (None when the storage is a database)."""
    if run.storage_url is None:
        return run.run_dir / JOURNAL_FILE
    return None if "://" in run.storage_url else Path(run.storage_url)


def preflight_journal(run: RunSpec) -> None:
    """Before any worker opens the storage: refuse a damaged journal (torn or glued line;
    ``codesign doctor --repair`` mends it with a backup) and clear the journal's lock file
    when no other worker of the run is alive on this machine (a killed writer's lock would
    otherwise block every later one)."""
    import fcntl

    jpath = journal_file(run)
    if jpath is None:
        return
    health = doctor.check_journal(jpath, run_dir=run.run_dir)
    if health.damaged:
        raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
    with open(_workers_dir(run) / ".recover.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if other_live_workers(run) == 0:
            doctor.lock_path(jpath).unlink(missing_ok=True)


BASELINE_ATTR = "baseline"


def enqueue_baselines(exp: Experiment, run: RunSpec, study: optuna.Study) -> list[str]:
    """Warm start: put each of the experiment's reference chips, projected into the search
    space (:func:`codesign.design.project_chip`, :func:`codesign.space.project_params`), at
    the head of the queue, once per study (under the run's lock). Their trials carry the user
    attribute ``baseline`` = chip id (the Parquet column ``is_baseline``). Returns the ids
    enqueued now; chips the catalog cannot project are skipped with a warning."""
    import fcntl

    if not exp.baselines:
        return []
    done = {t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)}
    todo = [b for b in exp.baselines if b not in done]
    if not todo:
        return []
    enqueued = []
    with open(_workers_dir(run) / ".recover.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = {t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)}
        for chip_id in todo:
            if chip_id in done:
                continue
            try:
                design = project_chip(catalog.get_chip(chip_id))
            except ValueError as exc:
                print(f"codesign: warning: baseline skipped: {exc}", file=sys.stderr)
                continue
            study.enqueue_trial(project_params(exp.space, design),
                                user_attrs={BASELINE_ATTR: chip_id})
            enqueued.append(chip_id)
    return enqueued


def _rdb(study: optuna.Study) -> RDBStorage | None:
    """The study's database storage (Optuna wraps it in a cache), None for a journal."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, RDBStorage) else None


def _recover_by_heartbeat(study: optuna.Study) -> list[int]:
    """Database storages (many machines): a RUNNING trial whose heartbeat is older than the
    grace period is failed, and only the process whose RUNNING -> FAIL update succeeds
    re-enqueues its parameters, so a trial is re-run once however many workers recover."""
    from optuna.exceptions import UpdateFinishedTrialError

    recovered = []
    storage = study._storage
    for trial_id in _rdb(study)._get_stale_trial_ids(study._study_id):
        t = storage.get_trial(trial_id)
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker recovered it
        study.enqueue_trial(t.params, user_attrs={RETRY_ATTR: t.number})
        recovered.append(t.number)
    return recovered


def recover_stale_trials(run: RunSpec, study: optuna.Study) -> list[int]:
    """Fail the trials left RUNNING by dead workers and enqueue their parameters once more.

    Under a file lock in the run directory, so that two workers starting together recover a
    trial once. A trial is stale when its owner process is gone; a trial with no owner (its
    worker died between ask and recording itself) is stale when no other worker of a journal
    run is alive on this machine, else once it is older than :data:`ORPHAN_GRACE_S`. Returns
    the numbers of the trials recovered."""
    import fcntl

    if _rdb(study) is not None:
        return _recover_by_heartbeat(study)
    lock_path = _workers_dir(run) / ".recover.lock"
    local_journal = run.storage_url is None or "://" not in run.storage_url
    recovered = []
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        alone = local_journal and other_live_workers(run) == 0
        now = datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            tag = t.user_attrs.get(OWNER_ATTR)
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if (tag and owner_dead(tag)) or (not tag and (alone or age > ORPHAN_GRACE_S)):
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                study.enqueue_trial(t.params, user_attrs={RETRY_ATTR: t.number})
                recovered.append(t.number)
    return recovered


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(tag: str | None) -> bool:
    """True if the process that evaluated a trial can no longer log it itself: it ran on
    this host and is dead (trials of live or remote writers are theirs to log)."""
    if not tag:
        return True
    host, pid, _ = tag.rsplit("-", 2)
    # this process runs one search loop at a time: its own earlier trials are not in flight
    return pid == str(os.getpid()) or owner_dead(f"{host}|{pid}|")


def sync_parquet(exp: Experiment, run: RunSpec, study: optuna.Study) -> int:
    """Bring the Parquet log level with the storage after a crash: logs the COMPLETE trials
    it lacks whose writer died (returns how many) and removes temp files of dead writers."""
    parquet_log.remove_stale_temp_files(run.run_dir, pid_alive)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    tag = f"rebuild-{_writer_tag(0)}"
    logged = parquet_log.logged_trials(run.run_dir)
    missing = [t for t in complete if t.number not in logged
               and _writer_gone(t.user_attrs.get(METRICS_ATTR, {}).get(WRITER_KEY))]
    if missing:
        parquet_log.write_trials(run.run_dir, exp,
                                 [row_from_trial(exp, t, tag) for t in missing], tag)
    return len(missing)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in metrics.items()}


def _tell(exp: Experiment, study: optuna.Study, trial: optuna.Trial,
          metrics: dict[str, Any], writer: str) -> FrozenTrial:
    """Record one evaluated design: COMPLETE with constraints, or FAIL if non-finite."""
    values = objective_values(exp, metrics)
    trial.set_user_attr(METRICS_ATTR, {**_json_safe(metrics), WRITER_KEY: writer})
    if not all(_finite(v) for v in values):
        trial.set_user_attr("fail_reason", f"non-finite objective values {values}")
        return study.tell(trial, state=TrialState.FAIL)
    for key, value in constraint_values(exp, metrics).items():
        trial.set_constraint(key, value)
    return study.tell(trial, values)


def _generation(study: optuna.Study, sampler: optuna.samplers.BaseGASampler) -> int:
    """The generation a new population belongs to, by the GA samplers' own rule (the newest
    generation until it has ``population_size`` COMPLETE trials): one pass per population."""
    key = sampler._get_generation_key()
    gens = [t.system_attrs.get(key, -1) for t in study._get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)]
    newest = max(gens, default=0)
    if newest < 0:
        return 0
    return newest if gens.count(newest) < sampler.population_size else newest + 1


def propose_population(study: optuna.Study, dists: dict[str, Any],
                       k: int) -> tuple[list[dict[str, Any]], int | None]:
    """``k`` parameter sets from the study's sampler without touching the storage.

    GA samplers (NSGA-II/III): the parent population of the new generation is read once and
    each child comes from the sampler's crossover and mutation; other samplers draw through
    ``sample_relative`` / ``sample_independent`` on a stand-in trial. Returns the proposals
    and the GA generation (None for other samplers), which :func:`commit_trial` records."""
    sampler = study.sampler
    if k <= 0:
        return [], None
    # Optuna caches the trial list per thread until the next ask; the samplers read it
    # (use_cache=True), so drop it: this population must see every trial committed so far
    study._thread_local.cached_all_trials = None
    ga = isinstance(sampler, optuna.samplers.BaseGASampler)
    gen = _generation(study, sampler) if ga else None
    system = {sampler._get_generation_key(): gen} if ga else {}
    stand_in = optuna.trial.FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={},
        system_attrs=system, intermediate_values={}, trial_id=-1)
    relative = {n: d for n, d in dists.items() if not d.single()}
    parents: list[FrozenTrial] = []
    strategy = getattr(sampler, "_child_generation_strategy", None)
    if ga and gen:
        parents = sampler.get_parent_population(study, gen)
    proposals = []
    for _ in range(k):
        if ga:
            params = strategy(study, relative, parents) if parents and strategy else {}
        else:
            space = {n: d for n, d in sampler.infer_relative_search_space(study, stand_in).items()
                     if n in dists}
            params = sampler.sample_relative(study, stand_in, space) if space else {}
        for name, dist in dists.items():
            if name not in params:
                params[name] = sampler.sample_independent(study, stand_in, name, dist)
        proposals.append({n: params[n] for n in dists})
    return proposals, gen


def commit_trial(exp: Experiment, study: optuna.Study, dists: dict[str, Any],
                 params: dict[str, Any], metrics: dict[str, Any], writer: str,
                 gen: int | None) -> FrozenTrial:
    """Record one evaluated proposal as a finished trial in a single storage write:
    COMPLETE with its constraints (and GA generation), or FAIL if non-finite."""
    values = objective_values(exp, metrics)
    system: dict[str, Any] = {}
    if gen is not None:
        system[study.sampler._get_generation_key()] = gen
    user = {METRICS_ATTR: {**_json_safe(metrics), WRITER_KEY: writer}}
    if all(_finite(v) for v in values):
        system.update({f"constraints:{k}": v
                       for k, v in constraint_values(exp, metrics).items()})
        template = optuna.trial.create_trial(params=params, distributions=dists, values=values,
                                             user_attrs=user, system_attrs=system)
    else:
        user["fail_reason"] = f"non-finite objective values {values}"
        template = optuna.trial.create_trial(params=params, distributions=dists,
                                             user_attrs=user, system_attrs=system,
                                             state=TrialState.FAIL)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return study._storage.get_trial(trial_id)


def run_search(
    exp: Experiment,
    run: RunSpec,
    n_trials: int,
    progress: bool = True,
    worker: int = 0,
    timings: list[tuple[int, float]] | None = None,
) -> SearchSummary:
    """Run ``n_trials`` more trials of the study in ``run``, a population at a time.

    ``timings``, if given, receives ``(trials done, perf_counter seconds)`` after each
    population (the benchmark measures per-trial cost along the run with it).

    Each population is asked from the sampler, evaluated in one parallel kernel call, told,
    and appended to the Parquet log as one file; a Pareto snapshot is written at the end.
    """
    t0 = time.perf_counter()
    write_run_files(exp, run)
    hold_worker_lock(run, worker)
    preflight_journal(run)
    study = open_study(exp, run, worker)
    recover_stale_trials(run, study)
    enqueue_baselines(exp, run, study)
    sync_parquet(exp, run, study)
    owner = owner_tag()
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
            # enqueued trials (baselines, re-runs of a dead worker's trials) go through
            # ask/tell; fresh proposals are drawn in memory and committed finished (one write)
            waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            trials = []
            for _ in range(min(k, waiting)):
                trials.append(study.ask(dists))
                trials[-1].set_user_attr(OWNER_ATTR, owner)
                rdb = _rdb(study)
                if rdb is not None:  # alive, for workers on other machines
                    rdb.record_heartbeat(trials[-1]._trial_id)
            proposals, gen = propose_population(study, dists, k - len(trials))
            told = 0
            rows = []
            try:
                params = [t.params for t in trials] + proposals
                designs = [design_from_params(base, p) for p in params]
                metrics = evaluate_designs(designs, exp.job, extra, exp.prices)
                for t, m in zip(trials, metrics, strict=False):
                    frozen = _tell(exp, study, t, m, writer)
                    told += 1
                    if frozen.state == TrialState.COMPLETE:
                        rows.append(row_from_trial(exp, frozen, writer))
                for p, m in zip(proposals, metrics[len(trials):], strict=True):
                    frozen = commit_trial(exp, study, dists, p, m, writer, gen)
                    if frozen.state == TrialState.COMPLETE:
                        rows.append(row_from_trial(exp, frozen, writer))
            finally:
                for t in trials[told:]:  # interrupted: never leave a trial RUNNING
                    study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
                if rows:
                    parquet_log.write_trials(run.run_dir, exp, rows, writer)
            done += k
            if timings is not None:
                timings.append((done, time.perf_counter()))
            if (done // SNAPSHOT_EVERY) > ((done - k) // SNAPSHOT_EVERY) and done < n_trials:
                snapshot_pareto(exp, run, study, writer)
            if bar is not None:
                bar.update(k)
    finally:
        if bar is not None:
            bar.close()
    return finalize(exp, run, done, time.perf_counter() - t0, writer, study)


def front_trials(study: optuna.Study,
                 complete: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The trials of ``study.best_trials`` (constraint-aware Pareto front) by trial number,
    without deep-copying every trial of the study (``complete``: its COMPLETE trials, if
    already read). Do not modify the returned trials."""
    if complete is None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(_get_pareto_front_trials_by_trials(
        complete, study.directions, consider_constraint=any(t.constraints for t in complete)),
        key=lambda t: t.number)


def pareto_rows(exp: Experiment, study: optuna.Study) -> list[dict[str, Any]]:
    """Rows of the constraint-aware Pareto front (``study.best_trials``), by trial number,
    with ``<objective>_vs_<baseline>``: the improvement of each design over each baseline
    trial (> 1 = better; design/baseline when maximising, baseline/design when minimising)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = front_trials(study, complete)
    baselines = {t.user_attrs[BASELINE_ATTR]: t for t in complete
                 if BASELINE_ATTR in t.user_attrs}
    rows = []
    for t in front:
        row = row_from_trial(exp, t, "pareto")
        for name, b in baselines.items():
            for i, o in enumerate(exp.objectives):
                d, r = t.values[i], b.values[i]
                ok = d > 0 and r > 0 and b.user_attrs.get(METRICS_ATTR, {}).get("feasible")
                ratio = (d / r if o.direction == "maximize" else r / d) if ok else None
                row[f"{o.metric}_vs_{name}"] = ratio
        rows.append(row)
    return rows


SNAPSHOT_EVERY = 1000
"""A Pareto-front snapshot is written every this many trials of a run (and at its end)."""


def snapshot_pareto(exp: Experiment, run: RunSpec, study: optuna.Study,
                    writer: str) -> str | None:
    """Write the current Pareto front to ``RUN_DIR/pareto/`` (None if it is empty)."""
    rows = pareto_rows(exp, study)
    if not rows:
        return None
    n = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return str(parquet_log.write_pareto(run.run_dir, exp, rows, n, writer))


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


def export_run(run_dir: str | os.PathLike[str]) -> tuple[int, str]:
    """Rebuild the whole Parquet log of a run from its storage (the truth): one trials file
    with every COMPLETE trial, replacing the parts, and a fresh Pareto snapshot. Idempotent.
    Returns (rows written, pareto snapshot path)."""
    exp, run = load_run(run_dir)
    preflight_journal(run)
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(run))
    tag = f"export-{_writer_tag(0)}"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    parquet_log.rewrite_trials(run.run_dir, exp, [row_from_trial(exp, t, tag) for t in complete],
                               tag)
    summary = finalize(exp, run, 0, 0.0, tag, study)
    return len(complete), summary.pareto_path
