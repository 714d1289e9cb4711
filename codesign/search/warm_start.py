"""Warm start from another study: the Pareto front of a finished run, projected into this
experiment's search space, queued as the first trials (``codesign search --warm-start RUN``).

The typical use is a larger space seeded by a smaller one: the front of single-chip serving
designs (``serving_disaggregated_llama70b``) starts the joint search of a prefill chip and a
decode chip (``serving_heterogeneous_llama70b``), each single chip entering as the pair of
itself (a ``decode_*`` parameter the other run lacks takes its plain value), so the joint
study begins at least as good as the one it extends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.search.experiment import Experiment, load_experiment
from codesign.search.parquet_log import read_file
from codesign.search.space import base_design, project_params

MAX_WARM_START = 256
"""At most this many designs of a front are queued (evenly spaced along its first
objective): a front of thousands would otherwise fill the whole budget."""

_EXPECTED = ("a run directory with a Pareto snapshot (RUN/experiment.toml, "
             "RUN/pareto/front-*.parquet)")


def warm_start_params(exp: Experiment, run_dir: str | os.PathLike[str],
                      limit: int = MAX_WARM_START) -> list[tuple[dict[str, Any], str]]:
    """The feasible designs of ``run_dir``'s latest Pareto snapshot as ``(params, tag)``:
    each the other run's full design (its base and its trial's parameters) moved into
    ``exp``'s space (:func:`~codesign.search.space.project_params`), without duplicates, at
    most ``limit``; ``tag`` is ``"<other experiment>#<trial>"``.

    Raises:
        ConfigError: ``--warm-start`` is not a run directory with a snapshot (exit 2).
    """
    path = Path(run_dir)
    fronts = sorted((path / "pareto").glob("front-*.parquet")) if path.is_dir() else []
    if not (path / "experiment.toml").is_file() or not fronts:
        raise ConfigError(None, "--warm-start", _EXPECTED, str(path))
    other = load_experiment(path / "experiment.toml")
    try:
        table = read_file(fronts[-1])
    except Exception as exc:  # a damaged snapshot: say which
        raise ConfigError(None, "--warm-start", f"{_EXPECTED}; {fronts[-1]} is unreadable "
                          f"({type(exc).__name__}: {exc})", str(path)) from None
    rows = [r for r in table.to_pylist() if r.get("feasible") and r.get("constraints_ok")]
    first = f"value_{other.objectives[0].metric}"
    rows.sort(key=lambda r: r.get(first) if isinstance(r.get(first), float) else 0.0)
    if len(rows) > limit:
        rows = [rows[round(i * (len(rows) - 1) / max(limit - 1, 1))] for i in range(limit)]
    base = base_design(other)
    out, seen = [], set()
    for r in rows:
        design = base | {k[len("param_"):]: v for k, v in r.items() if k.startswith("param_")}
        params = project_params(exp.space, design)
        key = tuple(sorted(params.items()))
        if key not in seen:
            seen.add(key)
            out.append((params, f"{other.name}#{r['trial']}"))
    return out
