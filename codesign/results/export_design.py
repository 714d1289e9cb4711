"""``codesign export-design RUN TRIAL -o FILE.toml``: one design of a run as a design file
(:mod:`codesign.search.design_file`) that ``codesign evaluate --chip FILE.toml`` evaluates to
the metrics the search stored, and that experiments and ``--against`` take as a baseline."""

from __future__ import annotations

import os
from typing import Any

from codesign.errors import ConfigError
from codesign.model.metrics import METRICS
from codesign.search.design_file import design_text, write_design_file
from codesign.search.space import base_design, cluster_extra, design_from_params
from codesign.search.toml_checks import _Plain

SHOWN = ("tokens_per_s", "tokens_per_joule", "cost_per_mtoken_usd", "chip_power_w",
         "die_area_mm2", "chip_cost_usd")
"""Metrics the file's header records besides the objectives (as stored by the search)."""


def trial_row(run: Any, trial: int) -> dict[str, Any]:
    """The Parquet log's row of trial ``trial`` of ``run`` (a
    :class:`~codesign.results.inspect.Run`); a ConfigError naming the trial numbers there are
    when it is not logged (a trial still running, failed or pruned)."""
    from codesign.search.storage.log_state import trial_rows

    rows = trial_rows(run.path, run.experiment, [trial])
    if not rows:
        df = run.trials
        have = (f"one of the {len(df)} logged trials ({int(df['trial'].min())}.."
                f"{int(df['trial'].max())})" if len(df) else "a logged trial (the log is empty)")
        raise ConfigError(run.path, "TRIAL", f"{have}, a COMPLETE trial of the study", trial)
    return rows[-1]


def design_of(run: Any, row: dict[str, Any]) -> dict[str, Any]:
    """Every design parameter of a logged trial (a log row, or a row of ``run``'s tables):
    the run's base and ``[cluster]`` with the trial's searched parameters on top, as the
    search evaluated it (whole numbers where a table gave an int parameter as a float)."""
    from codesign.search.storage.log_state import LogTrial

    exp = run.experiment
    params = LogTrial(exp, row).params
    for p in exp.space.params:
        value = params.get(p.name)
        if p.kind == "int" and value is not None:
            params[p.name] = int(value)
    return design_from_params(base_design(exp), params)


def export_design(run_dir: str | os.PathLike[str], trial: int, out: str | os.PathLike[str],
                  force: bool = False) -> dict[str, Any]:
    """Write trial ``trial`` of the run in ``run_dir`` to ``out`` as a design file (chip,
    cluster, workload, prices). Returns ``path``, ``trial``, ``study``, ``feasible``,
    ``metrics`` (the objectives and :data:`SHOWN`, as stored), ``command`` (the evaluate
    command that reads it back) and ``notes`` (what the file does not carry).

    Raises:
        ConfigError: an unknown trial, an existing ``out`` (unless ``force``), a bad path.
    """
    from codesign.results.inspect import load_run

    run = load_run(run_dir)
    exp = run.experiment
    row = trial_row(run, trial)
    design = design_of(run, row)
    names = [o.metric for o in exp.objectives] + [m for m in SHOWN
                                                   if m not in {o.metric for o in exp.objectives}]
    metrics = {m: row.get(m) for m in names if m in row}
    notes = []
    if exp.traffic is not None:
        notes.append("the experiment's [traffic] is not part of a design file: evaluate "
                     "gives the plain serving metrics (codesign evaluate's traffic flags add "
                     "it)")
    feasible = bool(row.get("feasible"))
    header = [f"codesign export-design: trial {trial} of study {run.name} ({run.path})",
              f"experiment: {exp.name} ({exp.path})",
              "evaluate it again: codesign evaluate --chip <this file>",
              "(--workload and the cluster flags evaluate the same chip elsewhere)",
              "", "as the search stored it:"]
    header += [f"  {m} = {_fmt(v)} {METRICS.get(m, ('',))[0]}" for m, v in metrics.items()]
    if not feasible:
        header.append(f"  infeasible: {row.get('reason') or 'no mapping fits'}")
    header += [f"note: {n}" for n in notes]
    try:
        text = design_text(design, cluster_extra(exp), exp.job, exp.prices, header)
    except ValueError as exc:
        raise ConfigError(run.path, "TRIAL", "a design with finite parameters",
                          _Plain(str(exc))) from None
    path = write_design_file(out, text, force)
    return {"path": str(path), "trial": trial, "study": run.name, "feasible": feasible,
            "metrics": metrics, "command": f"codesign evaluate --chip {path}", "notes": notes}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
