"""The run file ``RUN_DIR/run.json`` and the config as run: read them checked, write them
atomically, and change them as one transaction (``--allow-space-change``).

An allowed change of the experiment touches four things: the study's fingerprint in the
storage, the Parquet log (rewritten under the new schema), the config files (the previous ones
move to ``history/<time>/``) and ``run.json``. A kill between any two of them used to leave a
run no command could use. Now the change is staged whole in the hidden ``RUN_DIR/.change.tmp/``
and committed by one rename to ``RUN_DIR/.change/``: before that rename nothing has changed
(a leftover ``.change.tmp`` is dropped: the change is rolled back), after it the change is
completed, step by idempotent step, by whichever command opens the run next
(:func:`finish_change`, called from :func:`codesign.search.storage.rundir.load_run` and
``prepare_run``).

The steps that need the storage are :mod:`codesign.search.storage.rundir`'s (passed in as
``relog``), so this
module imports nothing of the storage side.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.search import parquet_log
from codesign.search.experiment import SAMPLERS, Experiment, load_experiment
from codesign.search.hf_config import inline_json_model
from codesign.search.journal.check import RUN_FILE

CONFIG_FILES = ("experiment.toml", "search_space.toml", RUN_FILE)  # run.json last: the commit
PENDING = ".change"
STAGING = ".change.tmp"
CHANGE_FILE = "change.json"  # in PENDING: where the previous config goes
LOCK = ".change.lock"
BAD_MARK = ".bad-"  # run.json.bad-<time>: an unreadable run.json kept by ``codesign export``

_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "study": (str, "the study name (a string)"),
    "storage": ((str, type(None)), "the storage URL (a string or null)"),
    "fingerprint": (str, "the experiment's fingerprint (a string)"),
    "experiment": (str, "the config as run (a file name in the run directory)"),
    "sampler": (str, f"one of: {', '.join(SAMPLERS)}"),
    "seed": (int, "the sampler seed (an integer >= 0)"),
}


class RunFileError(ConfigError):
    """``run.json`` is missing a key, holds a wrong value or is not JSON at all."""


def _mend(run_dir: Path) -> str:
    return (f"`codesign export {run_dir}` rebuilds run.json from experiment.toml and the "
            "storage, keeping the bad file")


def read_run_file(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/run.json`` checked key by key (RunFileError naming the key and the mend)."""
    path = run_dir / RUN_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RunFileError(path, "<json>", f"a JSON object ({_mend(run_dir)})",
                           f"undecodable bytes at offset {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(path, "<json>", f"a JSON object ({_mend(run_dir)})",
                           f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(info, dict):
        raise RunFileError(path, "<json>", f"a JSON object ({_mend(run_dir)})",
                           type(info).__name__)
    for key, (types, what) in _KEYS.items():
        value = info.get(key, KeyError)
        ok = isinstance(value, types) and not isinstance(value, bool)
        if key == "sampler":
            ok = ok and value in SAMPLERS
        if key == "seed":
            ok = ok and value >= 0
        if key == "study":
            ok = ok and bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value))
        if key == "experiment":
            ok = ok and "/" not in value and (run_dir / value).is_file()
        if not ok:
            got = "no such key" if value is KeyError else value
            raise RunFileError(path, key, f"{what} ({_mend(run_dir)})", got)
    return info


BASELINE_DIR = "baselines"
"""Folder of a run directory holding copies of the experiment's baseline chip files."""


def _copy_baseline_files(exp: Experiment, dest: Path, text: str) -> str:
    """Copy the experiment's baseline chip files into ``dest/baselines/`` and return its
    ``text`` with ``baselines`` pointing at the copies (paths relative to the experiment's
    folder would not follow the copy); ``text`` unchanged without baseline files."""
    if not exp.baseline_files:
        return text
    folder = dest / BASELINE_DIR
    folder.mkdir(exist_ok=True)
    refs = []
    for name in exp.baselines:
        if name in exp.baseline_files:
            target = folder / f"{name}.toml"
            target.write_bytes(Path(exp.baseline_files[name]).read_bytes())
            refs.append(f"{BASELINE_DIR}/{name}.toml")
        else:
            refs.append(name)
    listed = "[" + ", ".join(f'"{r}"' for r in refs) + "]"
    new, n = re.subn(r"(?ms)^(\s*baselines\s*=\s*)\[.*?\]", lambda m: m.group(1) + listed,
                     text, count=1)
    if n != 1:
        raise RuntimeError("the experiment's baselines array was not found in its text")
    return new


def write_config(exp: Experiment, dest: Path, info: dict[str, Any]) -> None:
    """Write the config as run into ``dest``: ``search_space.toml``, ``experiment.toml``
    (pointing at it, with its fingerprint) and ``run.json`` = ``info`` (written last, via a
    hidden temp file and a rename). A refused write is a ConfigError naming the file."""
    target = dest
    try:
        space_text = Path(exp.space.path).read_text(encoding="utf-8")
        target = dest / "search_space.toml"
        target.write_text(space_text, encoding="utf-8")
        text, n = re.subn(r'(?m)^(\s*search_space\s*=\s*)(".*?"|\'.*?\')',
                          r'\1"search_space.toml"', exp.text, count=1)
        text = inline_json_model(text, exp.job.model)  # a config.json path: the model inline
        text = _copy_baseline_files(exp, dest, text)
        header = f"# config as run; fingerprint {exp.fingerprint()}\n"
        target = dest / "experiment.toml"
        target.write_text(header + text, encoding="utf-8")
        copied = load_experiment(target)
        if (n != 1 or copied.fingerprint() != exp.fingerprint()
                or copied.baselines != exp.baselines):
            raise RuntimeError("the copied experiment does not reproduce the original "
                               "fingerprint")
        target = dest / RUN_FILE
        tmp = dest / ".run.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        err = parquet_log.write_error(target, exc, dest)
        if err is not None:
            raise err from exc
        raise


@contextmanager
def change_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's change lock (one process stages or completes a change at a time)."""
    with open(run_dir / LOCK, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def pending(run_dir: Path) -> bool:
    """True if a change was staged or committed and not completed (or rolled back)."""
    return (run_dir / PENDING).exists() or (run_dir / STAGING).exists()


def stage_change(exp: Experiment, run_dir: Path, info: dict[str, Any]) -> None:
    """Stage the whole new config in ``.change.tmp/`` and commit it by renaming the folder
    to ``.change/`` (the one step after which the change happens). Call under
    :func:`change_lock`, then :func:`finish_change`."""
    staging = run_dir / STAGING
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        write_config(exp, staging, info)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        (staging / CHANGE_FILE).write_text(json.dumps({"history": stamp}) + "\n",
                                           encoding="utf-8")
        parquet_log.fsync_dir(staging)
        parquet_log.crash_point("change-staged")
        os.replace(staging, run_dir / PENDING)
        parquet_log.fsync_dir(run_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and (
                err := parquet_log.write_error(staging, exc, run_dir)) is not None:
            raise err from exc
        raise
    parquet_log.crash_point("change-committed")


def finish_change(run_dir: Path,
                  relog: Callable[[Experiment, dict[str, Any]], None]) -> bool:
    """Complete a committed change (or drop an uncommitted one); True if one was completed.

    ``relog(exp, info)`` records the new fingerprint in the storage and rewrites the Parquet
    log under the new schema (idempotent). Then the previous config moves to
    ``history/<time>/`` and the new one into place, ``run.json`` last. Every step may be
    killed and repeated."""
    if not pending(run_dir):
        return False
    change = run_dir / PENDING
    try:
        with change_lock(run_dir):
            shutil.rmtree(run_dir / STAGING, ignore_errors=True)  # never committed: undone
            if not change.is_dir():
                return False
            try:
                stamp = json.loads((change / CHANGE_FILE).read_text(encoding="utf-8"))["history"]
                info = json.loads((change / RUN_FILE).read_text(encoding="utf-8"))
                exp = load_experiment(change / "experiment.toml")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(change, "<pending change>", "a complete staged change (move "
                                  f"{change} aside and run `codesign export {run_dir}`)",
                                  str(exc)[:160]) from None
            relog(exp, info)
            parquet_log.crash_point("change-log")
            history = run_dir / "history" / stamp
            history.mkdir(parents=True, exist_ok=True)
            for name in CONFIG_FILES:
                old, new = run_dir / name, change / name
                if old.exists() and new.exists() and not (history / name).exists():
                    os.replace(old, history / name)
                    if name == RUN_FILE:
                        parquet_log.crash_point("change-history")
            for name in CONFIG_FILES:
                if (change / name).exists():
                    os.replace(change / name, run_dir / name)
            parquet_log.fsync_dir(run_dir)
            shutil.rmtree(change)
    except OSError as exc:
        err = parquet_log.write_error(change, exc, run_dir)
        if err is None:
            raise
        raise ConfigError(change, "<pending change>",
                          f"a writable run directory to complete the change of experiment a "
                          f"killed command left (then run `codesign resume {run_dir}`)",
                          err.got) from exc
    return True


def keep_bad_run_file(run_dir: Path) -> Path:
    """Move an unreadable ``run.json`` aside (``run.json.bad-<time>``); returns the copy."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    kept = run_dir / f"{RUN_FILE}{BAD_MARK}{stamp}"
    os.replace(run_dir / RUN_FILE, kept)
    return kept
