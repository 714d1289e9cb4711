"""docs/config.md against the code: every key a config reader accepts is documented in the
section of its file kind, and every example the page marks (```toml KIND) loads.

The keys come from the code, not from a list written here:

* the ``.only(...)`` calls of the strict TOML readers (experiment, workload, traffic, chip and
  design files), found by parsing their source with :mod:`ast`; a literal tuple is read as
  is, a name (``SPACE_PARAMETERS``, ``_TRAIN_KEYS``, ``TRAFFIC_KEYS`` ...) is looked up in
  the module, and the few arguments built at run time (the metric names, the price fields)
  are named in :data:`DYNAMIC`;
* the typed getters ``table.get("key", kind, ...)`` of the same readers (a key read but not
  listed by ``.only`` would still have to be documented);
* the constants no ``.only`` call lists: ``CHIP_KEYS``, the chip design parameters of a
  ``[design]`` table, ``METRICS``, the cases CSV columns;
* the keys ``hf_config`` reads from a ``config.json`` (its ``c.integer`` / ``c.flag`` /
  ``c.data.get`` / ``c.error`` calls) and its layouts.

Which table a call reads is found from its receiver: a variable assigned from
``x.table("name")``, the top level of ``_read(...)``, or a ``_Table`` parameter of a function
named in :data:`PARAM_TABLES`. A reader function or ``.only`` argument this file cannot place
fails the test, naming it, so a new key set cannot slip past unseen.
"""

from __future__ import annotations

import ast
import csv
import importlib
import inspect
import re
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from codesign.model import tech
from codesign.model.metrics import INFER_ONLY, METRICS, TRAFFIC_ONLY, TRAIN_ONLY
from codesign.search import hf_config
from codesign.search.chip_file import CHIP_KEYS, REQUIRED
from codesign.search.design import (
    CLUSTER_PARAMETERS,
    DECODE_PARAMETERS,
    DEFAULT_DESIGN,
    DESIGN_PARAMETERS,
)
from codesign.search.traffic_file import TRAFFIC_KEYS
from codesign.search.uncertainty import BAND_METRICS
from codesign.search.workload_file import _INFER_KEYS, _TRAIN_KEYS
from codesign.validate import serving as serving_cases
from codesign.validate.cases import COLUMNS

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "config.md"

SECTIONS = {
    "experiment": "Experiment files",
    "metrics": "Metric names",
    "space": "Search-space files",
    "workload": "Workload files",
    "chip": "Chip files",
    "design": "Design files",
    "cases": "Cases CSV files",
}
"""File kind -> the start of its ``## `` heading in docs/config.md."""

READERS: dict[str, tuple[str | None, dict[str, str]]] = {
    # module: (section of every function, {function: section} where they differ)
    "codesign.search.experiment": (None, {
        "_load_space": "space", "load_search_space": "space", "_param": "space",
        "_check_step": "space", "load_experiment": "experiment", "_cluster": "experiment",
        "_constraint": "experiment", "_storage_url": "experiment", "_baselines": "experiment",
        "load_design": "design",
        "load_design_table": "design"}),
    "codesign.search.traffic_file": ("experiment", {}),
    "codesign.search.workload_file": ("workload", {}),
    "codesign.search.chip_file": ("chip", {}),
    "codesign.search.design_file": ("design", {}),
}
"""The strict TOML readers and the doc section of each reader function."""

PARAM_TABLES = {
    "_param": "params.NAME", "_cluster": "cluster", "_constraint": "constraints",
    "_storage_url": "storage", "_traffic": "traffic", "_workload": "workload",
    "_inline_model": "workload.model", "load_design_table": "design",
    "_check_decode_pool": "", "_baselines": "experiment",
}
"""Functions that read a table passed in (a ``_Table`` parameter, or a table whose name is
not a literal): the table they read."""

TOP = ""
"""The table name of a file's top level (its tables are documented as ``[name]``)."""


def _prices() -> list[str]:
    return [f.name for f in fields(tech.Prices)]


DYNAMIC: dict[tuple[str, str, str], tuple[Any, str | None, str | None]] = {
    # (module, function, source of the .only argument): (keys, section, table) where section
    # and table None = those of the call
    ("codesign.search.experiment", "load_experiment", "kind_metrics"):
        (lambda: list(METRICS), "metrics", None),
    ("codesign.search.experiment", "load_experiment", "price_keys"): (_prices, None, None),
    ("codesign.search.design_file", "load_design_file", "keys"): (_prices, None, None),
}
"""``.only`` arguments computed at run time, and the keys they hold."""

SUBSECTION_ALIASES = {
    ("space", "base"): ("Design parameters", "Decode-pool parameters"),
    ("space", "params"): ("Design parameters", "Decode-pool parameters"),
    ("workload", "hf"): ("Hugging Face",),
    ("cases", "serving"): ("Serving cases",),
}
"""Tables documented under a ``### `` heading that does not name them as ``[table]``."""


@dataclass(frozen=True)
class Key:
    """One accepted key: the doc section and table it belongs in, and where the code says so."""

    section: str
    table: str | None  # None: the section's text before its first ### heading
    key: str
    where: str
    row: bool = True  # must be in a table row (else: mentioned anywhere in the part)


# ----------------------------------------------------------------------------- the doc


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _split(text: str, level: str) -> list[tuple[str, str]]:
    """``[(heading, body)]`` of the ``level`` headings ("## " or "### "); the text before the
    first one under heading ""."""
    parts: list[tuple[str, str]] = [("", "")]
    fence = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith(level):
            parts.append((line[len(level):].strip(), ""))
        else:
            parts[-1] = (parts[-1][0], parts[-1][1] + line)
    return parts


def _section(text: str, kind: str) -> str:
    found = [body for head, body in _split(text, "## ") if head.startswith(SECTIONS[kind])]
    assert found, f"docs/config.md has no '## {SECTIONS[kind]}' section"
    return found[0]


def _part(text: str, section: str, table: str | None) -> tuple[str, str]:
    """(what it is called, the text) of ``table`` in ``section``: the text before the first
    ``###`` heading (None or the top level), else every ``###`` subsection whose heading
    names ``[table]`` (or an alias)."""
    sub = _split(_section(text, section), "### ")
    if table is None or table == TOP:
        return f"'## {SECTIONS[section]}' (before its first ###)", sub[0][1]
    names = (f"[{table}]", *SUBSECTION_ALIASES.get((section, table), ()))
    bodies = [body for head, body in sub[1:] if any(n in head for n in names)]
    assert bodies, (f"docs/config.md '## {SECTIONS[section]}' has no '### ' heading naming "
                    f"{' or '.join(names)}")
    return (f"'## {SECTIONS[section]}' / '### ' naming {' or '.join(names)}",
            "".join(bodies))


def _rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row of ``text``."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]


def _documented(text: str, k: Key) -> bool:
    part = _part(text, k.section, k.table)[1]
    if k.table == TOP:
        return f"[{k.key}]" in part
    if k.row:
        return any(f"`{k.key}`" in line for line in part.splitlines()
                   if line.lstrip().startswith("|"))
    return f"`{k.key}`" in part


# ----------------------------------------------------------------------------- the code


def _strings(value: Any) -> list[str] | None:
    """The keys a module constant holds (dict keys or the items of a tuple/list of str)."""
    if isinstance(value, dict):
        value = list(value)
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _resolve(node: ast.AST, module: ModuleType) -> list[str] | None:
    """The strings an ``.only`` argument holds, or None when it is computed at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List):
        out: list[str] = []
        for elt in node.elts:
            got = _resolve(elt, module)
            if got is None:
                return None
            out += got
        return out
    if isinstance(node, ast.Starred):
        return _resolve(node.value, module)
    if isinstance(node, ast.Name):
        return _strings(getattr(module, node.id, None))
    if isinstance(node, ast.IfExp):
        a, b = _resolve(node.body, module), _resolve(node.orelse, module)
        return None if a is None or b is None else a + b
    return None


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


Assigned = list[tuple[int, str, str | None]]


def _receivers(fn: ast.FunctionDef) -> tuple[dict[str, str | None], Assigned]:
    """A function's table variables: ``_Table`` parameters ({name: table or None if not in
    PARAM_TABLES}) and assignments ``[(line, name, table)]`` (table None: a name that is not
    a literal, resolved by PARAM_TABLES)."""
    params = {a.arg: PARAM_TABLES.get(fn.name) for a in fn.args.args + fn.args.kwonlyargs
              if a.annotation is not None and "_Table" in ast.unparse(a.annotation)}
    assigned: Assigned = []
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call, target = node.value, node.targets[0]
        if isinstance(call.func, ast.Name) and call.func.id == "_read":
            if isinstance(target, ast.Tuple) and isinstance(target.elts[-1], ast.Name):
                assigned.append((node.lineno, target.elts[-1].id, TOP))
        elif (isinstance(call.func, ast.Attribute) and call.func.attr == "table"
              and isinstance(target, ast.Name)):
            arg = call.args[0] if call.args else None
            literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            assigned.append((node.lineno, target.id,
                             arg.value if literal else PARAM_TABLES.get(fn.name)))
    return params, assigned


def _table_of(name: str, line: int, params: dict[str, str | None],
              assigned: Assigned) -> tuple[bool, str | None]:
    """(is a table variable, its table) of variable ``name`` at ``line``."""
    before = [t for ln, n, t in sorted(assigned) if n == name and ln <= line]
    if before:
        return True, before[-1]
    if name in params:
        return True, params[name]
    return False, None


def _loader_keys() -> tuple[list[Key], list[str]]:
    """Every key the strict readers accept or read, and what could not be placed."""
    keys: list[Key] = []
    problems: list[str] = []
    for mod_name, (default, by_function) in READERS.items():
        module = importlib.import_module(mod_name)
        tree = ast.parse(inspect.getsource(module))
        for fn in _functions(tree):
            params, assigned = _receivers(fn)
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("only", "get")
                        and isinstance(node.func.value, ast.Name) and node.args):
                    continue
                where = f"{mod_name}.{fn.name} line {node.lineno}"
                is_table, table = _table_of(node.func.value.id, node.lineno, params, assigned)
                if not is_table:
                    continue
                section = by_function.get(fn.name, default)
                if section is None or table is None:
                    problems.append(f"{where}: {ast.unparse(node)} reads a table this test "
                                    "cannot place (add the function to READERS/PARAM_TABLES)")
                    continue
                arg = node.args[0]
                if node.func.attr == "get":
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        keys.append(Key(section, table, arg.value, where))
                    continue
                got = _resolve(arg, module)
                if got is None:
                    dyn = DYNAMIC.get((mod_name, fn.name, ast.unparse(arg)))
                    if dyn is None:
                        problems.append(f"{where}: .only({ast.unparse(arg)}) is computed at "
                                        "run time: add it to DYNAMIC")
                        continue
                    make, dyn_section, dyn_table = dyn
                    got = make()
                    if dyn_section is not None:
                        section, table = dyn_section, dyn_table
                keys += [Key(section, table, k, where) for k in got]
    return keys, problems


def _hf_keys() -> list[str]:
    """The config.json keys hf_config reads: first arguments of ``c.integer``, ``c.flag``,
    ``c.error``, ``c.data.get``, ``c.data[...]`` and ``"key" in c.data``, a name resolved
    through the strings bound to it in the function (a loop over a tuple, an if-else)."""
    tree = ast.parse(inspect.getsource(hf_config))
    out: list[str] = []

    def bound(fn: ast.FunctionDef, name: str) -> list[str]:
        vals: list[str] = []
        for n in ast.walk(fn):
            if (isinstance(n, ast.For) and isinstance(n.target, ast.Name)
                    and n.target.id == name):
                vals += _resolve(n.iter, hf_config) or []
            if (isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
                    and n.targets[0].id == name):
                vals += _resolve(n.value, hf_config) or []
        return vals

    def is_data(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "data"

    for fn in _functions(tree):
        for node in ast.walk(fn):
            arg = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                f = node.func
                if ((f.attr in ("integer", "flag", "error") and isinstance(f.value, ast.Name)
                     and f.value.id == "c") or (f.attr == "get" and is_data(f.value))):
                    arg = node.args[0]
            elif isinstance(node, ast.Subscript) and is_data(node.value):
                arg = node.slice
            elif (isinstance(node, ast.Compare) and len(node.comparators) == 1
                  and isinstance(node.ops[0], ast.In | ast.NotIn)
                  and is_data(node.comparators[0])):
                arg = node.left
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append(arg.value)
            elif isinstance(arg, ast.Name):
                out += bound(fn, arg.id)
    return list(dict.fromkeys(out))


def _serving_columns() -> list[str]:
    path = Path(str(resources.files("codesign.model.catalog").joinpath("serving_cases.csv")))
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    return list(dict.fromkeys([*serving_cases.REQUIRED, *header]))


def _all_keys() -> list[Key]:
    keys, problems = _loader_keys()
    assert not problems, "\n".join(problems)
    chip_params = [k for k in DESIGN_PARAMETERS if k not in CLUSTER_PARAMETERS]
    keys += [Key("chip", "chip", k, "chip_file.CHIP_KEYS") for k in CHIP_KEYS]
    keys += [Key("design", "design", k, "design.DESIGN_PARAMETERS (chip ones)")
             for k in chip_params]
    keys += [Key("metrics", None, k, "metrics.METRICS") for k in METRICS]
    keys += [Key("cases", None, k, "validate.cases.COLUMNS") for k in (*COLUMNS, "attention")]
    keys += [Key("cases", "serving", k, "serving_cases.csv header / serving.REQUIRED")
             for k in _serving_columns()]
    keys += [Key("workload", "hf", k, "hf_config (keys read)", row=False) for k in _hf_keys()]
    keys += [Key("workload", "hf", k, "hf_config.ARCHITECTURES / MODEL_TYPES", row=False)
             for k in (*hf_config.ARCHITECTURES, *hf_config.MODEL_TYPES)]
    return keys


# ----------------------------------------------------------------------------- tests


def test_the_collector_sees_the_readers() -> None:
    """The key sets the test collects are not empty and hold what each reader is known for
    (so a broken collector cannot pass by finding nothing)."""
    keys = _all_keys()
    by = {(k.section, k.table): {x.key for x in keys if (x.section, x.table) == (k.section,
                                                                                    k.table)}
          for k in keys}
    assert {"experiment", "workload", "cluster", "tco", "traffic"} <= by[("experiment", TOP)]
    assert {"name", "search_space", "baselines"} <= by[("experiment", "experiment")]
    assert {"site_mw", "job_chips", "n_chips", "pue"} <= by[("experiment", "cluster")]
    assert {"rate_rps", "pools", "kv_over_scaleup"} <= by[("experiment", "traffic")]
    assert {"min", "max"} <= by[("experiment", "constraints")]
    assert {"url"} == by[("experiment", "storage")]
    assert set(_prices()) == by[("experiment", "tco")] == by[("design", "tco")]
    assert {"type", "low", "high", "step", "log", "choices"} == by[("space", "params.NAME")]
    assert set(DECODE_PARAMETERS) <= by[("space", "base")]
    assert set(_TRAIN_KEYS) | set(_INFER_KEYS) == by[("workload", "workload")]
    assert {"layers", "moe_experts", "sliding_window_layers"} <= by[("workload",
                                                                      "workload.model")]
    assert {"design", "cluster", "workload", "tco"} == by[("design", TOP)]
    assert {"n_chips", "scaleup_latency_us"} <= by[("design", "cluster")]
    assert {"num_hidden_layers", "kv_lora_rank", "experts_per_token", "_name_or_path",
            "layer_types", "architectures"} <= set(_hf_keys())


def test_every_accepted_key_is_documented() -> None:
    text = _doc()
    missing = sorted({(k.section, k.table or "", k.key, k.where) for k in _all_keys()
                      if not _documented(text, k)})
    assert not missing, "keys the code accepts but docs/config.md does not document:\n" + \
        "\n".join(f"  `{key}` in {_part(text, s, t or None)[0]} (from {w})"
                  for s, t, key, w in missing)


def _fmt(v: Any) -> str:
    """A value as the design-parameter table writes it."""
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return f"{int(v):,}"
    return f"{v:g}"


def _table_rows(section: str, table: str | None) -> dict[str, list[str]]:
    """``{key: cells}`` of the rows of a doc part whose first cell is one `key`."""
    rows = _rows(_part(_doc(), section, table)[1])
    return {m.group(1): r for r in rows if (m := re.fullmatch(r"`([^`]+)`", r[0]))}


def test_design_parameter_rows_match_the_code() -> None:
    """Kind, unit, range or choices and default of every design parameter as in the code."""
    rows = _table_rows("space", "base")
    for name, p in DESIGN_PARAMETERS.items():
        where = "cluster" if name in CLUSTER_PARAMETERS else "chip"
        rng = (", ".join(_fmt(c) for c in p.choices) if p.choices is not None
               else f"{_fmt(p.low)} .. {_fmt(p.high)}")
        want = [f"`{name}`", where, p.kind, p.unit or "-", rng, _fmt(DEFAULT_DESIGN[name])]
        assert rows[name][:6] == want, f"row of `{name}`: {rows[name][:6]} != {want}"


def test_metric_rows_match_the_code() -> None:
    rows = _table_rows("metrics", None)
    for name, (unit, direction) in METRICS.items():
        kinds = ("train" if name in TRAIN_ONLY else "infer" if name in INFER_ONLY
                 else "infer + [traffic]" if name in TRAFFIC_ONLY else "both")
        want = [f"`{name}`", unit, direction, kinds, "yes" if name in BAND_METRICS else ""]
        assert rows[name] == want, f"row of `{name}`: {rows[name]} != {want}"


def test_workload_rows_say_which_kind() -> None:
    rows = _table_rows("workload", "workload")
    for key in set(_TRAIN_KEYS) | set(_INFER_KEYS):
        got = rows[key][1:3]
        want = ["yes" if key in _TRAIN_KEYS else "", "yes" if key in _INFER_KEYS else ""]
        assert got == want, f"train/infer columns of `{key}`: {got} != {want}"


def test_chip_and_traffic_rows_match_the_code() -> None:
    chip = _table_rows("chip", "chip")
    for key, k in CHIP_KEYS.items():
        assert chip[key][1] == k.kind, f"type of `{key}`"
        assert (chip[key][4] == "yes") == (key in REQUIRED), f"required column of `{key}`"
    traffic = _table_rows("experiment", "traffic")
    for key, (kind, _, _) in TRAFFIC_KEYS.items():
        assert traffic[key][1] == kind, f"type of `{key}`"


def test_chip_keys_are_the_chips_csv_columns() -> None:
    """The doc says a [chip] table's keys are chips.csv's columns."""
    path = Path(str(resources.files("codesign.model.catalog").joinpath("chips.csv")))
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert sorted(header) == sorted(CHIP_KEYS)


# ----------------------------------------------------------------------------- examples

EXAMPLE_FILES = {"experiment": "experiment.toml", "space": "space.toml",
                 "workload": "workload.toml", "hf-config": "config.json",
                 "chip": "my_chip.toml", "design": "design.toml", "cases": "cases.csv"}
"""Example kinds (the word after the fence's language) and the file each is written to."""

_FENCE = re.compile(r"^```(toml|json|csv) ([\w-]+)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _examples() -> list[tuple[str, str]]:
    return [(m.group(2), m.group(3)) for m in _FENCE.finditer(_doc())]


def _load(kind: str, path: Path) -> object:
    from codesign.search.chip_file import load_chip_file
    from codesign.search.design_file import load_design_file
    from codesign.search.experiment import load_experiment, load_search_space
    from codesign.search.hf_config import load_hf_model
    from codesign.search.workload_file import load_workload
    from codesign.validate.cases import load_cases

    if kind == "cases":
        cases = load_cases(path)
        assert all(not c.reason for c in cases), [c.reason for c in cases]
        return cases
    return {"experiment": load_experiment, "space": load_search_space,
            "workload": load_workload, "hf-config": load_hf_model, "chip": load_chip_file,
            "design": load_design_file}[kind](path)


def test_every_example_kind_is_there() -> None:
    kinds = [k for k, _ in _examples()]
    assert set(kinds) == set(EXAMPLE_FILES), (
        f"example fences {sorted(set(kinds))}; expected one of each of {sorted(EXAMPLE_FILES)}")


@pytest.mark.parametrize("index", range(len(_examples())))
def test_example_loads(tmp_path: Path, index: int) -> None:
    """Each example, written next to the first example of every other kind (its companion
    files: the experiment's space.toml, the workload's config.json), loads."""
    examples = _examples()
    kind, text = examples[index]
    first: dict[str, str] = {}
    for k, t in examples:
        first.setdefault(k, t)
    for k, t in first.items():
        (tmp_path / EXAMPLE_FILES[k]).write_text(t, encoding="utf-8")
    path = tmp_path / EXAMPLE_FILES[kind]
    path.write_text(text, encoding="utf-8")
    assert _load(kind, path) is not None
