"""Reading a cases CSV (``calibration.csv`` and any CSV with its columns) into :class:`Case`.

A malformed file is a :class:`codesign.errors.ConfigError` naming the file, row, column, what
was expected and what was got: missing columns, a cell count that differs from the header,
text in a number column, an invalid value in a categorical column (workload, metric,
recompute, precision, attention), a duplicate case_id, no rows, bytes that are not UTF-8,
and what an experiment file would refuse: a number out of its column's range (a negative
count, ``zero = 5``, ``layers = 0``, a measured value <= 0), heads that do not divide hidden,
kv_heads that do not divide heads, moe_topk > moe_experts, an n_chips other than
tp x pp x dp x cp when all four are given (the row's key names its case_id too).
Otherwise one row never aborts the file: a row that cannot be predicted (unknown chip, a model
cell that is needed, empty, and not in the catalog ...) becomes a Case with a ``reason`` and
the other rows are predicted.

An empty cell is unknown (data README): mapping cells are searched by the evaluator, a
training row's empty global batch is searched (:data:`GB_MAX_TOKENS`), an inference row's
empty prompt and generation lengths take stated values (:data:`ASSUMED_INPUT_LEN`,
:data:`ASSUMED_OUTPUT_LEN`), model cells come from the matching catalog model
(:func:`codesign.model.catalog.match_model`) or :data:`MODEL_DEFAULTS`, chip cells from
:mod:`codesign.model.catalog.assume`. Everything assumed is listed in ``Case.assumed``.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.model.catalog import assume
from codesign.model.specs import (
    ATTENTION_IMPLS,
    PRECISIONS,
    RECOMPUTE_MODES,
    ChipSpec,
    InferJob,
    Mapping,
    ModelSpec,
    TrainJob,
)
from codesign.model.traffic import ASSUMED_INPUT_LEN, ASSUMED_OUTPUT_LEN

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
POWER_METRICS = ("chip_power_w", "joules_per_token", "node_power_w")
METRICS_OF = {"train": TRAIN_METRICS + POWER_METRICS, "infer": INFER_METRICS}
"""Metrics a row of each workload can be predicted for (power: training energy too)."""

UNFUSED_ATTENTION_FAMILIES = ("MLM21-", "KOR22-")
"""Runs whose framework had no fused attention: Megatron-LM as of Narayanan et al. 2021 and
Korthikanti et al. 2022 (FlashAttention, Dao et al., appeared in May 2022 and reached
Megatron-LM in 2023). Every other run uses fused attention unless an optional ``attention``
column (``flash`` | ``unfused``) says otherwise."""

MODEL_DEFAULTS = {
    "head_dim": 128,  # heads = hidden / 128 when unknown (Megatron GPT configs, Llama, NeMo)
    "vocab": 51200,  # Megatron-LM's padded GPT-2 vocabulary, when a source gives none
    "ffn_multiple": 4,  # dense MLP width = 4 hidden (GPT-2/3, Megatron) when none is given
}
"""Model cells a source left empty and no catalog model fills (each listed in ``assumed``)."""

GB_MAX_TOKENS = 2**24
"""Most tokens per optimizer step a searched global batch may hold (16.8M): Llama 3 405B's
final batch of 16M tokens (Dubey et al. 2024, "The Llama 3 Herd of Models", sec. 3.4.1: "We
double the batch size again to 16M after pre-training on 2.87T tokens"), the largest batch
of a published dense pre-training run."""

GB_CANDIDATES = 4
"""A training row with an empty global batch evaluates at most this many candidates: the
largest ``base x 2^k`` within :data:`GB_MAX_TOKENS` (``base`` = the row's stated dp x
micro-batch, 1 for each that is empty), keeping the highest throughput."""

FAMILY_PATTERN = re.compile(r"^([A-Za-z0-9]+(?:-T\d+)?)")

MODEL_COLUMNS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "gated_mlp", "vocab",
                 "moe_experts", "moe_topk", "moe_ffn_hidden")
"""Model columns of the CSV; where a row and its catalog model disagree, the row wins (it
describes the measured run) and the disagreement is reported in ``Case.conflicts``."""

CATALOG_ONLY = ("head_dim", "q_lora_rank", "kv_lora_rank", "rope_head_dim", "v_head_dim",
                "kv_latent_dim", "moe_shared_experts", "moe_dense_layers", "sliding_window",
                "sliding_window_layers", "tied_embeddings")
"""ModelSpec fields the CSV cannot express: taken from the matching catalog model."""

_MOE_ONLY = ("moe_shared_experts", "moe_dense_layers")
_INT_COLS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "gated_mlp", "vocab",
             "seq_len", "moe_experts", "moe_topk", "moe_ffn_hidden", "n_chips", "tp", "pp", "dp",
             "cp", "ep", "vpp", "micro_batch", "global_batch", "sequence_parallel", "zero",
             "input_len", "concurrency")
_FLOAT_COLS = ("output_len",)  # a mean generated length for the MLE3 rows
_RANGES = {"gated_mlp": (0, 1), "sequence_parallel": (0, 1), "zero": (0, 3)}
_POSITIVE = ("layers", "hidden", "heads", "kv_heads", "vocab", "seq_len", "n_chips",
             "global_batch", "input_len", "output_len", "concurrency")
"""Columns where 0 is not a value (0 in a mapping column means "search", as empty does)."""


def family_of(case_id: str) -> str:
    """The source family of a case id: its prefix up to the first '-', plus a ``-T<n>`` table
    suffix ("KOR22-T5-3a" -> "KOR22-T5", "MPT-01a" -> "MPT"); the id itself if none."""
    m = FAMILY_PATTERN.match(case_id)
    return m.group(1) if m else case_id


@dataclass(frozen=True)
class Case:
    """One measured value and everything needed to predict it.

    ``reason`` is why it cannot be predicted ("" = it can); ``assumed`` maps what was assumed
    (``"model.<field>"``, ``"chip.<field>"``, ``"input_len"`` ...) to its value and
    ``assumed_reasons`` to its one-line reason; ``conflicts`` maps model fields where the row
    and the catalog model disagree to ``{"row": x, "catalog": y}`` (the row's value is used).
    ``global_batches`` (sequences): candidates evaluated when the row's global batch is empty.
    """

    case_id: str
    workload: str
    metric: str
    measured: float
    chip: str
    n_chips: int
    job: TrainJob | InferJob | None
    mapping: Mapping
    chip_spec: ChipSpec | None = None
    reason: str = ""
    assumed: dict[str, object] = field(default_factory=dict)
    assumed_reasons: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, dict[str, object]] = field(default_factory=dict)
    catalog_model: str | None = None
    from_catalog: dict[str, object] = field(default_factory=dict)
    global_batches: tuple[int, ...] = ()
    moe: bool = False

    @property
    def family(self) -> str:
        """Source family (:func:`family_of`)."""
        return family_of(self.case_id)


class _Row:
    """One CSV row being turned into a Case: parsed cells, what was assumed, and the first
    reason it cannot be predicted."""

    def __init__(self, file: str, line: int, cells: dict[str, str]) -> None:
        self.file, self.line, self.cells = file, line, cells
        self.reason = ""
        self.assumed: dict[str, object] = {}
        self.why: dict[str, str] = {}

    def fail(self, text: str) -> None:
        self.reason = self.reason or text

    def error(self, col: str, expected: str, got: object) -> ConfigError:
        """A ConfigError naming the file, the row (spreadsheet number and case_id), the column."""
        case_id = (self.cells.get("case_id") or "").strip()
        return ConfigError(self.file, f"row {self.line}.{col} (case_id {case_id})", expected, got)

    def assume(self, key: str, value: object, why: str) -> object:
        self.assumed[key] = value
        self.why[key] = why
        return value

    def number(self, col: str, integer: bool = True) -> int | float | None:
        """The cell as a number (None if empty); text is a ConfigError, a value out of range
        a reason for this row."""
        text = self.cells[col].strip()
        if text == "":
            return None
        kind = "an integer" if integer else "a number"
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise self.error(col, f"{kind} or an empty cell", text)
        lo, hi = _RANGES.get(col, (0, math.inf))
        if col in _POSITIVE:
            lo = 1 if integer else math.ulp(0.0)
        if value < lo or value > hi or (integer and value != int(value)):
            span = f"in {lo}..{hi}" if col in _RANGES else (
                "> 0" if col in _POSITIVE else ">= 0")
            raise self.error(col, f"{kind} {span} or an empty cell", text)
        return int(value) if integer else value

    def choice(self, col: str, options: tuple[str, ...], required: bool = False) -> str | None:
        text = (self.cells.get(col) or "").strip()
        if text == "" and not required:
            return None
        if text not in options:
            raise self.error(col, f"one of: {', '.join(options)}", text)
        return text


def default_cases_path() -> Path:
    """The packaged copy of the reference measurements (calibration.csv)."""
    return Path(str(resources.files("codesign.model.catalog").joinpath("calibration.csv")))


def load_cases(path: str | os.PathLike[str] | None = None,
               assume_input_len: int | None = None) -> list[Case]:
    """Read a cases CSV (default: the packaged calibration.csv) into one Case per row.

    A malformed file raises ConfigError (file, row.column, expected, got); a row that cannot
    be predicted gets a ``reason`` instead. ``assume_input_len`` (tokens) fills an inference
    row's empty ``input_len`` (default :data:`ASSUMED_INPUT_LEN`), listed in ``assumed``.

    Example:
        >>> cases = {c.case_id: c for c in load_cases()}
        >>> cases["MLE3-L31-8B-H100-1x-bs8-tput"].assumed["input_len"]
        212
    """
    path = Path(path) if path is not None else default_cases_path()
    file = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "<file>", "an existing CSV file", "no such file") from None
    except OSError as exc:
        raise ConfigError(file, "<file>", "a readable CSV file", exc.strerror or str(exc)) \
            from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "<file>", "UTF-8 text", f"byte at offset {exc.start}") from None
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines())
    header = reader.fieldnames or []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConfigError(file, "<header>",
                          f"the columns of calibration.csv ({', '.join(COLUMNS)})",
                          f"missing {', '.join(missing)}")
    input_len = ASSUMED_INPUT_LEN if assume_input_len is None else assume_input_len
    chips: dict[str, tuple[ChipSpec, dict[str, assume.Assumption]]] = {}
    cases: list[Case] = []
    seen: set[str] = set()
    for i, r in enumerate(reader, start=2):  # row numbers as a spreadsheet shows them
        if None in r or any(v is None for v in r.values()):
            raise ConfigError(file, f"row {i}", f"{len(header)} cells", "a different count")
        case = _case(_Row(file, i, r), input_len, chips)
        if case.case_id in seen:
            raise ConfigError(file, f"row {i}.case_id", "a unique id", case.case_id)
        seen.add(case.case_id)
        cases.append(case)
    if not cases:
        raise ConfigError(file, "<rows>", "at least one case", "none")
    return cases


def _case(row: _Row, input_len: int,
          chips: dict[str, tuple[ChipSpec, dict[str, assume.Assumption]]]) -> Case:
    r = row.cells
    v = {c: row.number(c) for c in _INT_COLS}
    v |= {c: row.number(c, integer=False) for c in _FLOAT_COLS}
    case_id = r["case_id"].strip()
    workload = row.choice("workload", ("train", "infer"), required=True)
    metric = row.choice("metric", TRAIN_METRICS + INFER_METRICS, required=True)
    recompute = row.choice("recompute", RECOMPUTE_MODES)
    precision = row.choice("precision", PRECISIONS)
    attention = row.choice("attention", ATTENTION_IMPLS)
    measured = _measured(row)
    if not case_id:
        row.fail("case_id is empty")
    if metric not in METRICS_OF[workload]:
        row.fail(f"metric {metric} is not predicted for a {workload} row "
                 f"(expected one of: {', '.join(METRICS_OF[workload])})")
    if precision is None:
        precision = str(row.assume("precision", "bf16", "precision empty: bf16, the matmul "
                                   "precision of mixed-precision runs unless a source says "
                                   "fp8 or fp16"))
    if attention is None:
        attention = "unfused" if case_id.startswith(UNFUSED_ATTENTION_FAMILIES) else "flash"
    _check_row(row, v)
    n_chips = v["n_chips"] or 0
    if v["n_chips"] is None:
        row.fail("n_chips is empty: the number of chips of the run is needed")
    chip_spec = _chip(row, r["chip"].strip(), metric, chips)
    model, moe, extra = _model(row, v)
    job = _job(row, workload, model, v, precision, attention, input_len)
    batches = _global_batches(v) if workload == "train" and v["global_batch"] is None else ()
    sp = v["sequence_parallel"]
    mapping = Mapping(
        tp=v["tp"] or 0, pp=v["pp"] or 0, dp=v["dp"] or 0, cp=v["cp"] or 0, ep=v["ep"] or 0,
        vpp=v["vpp"] or 0, micro_batch=v["micro_batch"] or 0, recompute=recompute,
        zero=v["zero"], sequence_parallel=None if sp is None else bool(sp),
        # the published runs keep their model states in HBM (the schema has no column for
        # offloaded states; MaxText's host offloading of layer inputs is recompute's)
        offload="none",
    )
    return Case(case_id, workload, metric, measured, r["chip"].strip(), n_chips,
                job if not row.reason else None, mapping, chip_spec, row.reason,
                row.assumed, row.why, extra["conflicts"], extra["catalog_model"],
                extra["from_catalog"], batches, moe)


def _check_row(row: _Row, v: dict[str, int | float | None]) -> None:
    """The rules an experiment file enforces on a model and a mapping, applied to the cells
    the row states (empty cells are searched or assumed later): a ConfigError naming the
    row and column."""
    hidden, heads, kv, experts, topk = (v[c] for c in ("hidden", "heads", "kv_heads",
                                                        "moe_experts", "moe_topk"))
    name = row.cells["model"].strip()
    cat = catalog.get_model(cid) if name and (cid := catalog.match_model(name)) else None
    own_head_dim = cat is not None and cat.head_dim != cat.hidden // max(cat.heads, 1)
    if hidden is not None and heads is not None and hidden % heads and not own_head_dim:
        raise row.error("heads", f"a divisor of hidden ({hidden})", heads)
    if heads is not None and kv is not None and heads % kv:
        raise row.error("kv_heads", f"a divisor of heads ({heads})", kv)
    if experts is not None and topk is not None and topk > experts:
        raise row.error("moe_topk", f"an integer <= moe_experts ({experts})", topk)
    degrees = [v[c] for c in ("tp", "pp", "dp", "cp")]
    if v["n_chips"] is not None and all(degrees):
        product = math.prod(int(d) for d in degrees if d is not None)
        if product != v["n_chips"]:
            raise row.error("n_chips", f"tp x pp x dp x cp ({product}) when all four are given",
                            v["n_chips"])


def _measured(row: _Row) -> float:
    text = row.cells["value"].strip()
    if text == "":
        row.fail("value is empty: no measured value to compare with")
        return math.nan
    try:
        measured = float(text)
    except ValueError:
        measured = math.nan
    if not math.isfinite(measured) or measured <= 0:
        raise row.error("value", "a number > 0 (the measured value) or an empty cell", text)
    return measured


def _chip(row: _Row, chip_id: str, metric: str,
          cache: dict[str, tuple[ChipSpec, dict[str, assume.Assumption]]]) -> ChipSpec | None:
    """The catalog chip completed by :mod:`codesign.model.catalog.assume`, assumptions listed."""
    if chip_id not in catalog.chip_ids():
        row.fail(f"unknown chip {chip_id!r} (known: {', '.join(catalog.chip_ids())})")
        return None
    if chip_id not in cache:
        cache[chip_id] = assume.explain_unknowns(catalog.get_chip(chip_id))
    chip, why = cache[chip_id]
    if metric in POWER_METRICS:
        why = {**why, **assume.energy_fallbacks(chip)}
    for name, a in why.items():
        row.assume(f"chip.{name}", a.value, a.reason)
    return chip


def _model(row: _Row, v: dict[str, int | float | None]
           ) -> tuple[ModelSpec | None, bool, dict[str, object]]:
    """The row's model: its own cells first, then the matching catalog model, then
    :data:`MODEL_DEFAULTS`; (model or None with a reason, MoE?, catalog details)."""
    name = row.cells["model"].strip()
    cat_id = catalog.match_model(name) if name else None
    cat = catalog.get_model(cat_id) if cat_id is not None else None
    m: dict[str, int | None] = {c: None if v[c] is None else int(v[c]) for c in MODEL_COLUMNS}
    conflicts = {c: {"row": m[c], "catalog": int(getattr(cat, c))} for c in MODEL_COLUMNS
                 if cat is not None and m[c] is not None and m[c] != int(getattr(cat, c))}
    experts = m["moe_experts"] if m["moe_experts"] is not None else (
        cat.moe_experts if cat is not None else 0)
    moe = experts > 0
    for col in MODEL_COLUMNS:
        if m[col] is not None:
            continue
        if cat is None:
            m[col] = _model_default(row, col, m, moe, name)
        elif ((col == "ffn_hidden" and moe and not cat.moe_dense_layers)
              or (col in ("moe_topk", "moe_ffn_hidden") and not moe)):
            m[col] = 0  # no dense MLP (every layer MoE) or no experts: nothing to assume
        else:
            m[col] = int(row.assume(f"model.{col}", int(getattr(cat, col)),
                                    f"{col} empty: catalog model {cat_id}"))
    extra: dict[str, object] = {"conflicts": conflicts, "catalog_model": cat_id,
                                "from_catalog": {}}
    kwargs: dict[str, object] = {}
    if cat is not None:
        for f in CATALOG_ONLY:
            value = getattr(cat, f)
            if (not value or (f in _MOE_ONLY and not moe)
                    or (f == "head_dim" and value == cat.hidden // max(cat.heads, 1))
                    or (f == "v_head_dim" and value == cat.head_dim)):
                continue  # absent, or derived from the shape: the row's own shape derives it
            kwargs[f] = value
        extra["from_catalog"] = dict(kwargs)
    if any(x is None for x in m.values()):
        return None, moe, extra
    try:
        model = ModelSpec(name=name, layers=m["layers"], hidden=m["hidden"], heads=m["heads"],
                          kv_heads=m["kv_heads"], ffn_hidden=m["ffn_hidden"], vocab=m["vocab"],
                          gated_mlp=bool(m["gated_mlp"]), moe_experts=m["moe_experts"],
                          moe_topk=m["moe_topk"], moe_ffn_hidden=m["moe_ffn_hidden"], **kwargs)
    except (ValueError, TypeError) as exc:
        row.fail(f"model {name!r}: {exc}")
        return None, moe, extra
    return model, moe, extra


def _model_default(row: _Row, col: str, m: dict[str, int | None], moe: bool,
                   name: str) -> int | None:
    """A model cell that is empty with no catalog model: MODEL_DEFAULTS, else a reason."""
    hidden, nocat = m["hidden"], f"no catalog model matches {name!r}"
    if col in ("layers", "hidden") or (moe and col in ("moe_topk", "moe_ffn_hidden")):
        kind = "an MoE model's " if moe and col.startswith("moe") else ""
        row.fail(f"{kind}{col} is empty and {nocat}")
        return None
    if col in ("moe_topk", "moe_ffn_hidden") or (col == "ffn_hidden" and moe):
        return 0  # a dense model has no experts; an all-MoE model no dense MLP
    if col == "moe_experts":
        return int(row.assume("model.moe_experts", 0, f"moe_experts empty ({nocat}): dense"))
    if col == "vocab":
        return int(row.assume("model.vocab", MODEL_DEFAULTS["vocab"],
                              f"vocab empty ({nocat}): Megatron-LM's padded GPT-2 vocabulary"))
    if col == "gated_mlp":
        return int(row.assume("model.gated_mlp", 0,
                              f"gated_mlp empty ({nocat}): a 2-matrix GELU MLP (GPT)"))
    if hidden is None:
        return None  # heads, kv_heads, ffn_hidden derive from hidden (its reason is given)
    if col == "heads":
        hd = MODEL_DEFAULTS["head_dim"]
        return int(row.assume("model.heads", max(1, hidden // hd),
                              f"heads empty ({nocat}): hidden / {hd}"))
    if col == "kv_heads":
        return int(row.assume("model.kv_heads", m["heads"],
                              f"kv_heads empty ({nocat}): = heads (multi-head attention)"))
    k = MODEL_DEFAULTS["ffn_multiple"]  # ffn_hidden of a dense model
    return int(row.assume("model.ffn_hidden", k * hidden,
                          f"ffn_hidden empty ({nocat}): {k} x hidden"))


def _job(row: _Row, workload: str, model: ModelSpec | None,
         v: dict[str, int | float | None], precision: str, attention: str,
         input_len: int) -> TrainJob | InferJob | None:
    if workload == "train":
        if not v["seq_len"]:
            row.fail("seq_len is empty: the training sequence length is needed")
            return None
        if model is None:
            return None
        return TrainJob(model, int(v["seq_len"]), int(v["global_batch"] or 1), precision,
                        attention)
    isl = v["input_len"]
    if isl is None:
        isl = int(row.assume("input_len", input_len, "input_len empty: mean prompt of real "
                             f"chat traffic ({input_len} tokens; LMSYS-Chat-1M: 69.5)"))
    osl = v["output_len"]
    if osl is None:
        osl = row.assume("output_len", ASSUMED_OUTPUT_LEN, "output_len empty: mean response "
                         f"of real chat traffic ({ASSUMED_OUTPUT_LEN} tokens; LMSYS-Chat-1M: "
                         "214.5)")
    if model is None:
        return None
    conc = v["concurrency"]  # empty: as many requests as fit (a max-throughput run)
    return InferJob(model, int(isl), float(osl), None if conc is None else int(conc), precision)


def _global_batches(v: dict[str, int | float | None]) -> tuple[int, ...]:
    """Candidate global batches (sequences) for a training row whose global_batch is empty:
    the :data:`GB_CANDIDATES` largest ``base x 2^k`` within :data:`GB_MAX_TOKENS`, largest
    first (``base`` alone when even it exceeds the limit)."""
    base = int(v["dp"] or 1) * int(v["micro_batch"] or 1)
    seq = int(v["seq_len"] or 1)
    k_max = 0
    while base * 2 ** (k_max + 1) * seq <= GB_MAX_TOKENS:
        k_max += 1
    return tuple(base * 2**k for k in range(k_max, max(-1, k_max - GB_CANDIDATES), -1))
