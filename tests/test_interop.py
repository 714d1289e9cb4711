"""A run directory is readable by the usual tools, not only by codesign (DESIGN.md: "pandas,
pyarrow.dataset and duckdb read it as is"; the Optuna storage is a plain Optuna journal).

One real run (a search, then a resume, so the log has several trial files and two Pareto
snapshots) is read by pandas, pyarrow.dataset, duckdb and polars (if installed), which must
agree on rows, column names and values; then the ``optuna`` command line reads the study.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pyarrow.dataset as pads
import pytest
from optuna.trial import TrialState

from codesign.cli import main
from codesign.search import parquet_log
from codesign.search.storage import rundir as rd

REPO = Path(__file__).resolve().parents[1]
STUDY = "interop"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interop")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in (('name = "quickstart"', f'name = "{STUDY}"'),
                     ('"../search_spaces/quickstart.toml"',
                      f'"{(REPO / "search_spaces" / "quickstart.toml").as_posix()}"'),
                     ("population = 32", "population = 8")):
        assert old in text, f"test bug: {old!r} not in quickstart.toml"
        text = text.replace(old, new, 1)
    exp = folder / "exp.toml"
    exp.write_text(text, encoding="utf-8")
    out = folder / "run"
    assert main(["search", str(exp), "--trials", "24", "--out", str(out), "--no-progress"]) == 0
    assert main(["resume", str(out), "--trials", "16", "--no-progress"]) == 0
    # a writer killed mid-write leaves a hidden temp file: no reader may pick it up
    for sub in ("trials", "pareto"):
        stray = parquet_log.temp_path(out / sub / "part-dead-00000099-00000099.parquet", 999999)
        stray.write_bytes(b"PAR1 torn")
    return out


def study_of(run_dir: Path) -> optuna.Study:
    _, spec = rd.load_run(run_dir)
    return optuna.load_study(study_name=spec.study_name, storage=rd.open_storage(spec))


def plain(value: Any) -> Any:
    """One cell as a plain Python value; NaN and missing are both None (Parquet null)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of plain values in a reader-independent order (sorted by their text)."""
    out = [tuple(plain(v) for v in row) for row in rows]
    return sorted(out, key=lambda r: [repr(v) for v in r])


def from_pandas(df: pd.DataFrame) -> tuple[list[str], list[tuple[Any, ...]]]:
    return list(df.columns), records(list(df.columns),
                                     list(df.astype(object).itertuples(index=False, name=None)))


def read_all(folder: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    import duckdb

    glob = (folder / "*.parquet").as_posix()
    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet('{glob}')")
    readers = {
        "pandas": from_pandas(pd.read_parquet(folder)),
        "pyarrow.dataset": from_pandas(pads.dataset(folder, format="parquet").to_table()
                                       .to_pandas()),
        "duckdb": (list(rel.columns), records(list(rel.columns), rel.fetchall())),
    }
    con.close()
    try:
        import polars as pl
    except ImportError:
        pass
    else:
        pdf = pl.read_parquet(glob)
        readers["polars"] = (pdf.columns, records(pdf.columns, pdf.rows()))
    return readers


@pytest.mark.parametrize("sub", ["trials", "pareto"])
def test_parquet_reads_the_same_in_every_reader(run_dir: Path, sub: str) -> None:
    readers = read_all(run_dir / sub)
    exp, _ = rd.load_run(run_dir)
    names = parquet_log.schema(exp).names
    columns, rows = readers["pandas"]
    assert columns == names
    for reader, (cols, got) in readers.items():
        assert cols == columns, reader
        assert len(got) == len(rows), reader
        assert got == rows, reader
    files = sorted((run_dir / sub).glob("*.parquet"))
    assert len(files) >= 2  # several trial parts; two front snapshots (search, resume)
    study = study_of(run_dir)
    trials = [r[names.index("trial")] for r in rows]
    if sub == "trials":
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        assert sorted(trials) == sorted(t.number for t in complete)
    else:  # the newest snapshot is the study's front; every snapshot row was feasible
        last = pd.read_parquet(files[-1])
        assert set(last["trial"]) == {t.number for t in study.best_trials}
        assert all(r[names.index("constraints_ok")] for r in rows)


def test_polars_reads_the_log_if_installed(run_dir: Path) -> None:
    pl = pytest.importorskip("polars")
    df = pl.read_parquet((run_dir / "trials" / "*.parquet").as_posix())
    assert df.height == len(pd.read_parquet(run_dir / "trials"))


# ----------------------------------------------------------------------------- optuna CLI


def optuna_cli(*args: str) -> Any:
    """Run the ``optuna`` command of this environment; return its JSON output."""
    exe = shutil.which("optuna", path=str(Path(sys.executable).parent)) or shutil.which("optuna")
    if exe is None:
        pytest.skip("the optuna command is not installed")
    proc = subprocess.run([exe, *args, "--format", "json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("storage_class", [None, "JournalFileBackend"])
def test_optuna_cli_lists_the_study(run_dir: Path, storage_class: str | None) -> None:
    hint = ["--storage-class", storage_class] if storage_class else []
    studies = optuna_cli("studies", "--storage", str(run_dir / "study.log"), *hint)
    study = study_of(run_dir)
    assert [s["name"] for s in studies] == [STUDY]
    assert studies[0]["n_trials"] == len(study.trials)
    assert [d.lower() for d in studies[0]["direction"]] == [
        d.name.lower() for d in study.directions]


def test_optuna_cli_reads_trials_and_front(run_dir: Path) -> None:
    journal = str(run_dir / "study.log")
    study = study_of(run_dir)
    trials = optuna_cli("trials", "--storage", journal, "--study-name", STUDY)
    assert len(trials) == len(study.trials)
    assert sorted(t["number"] for t in trials if t["state"] == "COMPLETE") == sorted(
        t.number for t in study.trials if t.state == TrialState.COMPLETE)
    best = optuna_cli("best-trials", "--storage", journal, "--study-name", STUDY)
    assert {t["number"] for t in best} == {t.number for t in study.best_trials}


def test_the_dashboard_s_journal_storage_reads_the_study(run_dir: Path) -> None:
    """``optuna-dashboard RUN_DIR/study.log`` opens an existing file as
    ``JournalStorage(JournalFileStorage(path))`` (its ``_storage_url.get_storage``; also with
    ``--storage-class JournalFileStorage``): that storage class, deprecated in Optuna 4 and
    still in Optuna 5, must read the run's study."""
    from optuna.storages import JournalFileStorage, JournalStorage

    with pytest.warns(FutureWarning, match="deprecated"):
        storage = JournalStorage(JournalFileStorage(str(run_dir / "study.log")))
    assert optuna.get_all_study_names(storage) == [STUDY]
    loaded = optuna.load_study(study_name=STUDY, storage=storage)
    study = study_of(run_dir)
    assert len(loaded.trials) == len(study.trials)
    assert {t.number for t in loaded.best_trials} == {t.number for t in study.best_trials}
