"""The run directory of a study and its Optuna storage: create, check, load; samplers; rows.

A run directory holds everything about one study (see DESIGN.md, "Run directory"):
``experiment.toml`` + ``search_space.toml`` (the config as run), ``run.json`` (study name,
storage, fingerprint), ``study.log`` (the default embedded journal storage), ``trials/`` and
``pareto/`` (Parquet). The Optuna storage is the truth; Parquet is rebuilt from it if behind.

:func:`prepare_run` decides where a study lives and checks it against any study already
there, :func:`write_run_files` writes the config as run and :func:`load_run` reads it back;
:func:`open_storage` and :func:`open_study` open the storage with its sampler;
:func:`row_from_trial` turns a stored trial into a Parquet row. The search loop is
:mod:`codesign.search.study`; workers sharing one study and their crash recovery are
:mod:`codesign.search.workers`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from codesign.errors import ConfigError
from codesign.search import parquet_log
from codesign.search.experiment import SAMPLERS, Experiment, load_experiment
from codesign.search.journal.check import JOURNAL_FILE, RUN_FILE, check_journal, open_journal
from codesign.search.samplers import derived_seed, make_sampler
from codesign.search.storage import runfile
from codesign.search.storage.trial_rows import (  # noqa: F401 - re-exported: the rows of a run's trials
    INFEASIBLE_CONSTRAINT,
    METRICS_ATTR,
    WRITER_KEY,
    _writer_tag,
    constraint_values,
    objective_values,
    row_from_trial,
)
from codesign.search.storage.urls import check_out_dir, check_storage_url, safe_url, url_password

FINGERPRINT_ATTR = "codesign:fingerprint"


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


# --------------------------------------------------------------------------- run directory


def normalize_storage(url: str | None) -> str | None:
    """Make a journal path or sqlite URL absolute, so the run finds it from any directory."""
    if url is None:
        return None
    if "://" not in url:
        return str(Path(url).resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def same_storage(a: str | None, b: str | None, run_dir: str | os.PathLike[str]) -> bool:
    """True if two storages of a run are one: equal URLs (passwords aside), or the same
    journal file, where None is the run's own journal ``RUN_DIR/study.log``."""
    def key(url: str | None) -> str | None:
        if url is None:
            url = str(Path(run_dir) / JOURNAL_FILE)
        if "://" in url:
            return safe_url(normalize_storage(url))
        return str(Path(url).resolve())

    return key(a) == key(b)


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

    Reads but never writes (except to complete a change of experiment that a killed command
    committed, :func:`codesign.search.storage.runfile.finish_change`). A changed experiment on an
    existing
    study (in the run directory or in a shared storage) is a ConfigError (exit 2) unless
    ``allow_space_change``; the objectives of a study never change. A run made with
    ``--storage X`` continues in X.
    """
    name = study if study is not None else exp.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(None, "--study", "a name of letters, digits, '_', '.', '-'", name)
    run_dir = Path(out) if out is not None else Path("runs") / name
    sampler = sampler or exp.sampler
    if sampler not in SAMPLERS:
        raise ConfigError(None, "--sampler", f"one of: {', '.join(SAMPLERS)}", sampler)
    check_out_dir(run_dir, "--out" if out is not None else "<run directory>")
    if storage is not None:
        check_storage_url(storage, run_dir=run_dir)
    else:
        check_storage_url(exp.storage_url, exp.path, "storage.url", run_dir)
    url = normalize_storage(storage or exp.storage_url)
    changed = False
    info_path = run_dir / RUN_FILE
    if runfile.pending(run_dir):  # a change a killed command committed: complete it first
        load_run(run_dir)
    if info_path.exists():
        stored_exp, stored_run = load_run(run_dir, url)
        if stored_run.study_name != name:
            raise ConfigError(info_path, "study",
                              f"study {stored_run.study_name!r} (this run directory's)", name)
        if url is None or same_storage(url, stored_run.storage_url, run_dir):
            url = stored_run.storage_url  # as the run holds it (None: its own journal)
        else:
            stored_url = stored_run.storage_url
            raise ConfigError(None, "--storage",
                              "this run's storage "
                              f"{safe_url(stored_url) or run_dir / JOURNAL_FILE}",
                              safe_url(url))
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
        changed = _changed(exp, safe_url(url) or run_dir, stored, allow_space_change) or changed
    return RunSpec(run_dir, name, url, sampler, exp.seed if seed is None else seed, changed)


def _info(exp: Experiment, run: RunSpec) -> dict[str, Any]:
    return {
        "study": run.study_name,
        "storage": safe_url(run.storage_url),
        "fingerprint": exp.fingerprint(),
        "experiment": "experiment.toml",
        "sampler": run.sampler,
        "seed": run.seed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _writable(run_dir: Path) -> None:
    """ConfigError unless the run directory takes writes (checked before anything is written;
    as root every directory does)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err = parquet_log.write_error(run_dir / RUN_FILE, exc, run_dir)
        if err is None:
            raise
        raise err from exc
    folders = [run_dir] + [run_dir / d for d in ("trials", "pareto") if (run_dir / d).is_dir()]
    for folder in folders:
        if not os.access(folder, os.W_OK | os.X_OK):
            err = parquet_log.write_error(folder, PermissionError(errno.EACCES, "read-only"),
                                          run_dir)
            assert err is not None
            raise err


def write_run_files(exp: Experiment, run: RunSpec) -> None:
    """Write the config as run: the first time, or after an allowed change, as one
    transaction (:mod:`codesign.search.storage.runfile`): the storage's fingerprint and the trial
    log under
    the new schema, the previous config moved to ``history/<time>/``. Idempotent: does
    nothing once the run holds ``exp``. A read-only run directory or a full disk is a
    ConfigError naming the file."""
    _writable(run.run_dir)
    runfile.finish_change(run.run_dir, _relog_for(run.run_dir))
    info_path = run.run_dir / RUN_FILE
    if not info_path.exists():
        runfile.write_config(exp, run.run_dir, _info(exp, run))
        return
    if runfile.read_run_file(run.run_dir)["fingerprint"] == exp.fingerprint():
        return
    if not run.changed:
        raise RuntimeError("the run directory holds another experiment; prepare_run checks")
    with runfile.change_lock(run.run_dir):
        runfile.stage_change(exp, run.run_dir, _info(exp, run))
    runfile.finish_change(run.run_dir, _relog_for(run.run_dir))


def _spec(run_dir: Path, info: dict[str, Any], changed: bool = False,
          storage: str | None = None) -> RunSpec:
    """The run spec of ``run.json``'s ``info``. ``run.json`` holds a database URL without its
    password: the full URL is ``storage`` (a worker's ``--storage``) when that is the stored
    URL with a password, else the environment variable ``CODESIGN_STORAGE_URL`` (the way to
    pass a secret to ``resume``)."""
    stored = info["storage"]
    url = stored
    if stored is not None and "***" in stored:
        given = [u for u in (storage, os.environ.get("CODESIGN_STORAGE_URL")) if u]
        url = next((u for u in given if safe_url(u) == stored), None)
        if url is None:
            raise ConfigError(run_dir / RUN_FILE, "storage",
                              f"--storage or CODESIGN_STORAGE_URL set to {stored} with its "
                              "password (elided here)",
                              safe_url(given[0]) if given else "neither set")
    return RunSpec(run_dir, info["study"], url, info["sampler"], int(info["seed"]), changed)


def _relog_for(run_dir: Path) -> Callable[[Experiment, dict[str, Any]], None]:
    def relog(exp: Experiment, info: dict[str, Any]) -> None:
        """The storage side of a committed change: the new fingerprint, the log rewritten."""
        run = _spec(run_dir, info, changed=True)
        jpath = journal_file(run)
        if jpath is not None:
            health = check_journal(jpath, run_dir=run_dir)
            if health.damaged:
                raise ConfigError(jpath, "<journal>", "an undamaged journal", health.message)
        study = open_study(exp, run)
        tag = f"rewrite-{_writer_tag(0)}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        parquet_log.replace_trials(run_dir, exp, [row_from_trial(exp, t, tag) for t in complete],
                                   tag)
    return relog


def load_run(run_dir: str | os.PathLike[str],
             storage: str | None = None) -> tuple[Experiment, RunSpec]:
    """The experiment and run spec stored in an existing run directory (ConfigError if none);
    ``storage``: the full URL of a database run (see :func:`_spec`).

    A change of experiment that a killed command committed but did not complete is completed
    first (:func:`codesign.search.storage.runfile.finish_change`); a bad ``run.json`` is a
    :class:`codesign.search.storage.runfile.RunFileError` naming its key and ``codesign export``."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if runfile.pending(run_dir):
        runfile.finish_change(run_dir, _relog_for(run_dir))
    if not info_path.is_file():
        history = sorted((run_dir / "history").glob(f"*/{RUN_FILE}"))
        hint = (f"no such file (a change of experiment was killed; restore it with `cp "
                f"{history[-1]} {run_dir}/`, then run the changed experiment again: `codesign "
                f"search EXPERIMENT --out {run_dir} --allow-space-change`)"
                if history else "no such file")
        raise ConfigError(run_dir, "<run directory>", f"a run directory with {RUN_FILE}", hint)
    info = runfile.read_run_file(run_dir)
    try:
        exp = load_experiment(run_dir / info["experiment"])
    except OSError as exc:
        raise ConfigError(run_dir / info["experiment"], "<experiment>", "the config as run",
                          exc.strerror or str(exc)) from None
    return exp, _spec(run_dir, info, storage=storage)


def rebuild_run_file(run_dir: str | os.PathLike[str]) -> Path | None:
    """Rebuild an unreadable ``run.json`` from ``experiment.toml`` and the embedded journal
    (the study there whose fingerprint matches); the bad file is kept as
    ``run.json.bad-<time>``. Returns the kept copy, None if ``run.json`` reads."""
    run_dir = Path(run_dir)
    try:
        runfile.read_run_file(run_dir)
        return None
    except runfile.RunFileError as exc:
        problem = exc
    info_path, journal = run_dir / RUN_FILE, run_dir / JOURNAL_FILE
    if not journal.is_file():
        raise ConfigError(info_path, problem.key, f"{problem.expected.split(' (')[0]} (its "
                          "storage is not in the run directory, so it cannot be rebuilt: restore "
                          "run.json from a backup or history/)", problem.got)
    exp = load_experiment(run_dir / "experiment.toml")
    health = check_journal(journal, run_dir=run_dir)
    if health.damaged:
        raise ConfigError(journal, "<journal>", "an undamaged journal", health.message)
    storage = open_storage(RunSpec(run_dir, "", None, exp.sampler, exp.seed))
    names = [s.study_name for s in storage.get_all_studies()
             if s.user_attrs.get(FINGERPRINT_ATTR) == exp.fingerprint()]
    if len(names) != 1:
        raise ConfigError(journal, "<study>", f"one study with fingerprint "
                          f"{exp.fingerprint()[:12]} (that of experiment.toml), to rebuild "
                          f"{RUN_FILE} from", f"{len(names)} such studies")
    kept = runfile.keep_bad_run_file(run_dir) if info_path.exists() else None
    run = RunSpec(run_dir, names[0], None, exp.sampler, exp.seed)
    tmp = run_dir / ".run.json.tmp"
    tmp.write_text(json.dumps(_info(exp, run), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, info_path)
    return kept


# --------------------------------------------------------------------------- storage, sampler


def open_storage(run: RunSpec, compact: bool = False) -> BaseStorage:
    """The Optuna storage of a run (default: the journal file in the run directory).

    ``compact`` (a journal file; what a search opens): trials share their distributions and
    leave their metrics in the journal (:mod:`codesign.search.journal.packed`), a fraction of
    the memory; their ``user_attrs`` then hold read-only mappings, not dicts (``json.dumps``
    refuses them), so storages handed to other tools (optuna-dashboard) are opened plain."""
    url = run.storage_url
    if url is None or "://" not in url:
        # absolute: Optuna's lock is a symlink to this path, relative ones would dangle
        path = run.run_dir / JOURNAL_FILE if url is None else Path(url)
        return open_journal(path.resolve(),
                            run.run_dir if (run.run_dir / RUN_FILE).is_file() else None,
                            compact=compact)
    from sqlalchemy.exc import NoSuchModuleError, OperationalError

    scheme = url.split("://", 1)[0]
    try:
        return _rdb_storage(url)
    except OperationalError as exc:
        if not scheme.startswith("postgres"):
            raise
        # server down, wrong host, port, user or password: one line, without the password
        reason = str(exc.orig or exc).strip().splitlines()[0]
        password = url_password(url)
        if password:
            reason = reason.replace(password, "***")
        raise ConfigError(None, "--storage", "a PostgreSQL server that accepts the connection",
                          f"{safe_url(url)}: {reason}") from None
    except ImportError as exc:  # the URL names a driver that is not installed
        hint = ("pip install 'codesign[postgres]'" if scheme.startswith("postgres")
                else "its Python driver installed")
        raise ConfigError(None, "--storage", f"a database driver for {scheme}:// ({hint})",
                          f"{safe_url(url)} (no module {exc.name or exc})") from None
    except NoSuchModuleError:
        raise ConfigError(None, "--storage",
                          "a database URL SQLAlchemy knows (sqlite:///, postgresql://, "
                          "postgresql+psycopg2://)", safe_url(url)) from None


SCHEMA_LOCK_KEY = 0x636F6465  # "code": the PostgreSQL advisory lock of table creation
SCHEMA_RACE_TRIES = 5
"""Attempts, on databases other than PostgreSQL, to open a storage whose tables other workers
may be creating at the same moment (each attempt after the first finds more of them made)."""


def _rdb_storage(url: str) -> RDBStorage:
    """An Optuna database storage. Workers started together on a database without Optuna's
    tables would all try to create them, and all but one fail on a duplicate type or table:
    on PostgreSQL the creation is serialised by a session advisory lock (the later workers
    find the tables made); elsewhere a duplicate is retried."""
    import sqlalchemy
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def storage() -> RDBStorage:
        return RDBStorage(url, heartbeat_interval=heartbeat_s(), grace_period=2 * heartbeat_s())

    if url.startswith(("postgresql", "postgres")):
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                lock = sqlalchemy.text("SELECT pg_advisory_lock(:k)")
                conn.execute(lock, {"k": SCHEMA_LOCK_KEY})
                try:
                    return storage()
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": SCHEMA_LOCK_KEY})
        finally:
            engine.dispose()
    for attempt in range(SCHEMA_RACE_TRIES):
        try:
            return storage()
        except (IntegrityError, ProgrammingError):
            if attempt == SCHEMA_RACE_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def journal_file(run: RunSpec) -> Path | None:
    """The journal file of a run (None when the storage is a database)."""
    if run.storage_url is None:
        return run.run_dir / JOURNAL_FILE
    return None if "://" in run.storage_url else Path(run.storage_url)


def heartbeat_s() -> int:
    """Heartbeat interval of database storages, s (CODESIGN_HEARTBEAT_S, default 60): a
    RUNNING trial whose heartbeat is older than twice this belongs to a dead worker."""
    return max(1, int(os.environ.get("CODESIGN_HEARTBEAT_S", "60")))


def open_study(exp: Experiment, run: RunSpec, worker: int = 0) -> optuna.Study:
    """Create or load the study; the sampler seed is derived from the trials already there
    and the worker index. After an allowed change the stored fingerprint is updated."""
    storage = open_storage(run, compact=True)
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
