"""Predictions vs published measurements (``calibration.csv`` and any CSV with its columns).

Every row is one measured value of one run. Fixed cells (parallel degrees, micro-batch,
recompute, ZeRO stage, sequence parallelism) are honoured; an empty cell is unknown and is
searched, as a performance engineer tuning the run would. Model cells that the model needs but
a source left empty take a documented default (:data:`MODEL_DEFAULTS`).

Example:
    >>> from codesign.validate import load_cases, run_cases, summarize
    >>> cases = load_cases()  # the packaged calibration.csv
    >>> df = run_cases([c for c in cases if c.case_id.startswith("KOR22")])  # doctest: +SKIP
    >>> summarize(df)["median_abs_error_pct"] < 10  # doctest: +SKIP
    True
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from codesign import catalog, efficiency
from codesign.efficiency import Efficiency
from codesign.errors import ConfigError
from codesign.pack import UnknownSpecError
from codesign.perf import evaluate
from codesign.specs import (
    ATTENTION_IMPLS,
    PRECISIONS,
    RECOMPUTE_MODES,
    ClusterSpec,
    InferJob,
    Mapping,
    ModelSpec,
    TrainJob,
)

COLUMNS = (
    "case_id", "workload", "model", "layers", "hidden", "heads", "kv_heads", "ffn_hidden",
    "gated_mlp", "vocab", "seq_len", "moe_experts", "moe_topk", "moe_ffn_hidden", "chip",
    "n_chips", "tp", "pp", "dp", "cp", "ep", "vpp", "micro_batch", "global_batch", "recompute",
    "sequence_parallel", "zero", "precision", "input_len", "output_len", "concurrency", "metric",
    "value", "source",
)
"""Columns of a cases CSV (see shared data/README.md); all must be present. An optional
``attention`` column (``flash`` | ``unfused``) names the attention kernel of the run."""

TRAIN_METRICS = ("tokens_per_s_per_chip", "iteration_time_s")
INFER_METRICS = ("output_tokens_per_s", "ttft_s", "itl_s", "chip_power_w", "joules_per_token",
                 "node_power_w")

UNFUSED_ATTENTION_FAMILIES = ("MLM21-", "KOR22-")
"""Runs whose framework had no fused attention: Megatron-LM as of Narayanan et al. 2021 and
Korthikanti et al. 2022 (FlashAttention, Dao et al., appeared in May 2022 and reached
Megatron-LM in 2023). Every other run uses fused attention unless an optional ``attention``
column (``flash`` | ``unfused``) says otherwise."""

MODEL_DEFAULTS = {
    "head_dim": 128,  # heads = hidden / 128 when unknown (Megatron GPT configs, Llama, NeMo)
    "vocab": 51200,  # Megatron-LM's padded GPT-2 vocabulary, when a source gives none
}

_INT_COLS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "gated_mlp", "vocab",
             "seq_len", "moe_experts", "moe_topk", "moe_ffn_hidden", "n_chips", "tp", "pp", "dp",
             "cp", "ep", "vpp", "micro_batch", "global_batch", "sequence_parallel", "zero",
             "input_len", "concurrency")
_FLOAT_COLS = ("output_len",)  # a mean generated length for the MLE3 rows


@dataclass(frozen=True)
class Case:
    """One measured value and everything needed to predict it."""

    case_id: str
    workload: str
    metric: str
    measured: float
    chip: str
    n_chips: int
    job: TrainJob | InferJob | None
    mapping: Mapping
    assumption: str = ""
    """What was assumed to predict it (e.g. an input length the source does not give)."""


def _int(file: str, row: int, col: str, text: str, integer: bool = True) -> int | float | None:
    text = text.strip()
    if text == "":
        return None
    kind = "an integer" if integer else "a number"
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(file, f"row {row}.{col}", f"{kind} or an empty cell", text) from None
    if not math.isfinite(value) or value < 0 or (integer and value != int(value)):
        raise ConfigError(file, f"row {row}.{col}", f"{kind} >= 0 or an empty cell", text)
    return int(value) if integer else value


def _choice(file: str, row: int, col: str, text: str, options: tuple[str, ...],
            required: bool = False) -> str | None:
    text = text.strip()
    if text == "" and not required:
        return None
    if text not in options:
        raise ConfigError(file, f"row {row}.{col}", f"one of: {', '.join(options)}", text)
    return text


def _required(file: str, row: int, col: str, value: int | None) -> int:
    if value is None:
        raise ConfigError(file, f"row {row}.{col}", "a value (this column is needed)", "")
    return value


def _case(file: str, row: int, r: dict[str, str], assume_input_len: int | None = None) -> Case:
    v = {c: _int(file, row, c, r[c]) for c in _INT_COLS}
    assumed = v["input_len"] is None and assume_input_len is not None and r["workload"] == "infer"
    if assumed:
        v["input_len"] = assume_input_len
    v |= {c: _int(file, row, c, r[c], integer=False) for c in _FLOAT_COLS}
    workload = _choice(file, row, "workload", r["workload"], ("train", "infer"), True)
    metric = _choice(file, row, "metric", r["metric"], TRAIN_METRICS + INFER_METRICS, True)
    chip = _choice(file, row, "chip", r["chip"], tuple(catalog.chip_ids()), True)
    try:
        measured = float(r["value"])
    except ValueError:
        raise ConfigError(file, f"row {row}.value", "a number", r["value"]) from None
    if not (math.isfinite(measured) and measured > 0):
        raise ConfigError(file, f"row {row}.value", "a finite number > 0", r["value"])
    recompute = _choice(file, row, "recompute", r["recompute"], RECOMPUTE_MODES)
    precision = _choice(file, row, "precision", r["precision"], PRECISIONS) or "bf16"
    attention = _choice(file, row, "attention", r.get("attention") or "", ATTENTION_IMPLS)
    if attention is None:
        unfused = r["case_id"].startswith(UNFUSED_ATTENTION_FAMILIES)
        attention = "unfused" if unfused else "flash"
    n_chips = _required(file, row, "n_chips", v["n_chips"])
    hidden = _required(file, row, "hidden", v["hidden"])
    heads = v["heads"] or max(1, hidden // MODEL_DEFAULTS["head_dim"])
    moe = (v["moe_experts"] or 0) > 0
    model = ModelSpec(
        name=r["model"],
        layers=_required(file, row, "layers", v["layers"]),
        hidden=hidden,
        heads=heads,
        kv_heads=v["kv_heads"] or heads,
        # an all-MoE model (Qwen3-235B) has no dense MLP: its empty ffn_hidden is not needed
        ffn_hidden=v["ffn_hidden"] or 0 if moe else _required(file, row, "ffn_hidden",
                                                              v["ffn_hidden"]),
        vocab=v["vocab"] or MODEL_DEFAULTS["vocab"],
        gated_mlp=bool(v["gated_mlp"]),
        moe_experts=v["moe_experts"] or 0,
        moe_topk=v["moe_topk"] or 0,
        moe_ffn_hidden=v["moe_ffn_hidden"] or 0,
    )
    job: TrainJob | InferJob | None
    if workload == "train":
        job = TrainJob(model, _required(file, row, "seq_len", v["seq_len"]),
                       _required(file, row, "global_batch", v["global_batch"]), precision,
                       attention)
    elif v["input_len"] is None:
        job = None  # a property of the traffic, not a tuning choice: it cannot be searched
    else:
        job = InferJob(model, v["input_len"], _required(file, row, "output_len",
                                                        v["output_len"]),
                       v["concurrency"] or None, precision)
    sp = v["sequence_parallel"]
    mapping = Mapping(
        tp=v["tp"] or 0, pp=v["pp"] or 0, dp=v["dp"] or 0, cp=v["cp"] or 0, ep=v["ep"] or 0,
        vpp=v["vpp"] or 0, micro_batch=v["micro_batch"] or 0, recompute=recompute,
        zero=v["zero"], sequence_parallel=None if sp is None else bool(sp),
    )
    return Case(r["case_id"], workload, metric, measured, chip, n_chips, job, mapping,
                f"input_len {assume_input_len} assumed (empty in the CSV)" if assumed else "")


def default_cases_path() -> Path:
    """The packaged copy of the reference measurements (calibration.csv)."""
    return Path(str(resources.files("codesign.catalog").joinpath("calibration.csv")))


def load_cases(path: str | os.PathLike[str] | None = None,
               assume_input_len: int | None = None) -> list[Case]:
    """Read a cases CSV; any problem is a ConfigError naming the file, row, column, value.

    ``assume_input_len`` (tokens) fills the empty ``input_len`` of inference rows (the
    ML.ENERGY rows' prompts are unknown); such cases say so in ``assumption``."""
    path = Path(path) if path is not None else default_cases_path()
    file = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "<file>", "an existing CSV file", "no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "<file>", "UTF-8 text", f"byte at offset {exc.start}") from None
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines())
    header = reader.fieldnames or []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConfigError(file, "<header>",
                          f"the columns of calibration.csv ({', '.join(COLUMNS)})",
                          f"missing {', '.join(missing)}")
    cases, seen = [], set()
    for i, r in enumerate(reader, start=2):  # row numbers as a spreadsheet shows them
        if None in r or any(v is None for v in r.values()):
            raise ConfigError(file, f"row {i}", f"{len(header)} cells", "a different count")
        case = _case(file, i, r, assume_input_len)
        if case.case_id in seen:
            raise ConfigError(file, f"row {i}.case_id", "a unique id", case.case_id)
        seen.add(case.case_id)
        cases.append(case)
    if not cases:
        raise ConfigError(file, "<rows>", "at least one case", "none")
    return cases


def predict(case: Case, eff: Efficiency = efficiency.DEFAULT) -> dict[str, Any]:
    """Predict one case: the metric value (None if not predictable) with mapping and reason.

    ``eff`` sets the software-stack efficiencies (default: the calibrated ones)."""
    out: dict[str, Any] = {"case_id": case.case_id, "metric": case.metric,
                           "measured": case.measured, "predicted": None, "error_pct": None,
                           "feasible": False, "reason": "", "mapping": None}
    if case.job is None:
        out["reason"] = "input_len is empty: the prompt length of the traffic is unknown"
        return out
    try:
        res = evaluate(catalog.get_chip(case.chip), ClusterSpec(n_chips=case.n_chips), case.job,
                       case.mapping, eff=eff)
    except UnknownSpecError as exc:
        out["reason"] = str(exc)
        return out
    out["feasible"] = res.feasible
    out["reason"] = "; ".join(x for x in (res.reason, case.assumption) if x)
    if not res.feasible:
        return out
    out["mapping"] = res.mapping.as_dict()
    pred = {
        "iteration_time_s": lambda: res.step_time_s,
        "tokens_per_s_per_chip": lambda: res.tokens_per_s / case.n_chips,
        "output_tokens_per_s": lambda: res.tokens_per_s,
        "ttft_s": lambda: res.ttft_s,
        "itl_s": lambda: res.itl_s,
        "chip_power_w": lambda: res.chip_power_w,
        "joules_per_token": lambda: case.n_chips * res.chip_power_w / res.tokens_per_s,
    }.get(case.metric)
    if pred is None:
        out["reason"] = f"{case.metric} is not predicted (no model of the whole server yet)"
        return out
    pred = pred()
    out["predicted"] = pred
    out["error_pct"] = 100.0 * (pred - case.measured) / case.measured
    return out


def run_cases(cases: list[Case], eff: Efficiency = efficiency.DEFAULT) -> pd.DataFrame:
    """Predictions for every case, one row each (columns of ``validate --json`` cases)."""
    return pd.DataFrame([predict(c, eff) for c in cases])


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Aggregate errors: counts, median and mean absolute error overall and by source family."""
    done = df[df["error_pct"].notna()]
    abs_err = done["error_pct"].abs()

    def stats(part: pd.Series) -> dict[str, Any]:
        return {"n": int(part.size),
                "median_abs_error_pct": float(part.median()) if part.size else None,
                "mean_abs_error_pct": float(part.mean()) if part.size else None}

    families = done["case_id"].str.extract(r"^([A-Za-z0-9]+(?:-T\d+)?)", expand=False)
    return {
        "cases": len(df),
        "predicted": len(done),
        "not_predicted": int(len(df) - len(done)),
        **stats(abs_err),
        "by_family": {f: stats(abs_err[families == f]) for f in sorted(families.unique())},
    }
