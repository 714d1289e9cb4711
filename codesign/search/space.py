"""Search spaces as Optuna distributions, and trial parameters as full designs.

Example:
    >>> from codesign.search.experiment import ParamSpec, SearchSpace
    >>> from codesign.search.design import DEFAULT_DESIGN
    >>> sp = SearchSpace("s", "s.toml", (ParamSpec("sram_mb", "float", 16, 256, log=True),),
    ...                  dict(DEFAULT_DESIGN))
    >>> sorted(distributions(sp))
    ['sram_mb']
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from codesign.search.design import CLUSTER_PARAMETERS, DECODE_PREFIX
from codesign.search.experiment import CLUSTER_EXTRA, Experiment, SearchSpace


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """One Optuna distribution per searched parameter, in file order."""
    out: dict[str, BaseDistribution] = {}
    for p in space.params:
        if p.kind == "categorical":
            out[p.name] = CategoricalDistribution(list(p.choices or ()))
        elif p.kind == "int":
            out[p.name] = IntDistribution(
                int(p.low), int(p.high), log=p.log, step=int(p.step or 1)
            )
        else:
            out[p.name] = FloatDistribution(
                float(p.low), float(p.high), log=p.log, step=p.step
            )
    return out


def base_design(exp: Experiment) -> dict[str, Any]:
    """The fixed part of every design: the space's base plus the experiment's ``[cluster]``."""
    design = dict(exp.space.base)
    design.update({k: v for k, v in exp.cluster.items() if k in CLUSTER_PARAMETERS})
    return design


def cluster_extra(exp: Experiment) -> dict[str, Any]:
    """The ``[cluster]`` values that are not design parameters (latencies, host power)."""
    return {k: v for k, v in exp.cluster.items() if k in CLUSTER_EXTRA}


def design_from_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A full design: ``base`` with the trial's parameters on top."""
    design = dict(base)
    design.update(params)
    return design


def project_params(space: SearchSpace, design: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters of ``design`` moved into the space: numbers clamped to
    ``[low, high]`` and onto the step grid, categorical values to the nearest choice (numeric)
    or the same choice (text; the first choice when absent). A ``decode_*`` parameter that
    ``design`` lacks takes the plain parameter's value (a catalog chip in both pools)."""
    out: dict[str, Any] = {}
    for p in space.params:
        value = design.get(p.name)
        if value is None and p.name.startswith(DECODE_PREFIX):  # one chip in both pools
            value = design.get(p.name[len(DECODE_PREFIX):])
        if p.kind == "categorical":
            choices = list(p.choices or ())
            if value in choices:
                out[p.name] = value
            elif isinstance(value, int | float) and all(
                    isinstance(c, int | float) for c in choices):
                out[p.name] = min(choices, key=lambda c: abs(c - value))
            else:
                out[p.name] = choices[0]
            continue
        v = min(max(float(value), float(p.low)), float(p.high))
        if p.step:
            v = float(p.low) + round((v - float(p.low)) / p.step) * p.step
            v = min(v, float(p.high))
        out[p.name] = round(v) if p.kind == "int" else v
    return out
