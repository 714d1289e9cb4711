"""Reference chips and models shipped as package data.

Example:
    >>> from codesign.model.catalog import get_chip, get_model
    >>> get_chip("h100-sxm").tflops_bf16
    989.4
    >>> get_model("llama3-8b").layers
    32
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import fields
from functools import cache
from importlib import resources

from codesign.model.specs import ChipSpec, ModelSpec

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
def _model_tables() -> dict[str, dict]:
    text = resources.files(__package__).joinpath("models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def _models() -> dict[str, ModelSpec]:
    return {key: ModelSpec(**{k: v for k, v in table.items() if k != "aliases"})
            for key, table in _model_tables().items()}


_NAME_NOISE = re.compile(r"(instruct|chat|base|hf|fp8|bf16|fp16|v\d+\.\d+(\.\d+)*|\d{4})$")


def normalize_model_name(name: str) -> str:
    """A model name as compared with the catalog: organisation prefix ("meta-llama/")
    dropped, lowercase, trailing release tags ("-Instruct", "-FP8", "-2507", "-v0.1")
    dropped, then only letters and digits ("Llama 3.1 70B" -> "llama3170b")."""
    name = name.strip().split("/")[-1].lower()
    parts = [p for p in re.split(r"[^a-z0-9.]+", name) if p]
    while len(parts) > 1 and _NAME_NOISE.fullmatch(parts[-1]):
        parts.pop()
    return re.sub(r"[^a-z0-9]", "", "".join(parts))


@cache
def _model_names() -> dict[str, str]:
    out: dict[str, str] = {}
    for key, table in _model_tables().items():
        for name in (key, table.get("name", ""), *table.get("aliases", ())):
            if name:
                out.setdefault(normalize_model_name(name), key)
    return out


def match_model(name: str) -> str | None:
    """The id of the catalog model that ``name`` names (its id, name or one of its
    ``aliases`` in models.toml, compared by :func:`normalize_model_name`), else None.

    Example:
        >>> match_model("meta-llama/Llama-3-70B-Instruct")
        'llama3-70b'
    """
    return _model_names().get(normalize_model_name(name))


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
