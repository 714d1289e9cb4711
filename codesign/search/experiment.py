"""Strict TOML -> typed config: search spaces and experiments.

Every problem with a file is a :class:`~codesign.errors.ConfigError` naming the file, the key
path, what was expected and what was got; unknown keys are rejected (with a "did you mean"
hint), ``true`` is not an integer, integers are accepted where a number is expected.
The file reader and the typed getters that enforce this are in
:mod:`codesign.search.toml_checks`; this module assembles the config types from them.

Example:
    >>> from codesign.search.experiment import load_experiment
    >>> exp = load_experiment("experiments/quickstart.toml")  # doctest: +SKIP
    >>> exp.objectives[0].metric, exp.space.params[0].name  # doctest: +SKIP
    ('tokens_per_s', 'compute_units')
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.model import catalog, tech
from codesign.model.metrics import DIRECTIONS, INFER_ONLY, METRICS, TRAFFIC_ONLY, TRAIN_ONLY
from codesign.model.specs import InferJob, TrainJob
from codesign.search.design import (
    CLUSTER_EXTRA,
    CLUSTER_PARAMETERS,
    DEFAULT_DESIGN,
    DESIGN_PARAMETERS,
    NEUTRAL_VALUES,
    SPACE_PARAMETERS,
)
from codesign.search.percentile_names import BAND_METRICS, parse_percentile
from codesign.search.toml_checks import (
    _MISSING,
    _check,
    _check_design,
    _one_of,
    _Plain,
    _read,
    _sha256,
    _Table,
)
from codesign.search.traffic_file import (  # noqa: F401 - re-exported
    POOLS,
    TRAFFIC_KEYS,
    _check_decode_pool,
    _traffic,
    check_prefill_chips,
)
from codesign.search.workload_file import (  # noqa: F401 - re-exported
    MAX_BATCH,
    MAX_TOKENS,
    _workload,
    load_workload,
)

SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random")
"""Values of ``[search] sampler``."""

STORAGE_PREFIXES = ("sqlite:///", "postgresql://", "postgresql+psycopg://",
                    "postgresql+psycopg2://", "mysql://",
                    "mysql+pymysql://")
JOURNAL_SUFFIXES = (".log", ".journal")
"""``[storage] url`` is a database URL with one of these prefixes or a journal file path."""

MAX_GRID_POINTS = 1_000_000
"""Most values a float parameter's ``step`` may put between ``low`` and ``high``."""


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PASSWORD_RE = re.compile(r"(://[^/@:]*):[^/@]*@|[?&]password=", re.IGNORECASE)


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ParamSpec:
    """One searched design parameter (units are those of ``DESIGN_PARAMETERS[name]``).

    ``kind`` is ``"int"``, ``"float"`` (``low``/``high``/``step``/``log`` as in Optuna's
    ``suggest_int``/``suggest_float``; ``step`` is 1 for ints, ``None`` = continuous for
    floats) or ``"categorical"`` (``choices``).
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class SearchSpace:
    """A search space file: which design parameters are searched, and fixed values for the rest.

    ``base`` is a full design: :data:`~codesign.search.design.DEFAULT_DESIGN` updated by ``[base]``
    (float parameters stored as floats). Searched parameters keep their default in ``base``.
    """

    name: str
    path: str
    params: tuple[ParamSpec, ...]
    base: dict[str, Any]

    def fingerprint(self) -> str:
        """sha256 hex of the params (by name) and base; the name and path do not count, nor
        a later parameter left at its neutral value
        (:data:`~codesign.search.design.NEUTRAL_VALUES`)."""
        params = sorted((asdict(p) for p in self.params), key=lambda p: p["name"])
        base = {k: v for k, v in self.base.items()
                if not (k in NEUTRAL_VALUES and v == NEUTRAL_VALUES[k])}
        return _sha256({"params": params, "base": base})


@dataclass(frozen=True)
class Objective:
    """Optimise ``metric`` (a :data:`~codesign.model.metrics.METRICS` name) in ``direction``."""

    metric: str
    direction: str  # "maximize" | "minimize"


@dataclass(frozen=True)
class Constraint:
    """Feasible when ``min <= metric <= max`` (``None`` = unbounded), in the metric's unit."""

    metric: str
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Experiment:
    """An experiment file: workload, search space, objectives, constraints, budget.

    ``cluster`` holds the ``[cluster]`` values as given (``n_chips`` in chips,
    ``*_latency_us`` in microseconds, ``host_power_w_per_chip`` in watts, ``pue`` and
    ``oversubscription`` as ratios); ``text`` is the file as read, ``storage_url`` ``None``
    means the embedded journal of the run directory.
    """

    path: str
    text: str
    name: str
    description: str
    space: SearchSpace
    job: TrainJob | InferJob
    cluster: dict[str, Any]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    trials: int = 100
    sampler: str = "nsga2"
    seed: int = 0
    population: int = 32
    storage_url: str | None = None
    baselines: tuple[str, ...] = ()
    """Reference chips by name: catalog ids, and the names (file stems) of chip or design
    files (:attr:`baseline_files`)."""
    prices: tech.Prices = tech.PRICES  # [tco]: capex, amortisation, energy price
    traffic: Any = None
    """``[traffic]`` (serving): a :class:`~codesign.model.serving.Traffic`, or None."""
    pools: str = "both"
    """``[traffic] pools``: "one", "disaggregated" or "both"."""
    uncertainty_draws: int = 64
    """``[uncertainty] draws``: paired draws per design behind a percentile objective or
    constraint (``tokens_per_joule@p10``, :mod:`codesign.search.uncertainty`)."""
    baseline_files: dict[str, str] = field(default_factory=dict)
    """Baselines given as files: name (the file's stem) -> absolute path of a spec-sheet chip
    TOML or a design file (``codesign export-design``)."""

    def chip_ref(self, name: str) -> str:
        """What a baseline name stands for: its file's path, or the catalog id itself."""
        return self.baseline_files.get(name, name)

    def percentile_metrics(self) -> tuple[str, ...]:
        """The ``metric@pNN`` names among the objectives and constraints."""
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        return tuple(dict.fromkeys(n for n in names if "@p" in n))

    def fingerprint(self) -> str:
        """sha256 hex of what defines the problem: space, workload, objectives, constraints,
        cluster. Budget, seed, sampler and storage do not count (they may change on resume)."""
        return _sha256({
            "space": self.space.fingerprint(),
            "workload": asdict(self.job),
            "objectives": [[o.metric, o.direction] for o in self.objectives],
            "constraints": [[c.metric, c.min, c.max] for c in self.constraints],
            "cluster": self.cluster,
            "tco": asdict(self.prices),
            # only when given: the fingerprints of experiments without it stay as they were
            **({"traffic": [asdict(self.traffic), self.pools]} if self.traffic else {}),
            **({"uncertainty_draws": self.uncertainty_draws}
               if self.percentile_metrics() else {}),
        })


# --------------------------------------------------------------------------- search spaces


def load_search_space(path: str | os.PathLike[str]) -> SearchSpace:
    """Read a search space file (``[space]``, optional ``[base]``, ``[params.NAME]`` tables).

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    return _load_space(path)[0]


def _load_space(path: str | os.PathLike[str]) -> tuple[SearchSpace, frozenset[str]]:
    """The search space and the names set explicitly in ``[base]``."""
    _, doc = _read(path)
    doc.only(("space", "base", "params"))
    head = doc.table("space")
    head.only(("name", "description"))
    name = head.get("name", "str")
    head.get("description", "str", default="")

    base_t = doc.table("base", required=False)
    base_t.only(SPACE_PARAMETERS)
    fixed = {k: _check_design(doc.file, base_t.at(k), k, v) for k, v in base_t.data.items()}

    params_t = doc.table("params")
    params_t.only(SPACE_PARAMETERS)
    if not params_t.data:
        raise doc.error("params", "at least one [params.NAME] table", params_t.data)
    params = []
    for pname in params_t.data:
        if pname in fixed:
            raise params_t.error(pname, "each parameter in [base] or [params], not both",
                                 _Plain(f"also in [base] ({pname} = {fixed[pname]!r})"))
        params.append(_param(params_t.table(pname), pname))

    defaults = {k: float(v) if DESIGN_PARAMETERS[k].kind == "float" else v
                for k, v in DEFAULT_DESIGN.items()}
    space = SearchSpace(name, str(path), tuple(params), defaults | fixed)
    return space, frozenset(fixed)


def _param(t: _Table, name: str) -> ParamSpec:
    info = SPACE_PARAMETERS[name]
    if info.choices is not None or info.kind == "str":
        types, note = ("categorical",), f" ({name} takes {_one_of(info.choices or ())})"
    elif info.kind == "int":
        types, note = ("int", "categorical"), f" ({name} is an integer parameter)"
    else:
        types, note = ("int", "float", "categorical"), ""
    kind = t.get("type", "str", choices=types, expected=_one_of(types) + note)

    if kind == "categorical":
        t.only(("type", "choices"))
        items = t.get("choices", "list", expected="a non-empty array of values")
        if not items:
            raise t.error("choices", "a non-empty array of values", items)
        choices = tuple(_check_design(t.file, t.at(f"choices[{i}]"), name, v)
                        for i, v in enumerate(items))
        return ParamSpec(name, kind, choices=t.unique("choices", choices))

    t.only(("type", "low", "high", "step", "log"))
    low = t.get("low", kind, low=info.low, high=info.high)
    high = t.get("high", kind, low=info.low, high=info.high)
    if low > high:
        raise ConfigError(t.file, t.path, "`low <= high` must hold",
                          _Plain(f"(low={low}, high={high})"))
    log = t.get("log", "bool", default=False)
    if log and low <= 0:
        raise t.error("low", "a value > 0 when log = true", low)
    if log and "step" in t.data:
        raise t.error("step", "no step when log = true", t.data["step"])
    step = t.get("step", kind, default=1 if kind == "int" else None, low=0, low_open=True)
    if step is not None and high > low:
        _check_step(t, kind, low, high, step)
    return ParamSpec(name, kind, low, high, step, log)


def _check_step(t: _Table, kind: str, low: float, high: float, step: float) -> None:
    """A ``step`` that puts at least two and at most :data:`MAX_GRID_POINTS` values on the
    grid from ``low`` to ``high`` (1e-300 would make the sampler's grid unbounded)."""
    span = high - low
    if kind == "int":
        if step > span:
            raise t.error("step", f"an integer in [1, {span}] (the distance from low to high)",
                          step)
        return
    smallest = span / MAX_GRID_POINTS
    if not smallest <= step <= span:
        raise t.error("step", f"a number in [{smallest:g}, {span:g}] (at most "
                              f"{MAX_GRID_POINTS:,} grid points between low and high; leave "
                              "step out for a continuous range)", step)


# --------------------------------------------------------------------------- experiments


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read an experiment file and the search space it points to.

    Raises:
        ConfigError: on any problem in either file, naming file, key path, expected and got.
    """
    text, doc = _read(path)
    doc.only(("experiment", "workload", "cluster", "objectives", "constraints", "budget",
              "search", "storage", "tco", "traffic", "uncertainty"))

    head = doc.table("experiment")
    head.only(("name", "description", "search_space", "baselines"))
    name = head.get("name", "str")
    if not _NAME_RE.fullmatch(name):
        raise head.error("name", "letters, digits, '_', '.' or '-', starting with a letter or "
                                 "digit (it becomes a directory name)", name)
    description = head.get("description", "str", default="")
    space_rel = head.get("search_space", "str")
    space_path = Path(doc.file).parent / space_rel
    if not space_path.is_file():
        raise head.error("search_space", f"a search space file (relative to {space_path.parent})",
                         space_rel)
    space, fixed = _load_space(space_path)
    baselines, baseline_files = _baselines(head)

    job = _workload(doc.table("workload"))
    cluster = _cluster(doc.table("cluster", required=False), space, fixed)
    traffic, pools = _traffic(doc.table("traffic", required=False), job)
    if "n_chips" not in {p.name for p in space.params}:
        check_prefill_chips(doc.table("traffic", required=False), traffic,
                            cluster.get("n_chips", space.base.get("n_chips"))
                            if "power_budget_mw" not in cluster else None)
    _check_decode_pool(doc, space, traffic, pools)
    # metrics that exist for this workload kind (and, serving, with its [traffic]) only
    kind_metrics = [m for m in METRICS
                    if m not in (INFER_ONLY if isinstance(job, TrainJob) else TRAIN_ONLY)
                    and (traffic is not None or m not in TRAFFIC_ONLY)]

    # metric@pNN: a percentile of a metric the uncertainty draws cover (a robust objective)
    banded = [m for m in BAND_METRICS if m in kind_metrics]
    for table_name in ("objectives", "constraints"):
        kind_metrics += [k for k in doc.table(table_name, required=False).data
                         if (pm := parse_percentile(k)) is not None and pm[0] in banded
                         and 1 <= pm[1] <= 99 and k not in kind_metrics]
    obj_t = doc.table("objectives")
    obj_t.only(kind_metrics)
    if not obj_t.data:
        raise doc.error("objectives", 'at least one entry metric = "maximize" or "minimize"', {})
    objectives = tuple(Objective(m, obj_t.get(m, "str", choices=DIRECTIONS)) for m in obj_t.data)

    con_t = doc.table("constraints", required=False)
    con_t.only(kind_metrics)
    constraints = tuple(_constraint(con_t, m) for m in con_t.data)
    if isinstance(job, TrainJob) and job.train_tokens is None:
        needs_tokens = ("cost_per_run_usd", "train_days", "goodput_train_days")
        for table in (obj_t, con_t):
            for metric in table.data:
                base = (parse_percentile(metric) or (metric,))[0]
                if base in needs_tokens:
                    raise table.error(metric, "workload.train_tokens set (a training run takes "
                                      "its tokens / tokens_per_s, and costs that x the cost "
                                      "per s)", _Plain("no workload.train_tokens"))

    unc = doc.table("uncertainty", required=False)
    unc.only(("draws",))
    budget = doc.table("budget", required=False)
    budget.only(("trials",))
    search = doc.table("search", required=False)
    search.only(("sampler", "seed", "population"))
    storage = doc.table("storage", required=False)
    storage.only(("url",))
    tco = doc.table("tco", required=False)
    price_keys = [f.name for f in fields(tech.Prices)]
    tco.only(price_keys)
    prices = replace(tech.PRICES, **{k: tco.get(k, "float", low=0.0, low_open=True)
                                     for k in tco.data})

    return Experiment(
        path=doc.file, text=text, name=name, description=description, space=space, job=job,
        cluster=cluster, objectives=objectives, constraints=constraints,
        trials=budget.get("trials", "int", default=100, low=1),
        sampler=search.get("sampler", "str", default="nsga2", choices=SAMPLERS),
        seed=search.get("seed", "int", default=0, low=0, high=2**32 - 1),
        population=search.get("population", "int", default=32, low=2),
        storage_url=_storage_url(storage),
        baselines=baselines,
        baseline_files=baseline_files,
        prices=prices,
        traffic=traffic,
        pools=pools,
        uncertainty_draws=unc.get("draws", "int", default=64, low=1, high=4096),
    )


def _baselines(head: _Table) -> tuple[tuple[str, ...], dict[str, str]]:
    """``baselines``: catalog chip ids, or paths (relative to the experiment's folder) of
    chip TOML files, a spec sheet or a design file, each named by its stem. Returns (names,
    {name: absolute path})."""
    from codesign.search.chip_file import resolve_chip

    chip_ids = catalog.chip_ids()
    names: list[str] = []
    files: dict[str, str] = {}
    expected = ("a catalog chip id or a chip TOML file (a [chip] spec sheet or a [design] "
                f"file, relative to {Path(head.file).parent}); ids: {_one_of(chip_ids)}")
    for i, v in enumerate(head.get("baselines", "list", default=[])):
        key = head.at(f"baselines[{i}]")
        ref = _check(head.file, key, v, "str", expected=expected)
        if not ref.endswith(".toml"):
            names.append(_check(head.file, key, ref, "str", choices=chip_ids, expected=expected))
            continue
        path = (Path(head.file).parent / ref).resolve()
        name = path.stem
        if not path.is_file():
            raise ConfigError(head.file, key, expected, ref)
        if name in chip_ids or name in names:
            raise ConfigError(head.file, key, "a file whose name (its stem) is neither a catalog "
                              "chip id nor another baseline's", ref)
        resolve_chip(str(path), key)  # the file's own errors name it
        names.append(name)
        files[name] = str(path)
    return head.unique("baselines", tuple(names)), files


def _cluster(t: _Table, space: SearchSpace, fixed: frozenset[str]) -> dict[str, Any]:
    t.only((*CLUSTER_PARAMETERS, *CLUSTER_EXTRA))
    searched = {p.name for p in space.params}
    cluster = {}
    for key, value in t.data.items():
        if key in searched or key in fixed:
            where = "searches" if key in searched else "fixes it in [base]"
            raise t.error(key, f"no value here: the search space ({space.path}) {where}", value)
        if key in DESIGN_PARAMETERS:
            cluster[key] = _check_design(t.file, t.at(key), key, value)
        elif key == "job_chips":
            cluster[key] = t.get(key, "int", low=1)
        else:
            cluster[key] = t.get(key, "float", low=0)
    if "site_mw" in cluster and "power_budget_mw" not in cluster:
        raise t.error("site_mw", "a site size together with power_budget_mw (the budget is "
                                 "split over sites of site_mw)", cluster["site_mw"])
    if cluster.get("site_mw", 1.0) <= 0:
        raise t.error("site_mw", "a number > 0 (MW)", cluster["site_mw"])
    if "power_budget_mw" in cluster:
        if cluster["power_budget_mw"] <= 0:
            raise t.error("power_budget_mw", "a number > 0 (MW)", cluster["power_budget_mw"])
        if "n_chips" in cluster or "n_chips" in searched | fixed:
            raise t.error("power_budget_mw", "either power_budget_mw or n_chips (the budget "
                                             "sets the chip count)", cluster["power_budget_mw"])
        return cluster
    if "n_chips" not in cluster and "n_chips" not in searched | fixed:
        info = DESIGN_PARAMETERS["n_chips"]
        raise t.error("n_chips", f"an integer in [{info.low}, {info.high}] (required here unless "
                                 "the search space sets n_chips)", _MISSING)
    return cluster


def _constraint(t: _Table, metric: str) -> Constraint:
    c = t.table(metric, expected="a table like { min = 0, max = 1 }")
    c.only(("min", "max"))
    # every metric is >= 0: a negative min bounds nothing, a max <= 0 rules out every design
    low = c.get("min", "float", default=None, low=0.0)
    high = c.get("max", "float", default=None, low=0.0, low_open=True)
    if low is None and high is None:
        raise t.error(metric, "at least one of min, max", c.data)
    if low is not None and high is not None and low > high:
        raise t.error(metric, "`min <= max` must hold", _Plain(f"(min={low}, max={high})"))
    return Constraint(metric, low, high)


def _storage_url(t: _Table) -> str | None:
    url = t.get("url", "str", default=None)
    if url is None:
        return None
    if _PASSWORD_RE.search(url):
        redacted = re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)
        redacted = re.sub(r"([?&]password=)[^&]*", r"\1***", redacted, flags=re.IGNORECASE)
        raise t.error("url", "no password in the file (use --storage or CODESIGN_STORAGE_URL)",
                      _Plain(redacted))
    if not (url.startswith(STORAGE_PREFIXES) or url.endswith(JOURNAL_SUFFIXES)):
        raise t.error("url", f"a URL starting with {', '.join(STORAGE_PREFIXES)} or a journal "
                             f"file path ending in {' or '.join(JOURNAL_SUFFIXES)}", url)
    return url
