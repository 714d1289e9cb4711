"""A chip written from its spec sheet: a TOML file with one ``[chip]`` table.

A chip architect has datasheet numbers, not micro-architectural parameters (those are a
``[design]`` file's, :func:`codesign.search.design_file.load_design`). A ``[chip]`` table uses
the columns of the catalog's chips.csv, with their units, so a catalog row and a spec-sheet
file are the same thing::

    [chip]
    name = "Acme X1"          # required
    tflops_bf16 = 2500.0      # required: dense bf16 TFLOP/s
    hbm_gb = 192.0            # required: HBM capacity, GB (0: no HBM)
    hbm_tbps = 8.0            # required: HBM bandwidth, TB/s
    tdp_w = 1000.0            # required: board power, W (a limit: over it the chip throttles)
    scaleup_gbps = 1800.0     # optional: scale-up GB/s per chip, bidirectional as vendors quote

Keys (:data:`CHIP_KEYS`; units as in chips.csv, see ``codesign/model/catalog`` and the data
README): ``id``, ``name``, ``vendor``, ``year``, ``process_nm``, ``die_area_mm2`` (one compute
die), ``n_compute_dies``, ``transistors_b``, ``compute_units``, ``clock_ghz``,
``tflops_fp32`` (vector), ``tflops_tf32``, ``tflops_bf16``, ``tflops_fp8``, ``tflops_fp4``
(dense TFLOP/s; 0 = format not supported), ``sram_mb``, ``hbm_gen``, ``hbm_stacks``,
``hbm_gb``, ``hbm_tbps``, ``scaleup_gbps`` (GB/s, bidirectional), ``scaleup_links``,
``scaleup_domain`` (chips), ``scaleout_gbps`` (Gbit/s, the NIC), ``tdp_w``, ``price_usd``,
``source`` (free text). ``transistors_b``, ``tflops_tf32`` and ``source`` are checked and
kept out of the model, as the catalog does. Required: :data:`REQUIRED` (name, bf16 peak, HBM
capacity and bandwidth, TDP: the numbers every spec sheet prints and the model cannot do
without).

Every key absent is unknown, and :func:`codesign.model.catalog.assume.explain_spec_sheet`
states a value for it by a documented rule (compute units, clock, SRAM, NIC, scale-up domain
and links, node, HBM generation and stacks, die area and count, price), listed as
``assumed`` by ``codesign evaluate``. The chip's ``id`` (default: the file name without
``.toml``) must not be a catalog id: a spec-sheet chip is a new chip, runs in the generic
cluster (fat-tree, generic host) and on the efficiencies of chips of no known generation
(:data:`codesign.model.efficiency.DEFAULT`, as searched designs).

Reading is strict (:mod:`codesign.search.toml_checks`): an unknown key, a wrong type or a
value out of its physical range is a :class:`~codesign.errors.ConfigError` naming the file,
the key path, what was expected and what was got (exit code 2).

Example:
    >>> chip, assumed = load_chip_file("examples/chips/my_accelerator.toml")  # doctest: +SKIP
    >>> chip.name, sorted(assumed)[:2]  # doctest: +SKIP
    ('Acme Helios X1', ['clock_ghz', 'compute_units'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codesign.errors import ConfigError
from codesign.model import tech
from codesign.model.specs import ChipSpec
from codesign.search.toml_checks import (
    _MISSING,
    _describe,
    _one_of,
    _Plain,
    _read,
    _suggest,
    _Table,
)

if TYPE_CHECKING:
    from codesign.model.catalog.assume import Assumption


@dataclass(frozen=True)
class ChipKey:
    """One key of a ``[chip]`` table: its TOML type, physical range and unit."""

    kind: str
    """"int", "float" or "str"."""
    unit: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False


_TFLOPS = ChipKey("float", "dense TFLOP/s; 0 = not supported", 0.0, 1e6)

CHIP_KEYS: dict[str, ChipKey] = {
    "id": ChipKey("str", "a short name for the chip; default: the file name"),
    "name": ChipKey("str", "product name"),
    "vendor": ChipKey("str", "vendor"),
    "year": ChipKey("int", "launch year", 1990, 2100),
    "process_nm": ChipKey("float", "nm of the compute die's node: TSMC N3 -> 3", 1.0, 100.0),
    "die_area_mm2": ChipKey("float", "mm2 of one compute die", 0.0, 50_000.0, low_open=True),
    "n_compute_dies": ChipKey("int", "compute dies per package", 1, 64),
    "transistors_b": ChipKey("float", "billions of transistors per package", 0.0, 1e5,
                             low_open=True),
    "compute_units": ChipKey("int", "SMs, CUs, TensorCores ...", 1, 10_000_000),
    "clock_ghz": ChipKey("float", "GHz of the peak TFLOP/s", 0.0, 10.0, low_open=True),
    "tflops_fp32": ChipKey("float", "vector fp32 TFLOP/s", 0.0, 1e6),
    "tflops_tf32": _TFLOPS,
    "tflops_bf16": ChipKey("float", "dense bf16 TFLOP/s", 0.0, 1e6, low_open=True),
    "tflops_fp8": _TFLOPS,
    "tflops_fp4": _TFLOPS,
    "sram_mb": ChipKey("float", "MB of on-chip SRAM, caches and scratchpads", 0.0, 1e6),
    "hbm_gen": ChipKey("str", "HBM generation"),
    "hbm_stacks": ChipKey("int", "HBM stacks per package", 0, 64),
    "hbm_gb": ChipKey("float", "GB of HBM; 0 = none", 0.0, 100_000.0),
    "hbm_tbps": ChipKey("float", "TB/s of HBM bandwidth", 0.0, 1000.0),
    "scaleup_gbps": ChipKey("float", "GB/s per chip, bidirectional, as vendors quote NVLink",
                            0.0, 1e6),
    "scaleup_links": ChipKey("int", "scale-up links (ports) per chip", 0, 4096),
    "scaleup_domain": ChipKey("int", "chips on one scale-up fabric", 1, 1_000_000),
    "scaleout_gbps": ChipKey("float", "Gbit/s of NIC per chip", 0.0, 100_000.0),
    "tdp_w": ChipKey("float", "W; a wafer-scale engine draws ~23 kW", 1.0, 30_000.0),
    "price_usd": ChipKey("float", "USD per chip", 0.0, 1e8, low_open=True),
    "source": ChipKey("str", "where the numbers come from"),
}
"""The keys of a ``[chip]`` table: chips.csv's columns, their units and physical ranges."""

REQUIRED = ("name", "tflops_bf16", "hbm_gb", "hbm_tbps", "tdp_w")
"""Keys a spec-sheet chip must give: every datasheet prints them and no rule can replace
them (the peak sets the speed, HBM what fits and the memory-bound time, TDP the power)."""

HBM_GENS = (*tech.HBM, "none")
"""Values of ``hbm_gen``: the generations of :data:`codesign.model.tech.HBM`, or ``none``."""

_NOT_IN_SPEC = ("transistors_b", "tflops_tf32", "source")
"""Checked but not part of :class:`~codesign.model.specs.ChipSpec` (as the catalog skips them)."""


def _expected(key: str) -> str:
    k = CHIP_KEYS[key]
    if key == "hbm_gen":
        return _one_of(HBM_GENS)
    text = "a non-empty string" if k.kind == "str" else _describe(k.kind, k.low, k.high,
                                                                 k.low_open)
    return f"{text} ({k.unit}{'; required' if key in REQUIRED else ''})"


def _kind(root: _Table) -> str:
    """``"chip"`` or ``"design"``: the one table of a chip TOML (both, or neither, is a
    ConfigError)."""
    has = [k for k in ("chip", "design") if k in root.data]
    if len(has) == 2:
        raise root.error("design", "either a [chip] table (a spec sheet) or a [design] table "
                         "(design parameters) in one file, not both",
                         _Plain("both [chip] and [design]"))
    if not has:
        first = next(iter(root.data), None)
        if first is None:
            raise root.error("design", "a table [design] (design parameters) or [chip] (a "
                             "spec sheet)", _MISSING)
        raise root.error(first, "one of: design, chip (a [design] table of design parameters "
                         "or a [chip] spec sheet)" + _suggest(first, ("design", "chip")),
                         _Plain(f"unknown key {first!r}"))
    return has[0]


def _table(path: str | os.PathLike[str]) -> _Table:
    """The ``[chip]`` table of ``path`` (a file holding ``[design]`` instead, or both, or
    anything else at the top level is a ConfigError)."""
    _, root = _read(path)
    if _kind(root) == "design":
        raise root.error("design", "a [chip] table (a spec sheet; a [design] file is a "
                         "design, not a chip from its datasheet)", _Plain("[design]"))
    root.only(("chip",))
    return root.table("chip", expected="a table [chip] of datasheet numbers")


def read_chip_file(path: str | os.PathLike[str]) -> ChipSpec:
    """The chip of a spec-sheet file exactly as written: every absent key ``None``
    (unknown), as an empty cell of chips.csv; units of :class:`~codesign.model.specs.ChipSpec`.

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    t = _table(path)
    allowed = list(CHIP_KEYS)
    for key in t.data:
        if key not in CHIP_KEYS:
            raise t.error(key, f"a chips.csv column ({_one_of(allowed)})"
                          + _suggest(key, allowed), _Plain(f"unknown key {key!r}"))
    values: dict[str, object] = {}
    for key, k in CHIP_KEYS.items():
        if key not in t.data and key not in REQUIRED:
            continue
        if k.kind == "str":
            choices = HBM_GENS if key == "hbm_gen" else None
            got = t.data.get(key)
            if choices and isinstance(got, str) and got not in choices:
                same = [c for c in choices if c.lower() == got.lower()]
                if same:  # difflib's hint is case-sensitive
                    raise t.error(key, f"{_expected(key)} (did you mean {same[0]!r}?)", got)
            value = t.get(key, "str", choices=choices, expected=_expected(key))
            if not value.strip():
                raise t.error(key, _expected(key), value)
        else:
            value = t.get(key, k.kind, low=k.low, high=k.high, low_open=k.low_open,
                          expected=_expected(key))
        values[key] = value
    _check_consistent(t, values)
    from codesign.model import catalog

    chip_id = str(values.get("id", Path(t.file).stem))
    if chip_id in catalog.chip_ids():
        got = f"{chip_id!r}" + ("" if "id" in values else " (the file name)")
        raise t.error("id", "an id that is not a catalog chip's (a spec-sheet chip is a new "
                      f"chip: --chip {chip_id} is the catalog's; set [chip] id or rename the "
                      "file)", _Plain(got))
    spec = {k: v for k, v in values.items() if k not in _NOT_IN_SPEC}
    spec["id"] = chip_id
    for key in ("process_nm", "compute_units", "clock_ghz", "tflops_fp32", "tflops_fp8",
                "tflops_fp4", "sram_mb", "hbm_gen", "hbm_stacks", "scaleup_gbps",
                "scaleup_links", "scaleup_domain", "scaleout_gbps", "die_area_mm2",
                "n_compute_dies", "price_usd", "year"):
        spec.setdefault(key, None)  # absent: unknown (ChipSpec's own default is 1 die)
    spec.setdefault("vendor", "")
    return ChipSpec(**spec)  # type: ignore[arg-type]


def _check_consistent(t: _Table, v: dict[str, object]) -> None:
    """Values that contradict each other: HBM capacity without bandwidth (or the reverse),
    HBM with generation ``none`` or no stacks, a scale-up domain with neither its bandwidth
    nor its link count."""
    gb, tbps = v["hbm_gb"], v["hbm_tbps"]
    if (gb > 0) != (tbps > 0):  # type: ignore[operator]
        key, other = ("hbm_tbps", "hbm_gb") if gb else ("hbm_gb", "hbm_tbps")
        raise t.error(key, f"a value > 0 with {other} = {v[other]:g} (HBM capacity and "
                      "bandwidth come together; both 0: no HBM)", v[key])
    if gb and v.get("hbm_gen") == "none":
        raise t.error("hbm_gen", f"an HBM generation ({_one_of(tech.HBM)}) with hbm_gb = "
                      f"{gb:g}", "none")
    if gb and v.get("hbm_stacks") == 0:
        raise t.error("hbm_stacks", f"at least 1 stack with hbm_gb = {gb:g}", 0)
    domain = v.get("scaleup_domain")
    if (domain is not None and domain > 1  # type: ignore[operator]
            and not v.get("scaleup_gbps") and not v.get("scaleup_links")):
        raise t.error("scaleup_gbps", "a scale-up bandwidth > 0 (GB/s, bidirectional; or "
                      f"scaleup_links to derive it) for scaleup_domain = {domain}",
                      v.get("scaleup_gbps", _Plain("nothing")))


def load_chip_file(path: str | os.PathLike[str]) -> tuple[ChipSpec, dict[str, Assumption]]:
    """``(chip, assumed)``: the spec-sheet chip of ``path`` completed by the stated rules of
    :func:`codesign.model.catalog.assume.explain_spec_sheet`, and ``{field: Assumption(value,
    reason)}`` for every value they filled ({} for a sheet that gives every number the model
    uses). Units of :class:`~codesign.model.specs.ChipSpec` (TFLOP/s, GB, TB/s, GB/s
    bidirectional scale-up, Gbit/s NIC, W, USD).

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    from codesign.model.catalog.assume import explain_spec_sheet

    return explain_spec_sheet(read_chip_file(path))


def toml_kind(path: str | os.PathLike[str]) -> str:
    """``"chip"`` (a spec sheet) or ``"design"`` (design parameters): which table a chip
    TOML holds. Both, or neither, is a ConfigError naming the file."""
    return _kind(_read(path)[1])


def resolve_chip(ref: str, flag: str = "--against") -> ChipSpec:
    """A reference chip named on the command line: a catalog chip id (the catalog row, its
    unknowns kept), a spec-sheet chip TOML (completed by its stated assumptions) or a design
    file (:mod:`codesign.search.design_file`). A ConfigError names ``flag`` otherwise."""
    from codesign.model import catalog

    if ref in catalog.chip_ids():
        return catalog.get_chip(ref)
    if ref.endswith(".toml"):
        if toml_kind(ref) == "design":  # a design file (codesign export-design): its chip
            from codesign.search.design import design_to_chip
            from codesign.search.design_file import load_design_file

            return design_to_chip(load_design_file(ref).design, name=Path(ref).stem)
        return load_chip_file(ref)[0]
    raise ConfigError(None, flag, "a catalog chip id or a chip TOML file ([chip] or "
                      "[design]), one of: "
                      + ", ".join(catalog.chip_ids()), ref)

