"""Reference chips and models shipped as package data.

Example:
    >>> from codesign.catalog import get_chip, get_model
    >>> get_chip("h100-sxm").tflops_bf16
    989.4
    >>> get_model("llama3-8b").layers
    32
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import fields
from functools import cache
from importlib import resources

from codesign.specs import ChipSpec, ModelSpec

_INT_FIELDS = {
    "compute_units", "hbm_stacks", "scaleup_links", "scaleup_domain", "n_compute_dies", "year"
}
_TEXT_FIELDS = {"id", "vendor", "name", "hbm_gen"}
_SKIPPED = {"source", "transistors_b", "tflops_tf32"}


def _cell(column: str, text: str) -> object:
    text = text.strip()
    if column in _TEXT_FIELDS:
        return text or None
    if text == "":
        return None
    return int(float(text)) if column in _INT_FIELDS else float(text)


@cache
def _chips() -> dict[str, ChipSpec]:
    allowed = {f.name for f in fields(ChipSpec)}
    out: dict[str, ChipSpec] = {}
    with resources.files(__package__).joinpath("chips.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            values = {k: _cell(k, v) for k, v in row.items() if k not in _SKIPPED}
            unexpected = set(values) - allowed
            if unexpected:  # the packaged CSV and ChipSpec must agree: a bug, not user input
                raise RuntimeError(f"chips.csv columns not in ChipSpec: {sorted(unexpected)}")
            values["vendor"] = values["vendor"] or ""
            out[values["id"]] = ChipSpec(**values)
    return out


@cache
def _models() -> dict[str, ModelSpec]:
    text = resources.files(__package__).joinpath("models.toml").read_text(encoding="utf-8")
    return {key: ModelSpec(**table) for key, table in tomllib.loads(text).items()}


def chip_ids() -> list[str]:
    """Ids of all reference chips, in catalog order."""
    return list(_chips())


def model_ids() -> list[str]:
    """Ids of all reference models, in catalog order."""
    return list(_models())


def get_chip(chip_id: str) -> ChipSpec:
    """The reference chip ``chip_id``; raises KeyError naming the known ids."""
    try:
        return _chips()[chip_id]
    except KeyError:
        raise KeyError(f"unknown chip {chip_id!r}; known: {', '.join(_chips())}") from None


def get_model(model_id: str) -> ModelSpec:
    """The reference model ``model_id``; raises KeyError naming the known ids."""
    try:
        return _models()[model_id]
    except KeyError:
        raise KeyError(f"unknown model {model_id!r}; known: {', '.join(_models())}") from None


def chips() -> list[ChipSpec]:
    """All reference chips."""
    return list(_chips().values())


def models() -> dict[str, ModelSpec]:
    """All reference models by id."""
    return dict(_models())
