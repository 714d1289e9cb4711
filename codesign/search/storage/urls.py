"""Checks of where a run writes, made before anything is created: the run directory
(``--out``), the report file (``-o``) and the storage URL (``--storage``, ``[storage] url``).

Each problem is a :class:`~codesign.errors.ConfigError` (exit 2) naming the flag or file, what
was expected and what was got. Nothing is created: a folder's writability is probed with an
unnamed temporary file; a journal or SQLite file is only read; a database URL is checked for
its form and driver, never connected to. :mod:`codesign.search.storage.rundir` calls these in
:func:`~codesign.search.storage.rundir.prepare_run` (and re-exports :func:`check_storage_url`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from pathlib import Path

from codesign.errors import ConfigError
from codesign.search.journal.check import _is_op


def writable_dir(folder: str | os.PathLike[str]) -> str | None:
    """None if a file can be created in ``folder``, else why not (nothing is left behind: the
    probe is an unnamed temporary file)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_out_dir(run_dir: Path, flag: str = "--out") -> None:
    """ConfigError unless ``run_dir`` is, or can be made, a writable directory. Creates
    nothing."""
    expected = "a directory (new, empty or a run directory)"
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(None, flag, expected, f"{run_dir} (a file)")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(None, flag, expected, f"{run_dir} ({existing} is a file)")
    why = writable_dir(existing)
    if why is not None:
        raise ConfigError(None, flag, "a writable directory",
                          f"{run_dir} ({existing}: {why})")


_MYSQL_DRIVERS = {"mysql": "MySQLdb", "mysql+mysqldb": "MySQLdb", "mysql+pymysql": "pymysql"}
_SQLITE_MAGIC = b"SQLite format 3\x00"
_JOURNAL = "a journal file (Optuna operations, one JSON object a line)"


_PASSWORD = re.compile(r"(://[^/@:]*):([^/@]*)@")
"""The password of a ``scheme://user:password@host`` URL (group 2)."""


def safe_url(url: str | None) -> str | None:
    """The URL without any password (never written anywhere, never printed)."""
    if url is None:
        return None
    return _PASSWORD.sub(r"\1:***@", url)


def url_password(url: str) -> str | None:
    """The password a URL carries, None if none (to elide it from a driver's message)."""
    m = _PASSWORD.search(url)
    return m.group(2) if m and m.group(2) else None


def check_storage_url(url: str | None, file: str | None = None, key: str = "--storage",
                      run_dir: Path | None = None) -> None:
    """ConfigError unless ``url`` is a storage this machine can open: a journal file path
    (``*.log``, ``*.journal``) in an existing directory that is a journal if it exists; an
    ``sqlite:///`` URL in an existing directory that is an SQLite database if it exists; a
    ``postgresql://user@host[:port]/dbname`` URL (its form only: no connection is made); a
    MySQL URL whose driver is installed. ``file``/``key`` name where the URL came from; a file
    may be in ``run_dir``, the run directory about to be created."""
    if url is None:
        return
    safe = safe_url(url)
    if "://" not in url and url.endswith((".log", ".journal")):
        _check_file(Path(url), _JOURNAL, file, key, run_dir)
        return
    scheme = url.split("://", 1)[0].lower()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:":
            _check_file(Path(path), "an SQLite database file", file, key, run_dir)
        return
    if scheme.startswith("postgres") or scheme in _MYSQL_DRIVERS:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        form = f"a URL like {scheme}://user@host:5432/dbname"
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ConfigError(file, key, f"{form} (a port number after the host)", safe) \
                from None
        if not parts.path.strip("/"):
            raise ConfigError(file, key, f"{form} (a database name after the host)", safe)
        module = _MYSQL_DRIVERS.get(scheme)
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(file, key, "a MySQL URL whose driver is installed: "
                              "pip install 'codesign[mysql]' and write mysql+pymysql://... "
                              f"(the driver {module} of {scheme}:// is not installed)", safe)
        return
    raise ConfigError(file, key, "a journal file path (*.log, *.journal) or a sqlite:///, "
                      "postgresql://, mysql+pymysql:// URL", safe)


def _check_file(path: Path, what: str, file: str | None, key: str,
                run_dir: Path | None) -> None:
    """A storage file: its directory exists (or is the run directory about to be made); if it
    exists, it is a regular file of its kind."""
    parent = path.parent
    if run_dir is not None and parent.resolve() == run_dir.resolve():
        parent = run_dir
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent  # check_out_dir checked this one is a writable folder
    if not parent.is_dir():
        raise ConfigError(file, key, f"{what} in an existing directory", str(parent))
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(file, key, what, f"{path} (not a regular file)")
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
    except OSError as exc:
        raise ConfigError(file, key, f"a readable {what}", f"{path} ({exc.strerror})") from None
    if not head:
        return  # empty: a new storage
    if what == _JOURNAL:
        first = head.split(b"\n", 1)[0]
        if b"\n" in head and not _is_op(first):
            raise ConfigError(file, key, f"{what}; codesign doctor {path} checks one",
                              f"{path}: line 1 is not a journal operation")
        start = b'{"op_code":'  # a first line still being written starts like this
        if b"\n" not in head and not (head.startswith(start) or start.startswith(head)):
            raise ConfigError(file, key, f"{what}; codesign doctor {path} checks one",
                              f"{path}: not a journal")
    elif not head.startswith(_SQLITE_MAGIC):
        raise ConfigError(file, key, f"{what} (one that starts with 'SQLite format 3')",
                          f"{path}: not an SQLite database")
