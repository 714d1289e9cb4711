"""The outputs a user's scripts read, pinned byte for byte across a reorganisation of the code.

Issue 14 moved every module into folders by concept with "no change in behaviour". These
outputs were written by the code *before* the move (``tests/data/golden/``) and must come out
identical after it and after any later refactoring that claims to change nothing:

* ``codesign evaluate --json`` for a dense and a MoE training job, a fixed-mapping job, a
  serving job and a gigawatt-budget cluster;
* ``codesign validate --json`` over the whole packaged calibration.csv, and ``--hardware``;
* a seeded search (quickstart, 64 trials; a serving experiment, 32 trials): every Parquet row
  and the file's schema metadata, and ``codesign pareto --format json``.

Only what is not deterministic is left out: which process wrote a row (``writer``, host and
pid), when (``datetime_complete``) and the run directory's own path, in the log and in the
front alike.

A change that is meant to move a number regenerates the files
(``python tests/test_layout_golden.py --write``) and says why here and in its commit:

* issue 15 (after the move, which changed nothing): ``evaluate`` runs a catalog chip in its
  platform as built (host CPU, rack, scale-up fabric, torus cables) and prints ``platform``,
  ``provisioned_power_w``, ``idle_chips`` and ``cluster_breakdown``; every result gains the
  metrics ``provisioned_power_w``, ``idle_chips``, ``rack_power_kw`` and ``train_days``
  (new Parquet columns); ``tokens_per_s_per_mw`` divides by provisioned power (the budget,
  else chips at TDP + host + network, x PUE), not drawn power; the building's capital cost
  is paid on what it is built to feed. ``validate`` outputs are unchanged.
* issue 15, host memory as a second tier: new keys only (``mapping.offload``,
  ``host_memory_gb``, ``platform.host_memory_gb_per_chip`` and ``host_link_gbs``,
  ``breakdown_s.host_offload_exposed``, and their Parquet columns) and the candidate counts
  (a mapping out of memory is tried again with each offload); every other value, the chosen
  mappings and every metric, compared with the earlier files after dropping those keys, is
  identical.
* issue 15, cooling and per-GW: new keys only (``tokens_per_s_per_gw``, the ``cooling``
  object of ``evaluate``, the metrics ``cooling_ok``, ``rack_limit_kw`` and the design
  parameter ``cooling`` in the Parquet log); every other value identical.
* issue 16, the mapping search at its floor (divisors, exact memory before timing, offloads
  and full recompute bounded out, widest tp first, no throttling of a candidate already
  slower than the best): the candidate counts only (fewer evaluated); every chosen mapping
  and every metric identical.
* issue 17, serving under traffic: new Parquet columns and their units only (the metrics of
  an experiment's ``[traffic]``: ``goodput_rps`` ... ``disaggregated_goodput_rps``, NaN
  without it), and ``validate``'s ``catalog_model`` of NEMO2407-07a (LLAMA2-70B), now
  ``llama2-70b`` of the catalog; after dropping those, every row, front, baseline,
  fingerprint and prediction is identical.
* issue 17, heterogeneous pools: new Parquet columns and their units only
  (``prefill_chip_share``, ``ttft_p50_s`` ... ``itl_p90_s`` and the decode pool's chip,
  ``decode_die_area_mm2`` ... ``decode_hbm_gb``, NaN without ``[traffic]``); after dropping
  those, identical.
* issue 19, goodput at scale: new keys only (``evaluate``'s ``goodput`` object, the metrics
  ``interruptions_per_day`` ... ``spare_chips`` and the cluster parameters
  ``spares_per_domain``, ``checkpoint_gbps``, ``async_checkpoint`` and
  ``checkpoint_interval_s`` in the Parquet log, with their units); after dropping those,
  every row, front, fingerprint and prediction is identical.
* issue 20, the architect's path: ``evaluate``'s answer gains the key ``hbm_gb`` (GB of HBM
  per chip, for its summary's memory line); after dropping it, identical.
* issue 16, a per-interleaving pipeline bound and a narrower first pass: the candidate
  counts only (``n_candidates`` and ``feasible_candidates``: fewer evaluated); after
  dropping them every file is identical, every chosen mapping and metric included.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"

EVALUATE = {
    "evaluate_train_dense": ["--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips",
                             "1024", "--seq-len", "8192", "--global-batch", "1024"],
    "evaluate_train_fixed": ["--chip", "a100-sxm-80gb", "--workload", "gpt3-175b", "--n-chips",
                             "1024", "--seq-len", "2048", "--global-batch", "1536", "--tp", "8",
                             "--pp", "8"],
    "evaluate_train_moe": ["--chip", "h800", "--workload", "deepseek-v3", "--n-chips", "2048",
                           "--seq-len", "4096", "--global-batch", "4096", "--precision", "fp8"],
    "evaluate_serve": ["--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips", "8",
                       "--input-len", "2000", "--output-len", "500", "--precision", "fp8",
                       "--itl-slo-s", "0.05"],
    "evaluate_budget": ["--chip", "mi300x", "--workload", "llama3-405b", "--power-budget-mw",
                        "100", "--seq-len", "8192", "--global-batch", "2048"],
}
VALIDATE = {"validate_all": [], "validate_hardware": ["--hardware"]}
SEARCHES = {"search_quickstart": ("quickstart.toml", 64),
            "search_serving": ("inference_llama70b.toml", 32)}
UNSTABLE_COLUMNS = ("writer", "datetime_complete")
"""Which process wrote a trial's row, and when: the only columns that differ between runs."""


def _cli(argv: list[str]) -> str:
    """Run ``codesign ARGV`` in-process; its stdout (exit code 0 asserted)."""
    import contextlib
    import io

    from codesign.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    assert code == 0, f"codesign {' '.join(argv)} exited {code}: {err.getvalue()}"
    return out.getvalue()


def _log(run_dir: Path, one_schema: bool = True) -> dict[str, Any]:
    """Every Parquet row of a run in trial order (unstable columns dropped), and the metadata
    (with ``one_schema``, asserted the same in every file)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    metadata: dict[str, str] = {}
    for part in sorted((run_dir / "trials").glob("*.parquet")):
        table = pq.read_table(part)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        assert not one_schema or not metadata or meta == metadata, part
        metadata = meta
        rows += [{k: v for k, v in row.items() if k not in UNSTABLE_COLUMNS}
                 for row in table.to_pylist()]
    rows.sort(key=lambda r: r["trial"])
    return {"metadata": metadata, "rows": rows}


def _search(name: str, work: Path) -> dict[str, Any]:
    experiment, trials = SEARCHES[name]
    run_dir = work / name
    _cli(["search", str(REPO / "experiments" / experiment), "--trials", str(trials),
          "--out", str(run_dir), "--json"])
    front = json.loads(_cli(["pareto", str(run_dir), "--format", "json"]))
    return {"log": _log(run_dir), "pareto": _stable(front)}


def _stable(doc: Any) -> Any:
    """``doc`` without the unstable columns, wherever they sit."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in UNSTABLE_COLUMNS}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def outputs(name: str, work: Path) -> str:
    """The golden text of output ``name`` (run directories go under ``work``)."""
    if name in EVALUATE:
        text = _cli(["evaluate", *EVALUATE[name], "--json"])
    elif name in VALIDATE:
        text = _cli(["validate", *VALIDATE[name], "--json"])
    else:
        doc = _search(name, work)
        text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
        text = text.replace(str(work), "<work>")
    return text


NAMES = [*EVALUATE, *VALIDATE, *SEARCHES]


@pytest.mark.parametrize("name", NAMES)
def test_output_is_unchanged(name: str, tmp_path: Path) -> None:
    golden = GOLDEN / f"{name}.json"
    assert golden.is_file(), f"{golden} missing: python tests/test_layout_golden.py --write"
    got = outputs(name, tmp_path)
    want = golden.read_text()
    if got != want:  # the first differing line, readable
        for i, (a, b) in enumerate(zip(got.splitlines(), want.splitlines(), strict=False)):
            assert a == b, f"{name}: line {i + 1} differs"
    assert got == want, f"{name}: lengths {len(got)} vs {len(want)}"


def test_golden_runs_are_seeded() -> None:
    """The pinned searches are deterministic only because their experiments fix a seed."""
    import tomllib

    for experiment, _ in SEARCHES.values():
        doc = tomllib.loads((REPO / "experiments" / experiment).read_text())
        assert isinstance(doc["search"]["seed"], int), experiment


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in NAMES:
            (GOLDEN / f"{n}.json").write_text(outputs(n, Path(tmp)))
            print(n, (GOLDEN / f"{n}.json").stat().st_size, "bytes")
    shutil.rmtree(Path(tmp), ignore_errors=True)


def test_a_run_written_before_the_move_resumes(tmp_path: Path) -> None:
    """``tests/data/run_before_move.tar.gz``: a quickstart run of 32 trials written by the code
    before issue 14's move (flat modules). Its fingerprint is the one the code computes now, and
    it resumes to 64 trials with every trial in the Parquet log."""
    import tarfile

    from codesign.search.experiment import load_experiment

    with tarfile.open(REPO / "tests" / "data" / "run_before_move.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    run_dir = tmp_path / "oldrun"
    stored = json.loads((run_dir / "run.json").read_text())["fingerprint"]
    assert stored == load_experiment(REPO / "experiments" / "quickstart.toml").fingerprint()
    assert stored == load_experiment(run_dir / "experiment.toml").fingerprint()
    doc = json.loads(_cli(["resume", str(run_dir), "--trials", "32", "--json"]))
    assert doc["trials_total_complete"] == 64
    # the log grew columns since (issue 15's metrics): the old files keep their schema, the
    # readers take the union (load_run, pareto, duckdb's union_by_name)
    assert len(_log(run_dir, one_schema=False)["rows"]) == 64
    import codesign

    assert len(codesign.load_run(run_dir).trials) == 64
    assert json.loads((run_dir / "run.json").read_text())["fingerprint"] == stored
