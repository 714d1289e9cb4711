"""Design files: one design of a run written out (``codesign export-design``) and read back
(``codesign evaluate --chip FILE.toml``, experiment baselines).

A design file is TOML with a ``[design]`` table (the chip's design parameters, units as in
:data:`~codesign.search.design.DESIGN_PARAMETERS`) and, when exported from a run, the rest of
what its metrics depend on:

* ``[cluster]``: the cluster design parameters (``n_chips``, ``topology``, ``pue``, spares,
  checkpoints, ...) and the experiment's other cluster keys (latencies, host power, power
  budget), as in an experiment's ``[cluster]``;
* ``[workload]``: the experiment's workload, as in an experiment (a model from a
  ``config.json`` is written inline, so the file stands alone);
* ``[tco]``: the experiment's prices where they differ from the defaults.

``codesign evaluate --chip FILE.toml`` then evaluates the design on that cluster and workload
exactly as the search did (the same metrics, a test); ``--workload`` and the cluster flags
override the file's. A file with ``[design]`` only is a chip alone, as before.

Example::

    codesign export-design runs/quickstart 42 -o trial42.toml
    codesign evaluate --chip trial42.toml
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.model import tech
from codesign.model.specs import InferJob, ModelSpec, TrainJob
from codesign.search.atomic import atomic_file
from codesign.search.design import (
    CLUSTER_EXTRA,
    CLUSTER_PARAMETERS,
    DEFAULT_DESIGN,
    DESIGN_PARAMETERS,
)
from codesign.search.toml_checks import _check_design, _one_of, _Plain, _read, _suggest, _Table
from codesign.search.workload_file import _workload

TABLES = ("design", "cluster", "workload", "tco")
"""Top-level tables of a design file."""


@dataclass
class DesignFile:
    """A design file as read: ``design`` (every design parameter: the file's chip ones over
    :data:`DEFAULT_DESIGN`, its cluster ones on top), ``cluster`` (the ``[cluster]`` design
    parameters given; None without a ``[cluster]`` table), ``extra`` (the other cluster keys),
    ``job`` (the ``[workload]``, None without one) and ``prices`` (``[tco]`` over the defaults,
    None without one)."""

    path: str
    design: dict[str, Any]
    cluster: dict[str, Any] | None
    extra: dict[str, Any]
    job: TrainJob | InferJob | None
    prices: tech.Prices | None


def is_design_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a TOML file (a chip, design or workload file by its tables)."""
    return str(path).endswith(".toml")


def load_design(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A chip design file: a ``[design]`` table of chip design parameters (units as in
    :data:`~codesign.search.design.DESIGN_PARAMETERS`; the cluster ones, ``n_chips``, ``topology``,
    ``oversubscription``, ``pue``, are not a chip's and are refused); unset ones take
    :data:`DEFAULT_DESIGN`.

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    _, root = _read(path)
    root.only(("design",))
    return load_design_table(root.table("design"))


def load_design_table(t: _Table) -> dict[str, Any]:
    """A ``[design]`` table (see :func:`load_design`) over :data:`DEFAULT_DESIGN`.

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    chip_keys = [k for k in DESIGN_PARAMETERS if k not in CLUSTER_PARAMETERS]
    for key in t.data:
        if key not in chip_keys:
            note = (" (the cluster is not part of a chip file: use --n-chips, --topology, "
                    "--oversubscription)" if key in CLUSTER_PARAMETERS
                    else _suggest(key, chip_keys))
            raise t.error(key, f"a chip parameter ({_one_of(chip_keys)}){note}",
                          _Plain(f"unknown key {key!r}"))
    design = dict(DEFAULT_DESIGN)
    design.update({k: _check_design(t.file, t.at(k), k, v) for k, v in t.data.items()})
    return design


def load_design_file(path: str | os.PathLike[str]) -> DesignFile:
    """Read a design file (see the module text).

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    _, root = _read(path)
    root.only(TABLES)
    design = load_design_table(root.table("design"))
    cluster: dict[str, Any] | None = None
    extra: dict[str, Any] = {}
    if "cluster" in root.data:
        t = root.table("cluster")
        t.only((*CLUSTER_PARAMETERS, *CLUSTER_EXTRA))
        cluster = {}
        for key, value in t.data.items():
            if key in DESIGN_PARAMETERS:
                cluster[key] = _check_design(t.file, t.at(key), key, value)
            elif key == "job_chips":
                extra[key] = t.get(key, "int", low=1)
            elif key in ("power_budget_mw", "site_mw"):
                extra[key] = t.get(key, "float", low=0.0, low_open=True)
            else:
                extra[key] = t.get(key, "float", low=0.0)
        if "site_mw" in extra and "power_budget_mw" not in extra:  # the experiment's rules
            raise t.error("site_mw", "a site size together with power_budget_mw (the budget is "
                          "split over sites of site_mw)", extra["site_mw"])
        if "power_budget_mw" in extra and "n_chips" in cluster:
            raise t.error("power_budget_mw", "either power_budget_mw or n_chips (the budget "
                          "sets the chip count)", extra["power_budget_mw"])
        design.update(cluster)
    job = _workload(root.table("workload")) if "workload" in root.data else None
    prices = None
    if "tco" in root.data:
        t = root.table("tco")
        keys = [f.name for f in fields(tech.Prices)]
        t.only(keys)
        from dataclasses import replace

        prices = replace(tech.PRICES, **{k: t.get(k, "float", low=0.0, low_open=True)
                                         for k in t.data})
    return DesignFile(str(path), design, cluster, extra, job, prices)


# --------------------------------------------------------------------------- writing


def _value(v: Any) -> str:
    """One TOML value (str, bool, int, float; NaN and infinities refused)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"no TOML for {v!r}")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ValueError(f"no TOML for {type(v).__name__} {v!r}")


def _table(name: str, data: dict[str, Any], notes: dict[str, str] | None = None) -> list[str]:
    """``[name]`` with one ``key = value`` line per entry of ``data`` (a sub-table of plain
    values as ``[name.key]`` after them); ``notes``: a comment after a key's line."""
    lines = [f"[{name}]"]
    subs = []
    for k, v in data.items():
        if isinstance(v, dict):
            subs.append((k, v))
            continue
        note = (notes or {}).get(k)
        lines.append(f"{k} = {_value(v)}" + (f"  # {note}" if note else ""))
    for k, v in subs:
        lines += ["", *_table(f"{name}.{k}", v)]
    return lines


def model_table(model: ModelSpec) -> dict[str, Any]:
    """An inline ``[workload.model]`` table of ``model`` (every field; reads back equal)."""
    return dict(asdict(model))


def workload_table(job: TrainJob | InferJob) -> dict[str, Any]:
    """The ``[workload]`` table of ``job`` (its model inline), which
    :func:`~codesign.search.workload_file._workload` reads back to an equal job."""
    if isinstance(job, InferJob):
        out: dict[str, Any] = {"kind": "infer", "input_len": job.input_len,
                               "output_len": float(job.output_len)}
        optional = {"concurrency": job.concurrency, "kv_precision": job.kv_precision,
                    "ttft_slo_s": job.ttft_slo_s, "itl_slo_s": job.itl_slo_s}
        out |= {k: v for k, v in optional.items() if v is not None}
        out |= {"precision": job.precision, "moe_imbalance": float(job.moe_imbalance)}
    else:
        out = {"kind": "train", "seq_len": job.seq_len, "global_batch": job.global_batch,
               "precision": job.precision, "attention": job.attention,
               "moe_imbalance": float(job.moe_imbalance)}
        if job.train_tokens is not None:
            out["train_tokens"] = float(job.train_tokens)
    out["model"] = model_table(job.model)
    return out


def design_text(design: dict[str, Any], extra: dict[str, Any], job: TrainJob | InferJob,
                prices: tech.Prices, header: list[str]) -> str:
    """The text of a design file: ``header`` (comment lines), ``[design]`` (the chip's design
    parameters, each with its unit), ``[cluster]`` (the cluster's and ``extra``),
    ``[workload]`` (``job``, its model inline) and ``[tco]`` (``prices`` that differ from the
    defaults)."""
    chip = {k: design.get(k, DEFAULT_DESIGN[k]) for k in DESIGN_PARAMETERS
            if k not in CLUSTER_PARAMETERS and k in DEFAULT_DESIGN}
    units = {k: DESIGN_PARAMETERS[k].unit for k in chip if DESIGN_PARAMETERS[k].unit}
    cluster = {k: design.get(k, DEFAULT_DESIGN[k]) for k in CLUSTER_PARAMETERS
               if not (k == "n_chips" and "power_budget_mw" in extra)}  # the budget sizes it
    cluster |= {k: v for k, v in extra.items() if k in CLUSTER_EXTRA}
    lines = [f"# {h}" if h else "#" for h in header]
    lines += ["", *_table("design", chip, units), "", *_table("cluster", cluster), "",
              *_table("workload", workload_table(job))]
    changed = {k: v for k, v in asdict(prices).items() if asdict(tech.PRICES)[k] != v}
    if changed:
        lines += ["", *_table("tco", changed)]
    return "\n".join(lines) + "\n"


def write_design_file(path: str | os.PathLike[str], text: str, force: bool = False) -> Path:
    """Write ``text`` to ``path`` (atomically: a temporary file renamed); an existing file
    is kept unless ``force`` (a ConfigError naming it)."""
    out = Path(path)
    if out.exists() and not force:
        raise ConfigError(None, "-o", "a path that does not exist yet (or --force to replace it)",
                          _Plain(f"{out} exists"))
    if not out.parent.is_dir():
        raise ConfigError(None, "-o", "a path in an existing folder",
                          _Plain(f"no folder {out.parent}"))
    try:
        with atomic_file(out, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(None, "-o", "a writable path", _Plain(exc.strerror or str(exc))) \
            from None
    return out



# --------------------------------------------------------------------------- evaluating

_FLAG_KEYS = ("n_chips", "topology", "scaleup_fabric", "chips_per_rack", "scaleout_ports",
              "cooling", "host_cpu", "chips_per_host")
"""``codesign evaluate`` flags (same names) that override a design file's ``[cluster]``."""
_FLAG_EXTRA = ("power_budget_mw", "site_mw", "job_chips")


def file_cluster(dfile: DesignFile, req: Any) -> Any:
    """The cluster of a design file with a ``[cluster]`` table, built as the search builds
    it (:func:`~codesign.search.design.design_to_cluster`), the cluster flags of ``req``
    (an :class:`~codesign.search.request.EvaluateRequest`) given over the file's values
    (``--oversubscription`` only when not 1, its default)."""
    from codesign.search.design import design_to_cluster

    design = dict(dfile.design)
    extra = dict(dfile.extra)
    design |= {k: getattr(req, k) for k in _FLAG_KEYS if getattr(req, k, None) is not None}
    if getattr(req, "oversubscription", 1.0) != 1.0:
        design["oversubscription"] = req.oversubscription
    extra |= {k: getattr(req, k) for k in _FLAG_EXTRA if getattr(req, k, None) is not None}
    if req.power_budget_mw is not None:
        design.pop("n_chips", None)
    cluster = design_to_cluster(design, extra)
    if getattr(req, "host_memory_gb", None) is not None or getattr(req, "host_link_gbs",
                                                                       None) is not None:
        from dataclasses import replace

        cluster = replace(cluster, **{f: v for f, v in (
            ("host_memory_gb_per_chip", req.host_memory_gb),
            ("host_link_gbs", req.host_link_gbs)) if v is not None})
    return cluster
