"""The bad-input matrix: every command given one bad input exits 2, says which file (or flag),
key, what was expected and what was got, prints no traceback, and creates or changes nothing.

Each case writes its files into a fresh folder (the working directory of the command), takes
a snapshot of every file and folder under it, runs ``codesign`` in-process and compares the
snapshot afterwards: no run directory, no ``runs/``, an existing run byte-identical.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
import stat
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_config import SPACE  # the same tiny space as the config tests

from codesign.cli import main
from codesign.validate.predictions import COLUMNS, default_cases_path

EXPERIMENT = """\
[experiment]
name = "tiny"
description = "test experiment"
search_space = "space.toml"
baselines = ["h100-sxm"]

[workload]
kind = "train"
model = "llama3-8b"
seq_len = 4096
global_batch = 256
precision = "bf16"
attention = "flash"
moe_imbalance = 1.0

[cluster]
n_chips = 1024
topology = "fat-tree"
oversubscription = 1.0
pue = 1.3
scaleup_latency_us = 0.5
host_power_w_per_chip = 100.0

[objectives]
tokens_per_s = "maximize"
die_area_mm2 = "minimize"

[constraints]
die_area_mm2 = { max = 858 }
tdp_w = { max = 1200 }

[budget]
trials = 4

[search]
sampler = "random"
seed = 0
population = 4

[tco]
energy_usd_per_kwh = 0.08
"""

INFER = """\
[workload]
kind = "infer"
model = "llama3-8b"
input_len = 2000
output_len = 500
concurrency = 64
precision = "bf16"
kv_precision = "bf16"
ttft_slo_s = 2.0
itl_slo_s = 0.1
"""

TRAIN_WORKLOAD = EXPERIMENT[EXPERIMENT.index("[workload]"):EXPERIMENT.index("[cluster]")]

INLINE_MODEL = ('model = { name = "toy", layers = 4, hidden = 128, heads = 4, kv_heads = 2, '
                "ffn_hidden = 512, vocab = 1000 }")

DESIGN = """\
[design]
process_nm = 4
compute_units = 128
clock_ghz = 1.8
hbm_gen = "HBM3e"
hbm_stacks = 6
"""

SEARCH = ("search", "{tmp}/exp.toml", "--out", "{tmp}/out", "--no-progress")
EVALUATE = ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b", "--n-chips", "64",
            "--json")
EVAL_INFER = ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b", "--n-chips", "8",
              "--input-len", "1000", "--json")
CSV_ROWS = ("MLM21-T1-09", "KOR22-T5-3a")  # MLM21-T1-09: no catalog model fills its cells
CL = "<command line>"


@dataclass(frozen=True)
class Bad:
    """One bad input: the files it writes, the command, and what the error line must say.

    ``{tmp}`` in any string is the case's folder. ``exp``/``space``/``infer`` edit the
    templates ((old, new): old replaced once; old ``"*"`` replaces the whole text), ``files``
    adds files (text, or bytes), ``run`` copies a finished run to ``{tmp}/run``, ``csv``
    edits the rows of ``{tmp}/cases.csv`` (row index, column, text), ``setup`` names a folder
    to make (``ro/`` is made read-only), ``more`` lists other text the message must hold.
    """

    id: str
    argv: tuple[str, ...]
    file: str
    key: str
    expected: str
    got: str
    exp: tuple[str, str] | None = None
    space: tuple[str, str] | None = None
    infer: bool = False
    files: tuple[tuple[str, str | bytes], ...] = ()
    run: bool = False
    csv: tuple[tuple[int, str, str], ...] | None = None
    csv_drop: tuple[str, ...] = ()
    setup: str = ""
    more: tuple[str, ...] = field(default=())  # other substrings the message must hold


def E(id: str, old: str, new: str, key: str, expected: str, got: str, *, infer: bool = False,
      argv: tuple[str, ...] = SEARCH, **kw) -> Bad:
    """An experiment-file case (the error names exp.toml)."""
    return Bad(id, argv, "{tmp}/exp.toml", key, expected, got, exp=(old, new), infer=infer, **kw)


def S(id: str, old: str, new: str, key: str, expected: str, got: str, **kw) -> Bad:
    """A search-space-file case (the error names space.toml)."""
    return Bad("space-" + id, SEARCH, "{tmp}/space.toml", key, expected, got, space=(old, new),
               **kw)


def F(id: str, argv: tuple[str, ...], key: str, expected: str, got: str, **kw) -> Bad:
    """A command-line case (the error names the flag)."""
    return Bad("flag-" + id, argv, kw.pop("file", CL), key, expected, got, **kw)


def D(id: str, text: str | bytes, key: str, expected: str, got: str) -> Bad:
    """A chip design file given to evaluate."""
    argv = ("evaluate", "--chip", "{tmp}/chip.toml", "--workload", "llama3-8b", "--n-chips",
            "64", "--json")
    return Bad("chip-" + id, argv, "{tmp}/chip.toml", key, expected, got,
               files=(("chip.toml", text),))


def W(id: str, text: str | bytes, key: str, expected: str, got: str) -> Bad:
    """A workload file given to evaluate."""
    argv = ("evaluate", "--chip", "h100-sxm", "--workload", "{tmp}/work.toml", "--n-chips",
            "64", "--json")
    return Bad("workload-" + id, argv, "{tmp}/work.toml", key, expected, got,
               files=(("work.toml", text),))


def C(id: str, edits: tuple[tuple[int, str, str], ...], key: str, expected: str, got: str,
      **kw) -> Bad:
    """A validate --cases CSV case (row 2 = MLM21-T1-09, row 3 = KOR22-T5-3a)."""
    more = kw.pop("more", (f"(case_id {CSV_ROWS[edits[-1][0]]})",) if edits else ())
    return Bad("csv-" + id, ("validate", "--cases", "{tmp}/cases.csv", "--json"),
               "{tmp}/cases.csv", key, expected, got, csv=edits, more=more, **kw)


def ST(id: str, url: str, expected: str, got: str, **kw) -> Bad:
    """A --storage case on search."""
    return Bad("storage-" + id, (*SEARCH, "--storage", url), CL, "--storage", expected, got,
               **kw)


BOM = "\ufeff"
WHOLE = "*"

EXPERIMENT_CASES = [
    E("empty-file", WHOLE, "", "experiment", "a table [experiment]", "nothing"),
    E("bom", WHOLE, BOM + EXPERIMENT, "<file>", "without a byte-order mark", "byte-order mark"),
    E("non-utf8", 'description = "test experiment"', 'description = "caf\udce9"', "<file>",
      "UTF-8 text", "byte 0xe9 at line 3"),
    E("syntax", "trials = 4", "trials = ", "<toml>", "valid TOML", "Invalid value"),
    E("duplicate-key", "trials = 4", "trials = 4\ntrials = 5", "<toml>", "valid TOML",
      "defined twice"),
    E("duplicate-table", "[budget]\ntrials = 4", "[budget]\ntrials = 4\n[budget]\ntrials = 5",
      "<toml>", "valid TOML", "defined twice"),
    E("unknown-section", "[budget]", "[budgte]", "budgte", "did you mean 'budget'?",
      "unknown key 'budgte'"),
    E("unknown-key-experiment", 'description = "test experiment"', 'descr = "x"',
      "experiment.descr", "one of: name", "unknown key 'descr'"),
    E("name-missing", 'name = "tiny"\n', "", "experiment.name", "a string", "nothing"),
    E("name-int", 'name = "tiny"', "name = 7", "experiment.name", "a string", "7"),
    E("name-path", 'name = "tiny"', 'name = "../tiny"', "experiment.name",
      "it becomes a directory name", "'../tiny'"),
    E("name-empty", 'name = "tiny"', 'name = ""', "experiment.name",
      "it becomes a directory name", "''"),
    E("description-int", 'description = "test experiment"', "description = 3",
      "experiment.description", "a string", "3"),
    E("search-space-missing", 'search_space = "space.toml"\n', "", "experiment.search_space",
      "a string", "nothing"),
    E("search-space-int", 'search_space = "space.toml"', "search_space = 1",
      "experiment.search_space", "a string", "1"),
    E("search-space-nonexistent", 'search_space = "space.toml"', 'search_space = "no.toml"',
      "experiment.search_space", "a search space file", "'no.toml'"),
    E("search-space-directory", 'search_space = "space.toml"', 'search_space = "."',
      "experiment.search_space", "a search space file", "'.'"),
    E("baselines-string", 'baselines = ["h100-sxm"]', 'baselines = "h100-sxm"',
      "experiment.baselines", "an array", "'h100-sxm'"),
    E("baselines-unknown", 'baselines = ["h100-sxm"]', 'baselines = ["h100-pcie"]',
      "experiment.baselines[0]", "one of: a100-sxm-80gb", "'h100-pcie'"),
    E("baselines-duplicate", 'baselines = ["h100-sxm"]', 'baselines = ["h100-sxm", "h100-sxm"]',
      "experiment.baselines[1]", "no duplicates", "'h100-sxm'"),
    E("baselines-int", 'baselines = ["h100-sxm"]', "baselines = [1]", "experiment.baselines[0]",
      "one of:", "1"),
    E("workload-missing", TRAIN_WORKLOAD, "", "workload", "a table [workload]", "nothing"),
    E("kind-missing", 'kind = "train"\n', "", "workload.kind", "one of: train, infer",
      "nothing"),
    E("kind-bad", 'kind = "train"', 'kind = "serve"', "workload.kind", "one of: train, infer",
      "'serve'"),
    E("model-unknown", 'model = "llama3-8b"', 'model = "llama3-7b"', "workload.model",
      "a catalog model id", "'llama3-7b'"),
    E("model-int", 'model = "llama3-8b"', "model = 8", "workload.model", "a catalog model id",
      "8"),
    E("seq-len-zero", "seq_len = 4096", "seq_len = 0", "workload.seq_len", "an integer", "0"),
    E("seq-len-negative", "seq_len = 4096", "seq_len = -1", "workload.seq_len", "an integer",
      "-1"),
    E("seq-len-float", "seq_len = 4096", "seq_len = 4096.5", "workload.seq_len", "an integer",
      "4096.5"),
    E("seq-len-string", "seq_len = 4096", 'seq_len = "4096"', "workload.seq_len", "an integer",
      "'4096'"),
    E("seq-len-missing", "seq_len = 4096\n", "", "workload.seq_len", "an integer", "nothing"),
    E("seq-len-huge", "seq_len = 4096", "seq_len = 1000000000000", "workload.seq_len",
      "an integer in [1, ", "1000000000000"),
    E("global-batch-1e12", "global_batch = 256", "global_batch = 1e12", "workload.global_batch",
      "an integer in [1, ", "1000000000000.0"),
    E("global-batch-huge-int", "global_batch = 256", "global_batch = 1000000000000",
      "workload.global_batch", "an integer in [1, ", "1000000000000"),
    E("global-batch-zero", "global_batch = 256", "global_batch = 0", "workload.global_batch",
      "an integer", "0"),
    E("global-batch-bool", "global_batch = 256", "global_batch = true",
      "workload.global_batch", "an integer", "True"),
    E("precision-bad", 'precision = "bf16"', 'precision = "int8"', "workload.precision",
      "one of: fp32, fp16, bf16, fp8, fp4", "'int8'"),
    E("attention-bad", 'attention = "flash"', 'attention = "sparse"', "workload.attention",
      "one of:", "'sparse'"),
    E("moe-imbalance-low", "moe_imbalance = 1.0", "moe_imbalance = 0.5",
      "workload.moe_imbalance", "a number in [1.0, 16.0]", "0.5"),
    E("moe-imbalance-nan", "moe_imbalance = 1.0", "moe_imbalance = nan",
      "workload.moe_imbalance", "a number in [1.0, 16.0]", "nan"),
    E("train-tokens-negative", "moe_imbalance = 1.0", "train_tokens = -1",
      "workload.train_tokens", "a number > 0", "-1"),
    E("train-tokens-zero", "moe_imbalance = 1.0", "train_tokens = 0", "workload.train_tokens",
      "a number > 0", "0"),
    E("train-tokens-inf", "moe_imbalance = 1.0", "train_tokens = inf",
      "workload.train_tokens", "a number > 0", "inf"),
    E("train-unknown-key", "moe_imbalance = 1.0", "input_len = 100", "workload.input_len",
      "one of: kind", "unknown key 'input_len'"),
    E("cost-per-run-without-train-tokens", 'die_area_mm2 = "minimize"',
      'cost_per_run_usd = "minimize"', "objectives.cost_per_run_usd", "workload.train_tokens",
      "no workload.train_tokens"),
    E("cost-per-run-constraint-without-train-tokens", "tdp_w = { max = 1200 }",
      "cost_per_run_usd = { max = 1e9 }", "constraints.cost_per_run_usd",
      "workload.train_tokens", "no workload.train_tokens"),
    E("goodput-days-without-train-tokens", 'die_area_mm2 = "minimize"',
      'goodput_train_days = "minimize"', "objectives.goodput_train_days",
      "workload.train_tokens", "no workload.train_tokens"),
    E("train-days-percentile-without-train-tokens", 'die_area_mm2 = "minimize"',
      '"train_days@p90" = "minimize"', "objectives.train_days@p90", "workload.train_tokens",
      "no workload.train_tokens"),
    # serving workloads
    E("infer-input-len-missing", "input_len = 2000\n", "", "workload.input_len", "an integer",
      "nothing", infer=True),
    E("infer-input-len-zero", "input_len = 2000", "input_len = 0", "workload.input_len",
      "an integer", "0", infer=True),
    E("infer-output-len-low", "output_len = 500", "output_len = 0.5", "workload.output_len",
      "a number", "0.5", infer=True),
    E("infer-output-len-huge", "output_len = 500", "output_len = 1e30", "workload.output_len",
      "a number in [1.0, ", "1e+30", infer=True),
    E("infer-concurrency-zero", "concurrency = 64", "concurrency = 0", "workload.concurrency",
      "an integer", "0", infer=True),
    E("infer-ttft-zero", "ttft_slo_s = 2.0", "ttft_slo_s = 0", "workload.ttft_slo_s",
      "a number > 0", "0", infer=True),
    E("infer-itl-negative", "itl_slo_s = 0.1", "itl_slo_s = -0.1", "workload.itl_slo_s",
      "a number > 0", "-0.1", infer=True),
    E("infer-kv-precision-bad", 'kv_precision = "bf16"', 'kv_precision = "int4"',
      "workload.kv_precision", "one of:", "'int4'", infer=True),
    E("infer-seq-len", "concurrency = 64", "seq_len = 4096", "workload.seq_len", "one of: kind",
      "unknown key 'seq_len'", infer=True),
    E("infer-attention", "concurrency = 64", 'attention = "flash"', "workload.attention",
      "one of: kind", "unknown key 'attention'", infer=True),
    E("infer-train-metric", 'die_area_mm2 = "minimize"', 'mfu = "maximize"', "objectives.mfu",
      "one of:", "unknown key 'mfu'", infer=True),
    # inline models
    E("model-heads", 'model = "llama3-8b"', INLINE_MODEL.replace("heads = 4,", "heads = 3,"),
      "workload.model.heads", "a divisor of hidden (128)", "3"),
    E("model-kv-heads", 'model = "llama3-8b"', INLINE_MODEL.replace("kv_heads = 2", "kv_heads = 3"),
      "workload.model.kv_heads", "a divisor of heads (4)", "3"),
    E("model-layers-zero", 'model = "llama3-8b"', INLINE_MODEL.replace("layers = 4", "layers = 0"),
      "workload.model.layers", "an integer >= 1", "0"),
    E("model-hidden-negative", 'model = "llama3-8b"',
      INLINE_MODEL.replace("hidden = 128", "hidden = -128"), "workload.model.hidden",
      "an integer >= 1", "-128"),
    E("model-vocab-float", 'model = "llama3-8b"',
      INLINE_MODEL.replace("vocab = 1000", "vocab = 1000.5"), "workload.model.vocab",
      "an integer >= 1", "1000.5"),
    E("model-topk", 'model = "llama3-8b"',
      INLINE_MODEL.replace(" }", ", moe_experts = 8, moe_topk = 9, moe_ffn_hidden = 64 }"),
      "workload.model.moe_topk", "an integer <= moe_experts (8)", "9"),
    E("model-unknown-key", 'model = "llama3-8b"', INLINE_MODEL.replace(" }", ", experts = 8 }"),
      "workload.model.experts", "did you mean", "unknown key 'experts'"),
    E("model-name-missing", 'model = "llama3-8b"', INLINE_MODEL.replace('name = "toy", ', ""),
      "workload.model.name", "a string", "nothing"),
    E("model-sliding-layers", 'model = "llama3-8b"',
      INLINE_MODEL.replace(" }", ", sliding_window = 64, sliding_window_layers = 9 }"),
      "workload.model.sliding_window_layers", "an integer <= layers (4)", "9"),
    E("model-dense-layers", 'model = "llama3-8b"',
      INLINE_MODEL.replace(" }", ", moe_dense_layers = 5 }"), "workload.model.moe_dense_layers",
      "an integer <= layers (4)", "5"),
    # cluster
    E("n-chips-zero", "n_chips = 1024", "n_chips = 0", "cluster.n_chips", "an integer in [1, ",
      "0"),
    E("n-chips-negative", "n_chips = 1024", "n_chips = -8", "cluster.n_chips",
      "an integer in [1, ", "-8"),
    E("n-chips-float", "n_chips = 1024", "n_chips = 1024.5", "cluster.n_chips",
      "an integer in [1, ", "1024.5"),
    E("n-chips-huge", "n_chips = 1024", "n_chips = 1000000000000", "cluster.n_chips",
      "an integer in [1, ", "1000000000000"),
    E("n-chips-missing", "n_chips = 1024\n", "", "cluster.n_chips",
      "required here unless the search space sets n_chips", "nothing"),
    E("topology-bad", 'topology = "fat-tree"', 'topology = "ring"', "cluster.topology",
      "one of: fat-tree", "'ring'"),
    E("oversubscription-low", "oversubscription = 1.0", "oversubscription = 0.5",
      "cluster.oversubscription", "a number in [1.0, 16.0]", "0.5"),
    E("oversubscription-inf", "oversubscription = 1.0", "oversubscription = inf",
      "cluster.oversubscription", "a number in [1.0, 16.0]", "inf"),
    E("pue-nan", "pue = 1.3", "pue = nan", "cluster.pue", "a number in [1.0, 3.0]", "nan"),
    E("pue-low", "pue = 1.3", "pue = 0.5", "cluster.pue", "a number in [1.0, 3.0]", "0.5"),
    E("latency-negative", "scaleup_latency_us = 0.5", "scaleup_latency_us = -1",
      "cluster.scaleup_latency_us", "a number >= 0", "-1"),
    E("latency-inf", "scaleup_latency_us = 0.5", "scaleout_latency_us = inf",
      "cluster.scaleout_latency_us", "a number >= 0", "inf"),
    E("host-power-string", "host_power_w_per_chip = 100.0", 'host_power_w_per_chip = "x"',
      "cluster.host_power_w_per_chip", "a number >= 0", "'x'"),
    E("power-budget-zero", "n_chips = 1024", "power_budget_mw = 0", "cluster.power_budget_mw",
      "a number > 0", "0"),
    E("power-budget-with-n-chips", "pue = 1.3", "pue = 1.3\npower_budget_mw = 10",
      "cluster.power_budget_mw", "either power_budget_mw or n_chips", "10"),
    E("cluster-unknown-key", "pue = 1.3", "peu = 1.3", "cluster.peu", "did you mean 'pue'?",
      "unknown key 'peu'"),
    E("cluster-chip-param", "pue = 1.3", "compute_units = 128", "cluster.compute_units",
      "one of: n_chips", "unknown key 'compute_units'"),
    E("cluster-n-chips-searched", "[budget]", "[budget]", "cluster.n_chips",
      "no value here: the search space", "1024",
      space=("[base]\n", "[base]\nn_chips = 512\n")),
    # objectives
    E("objectives-missing", '[objectives]\ntokens_per_s = "maximize"\ndie_area_mm2 = "minimize"\n',
      "", "objectives", "a table [objectives]", "nothing"),
    E("objectives-empty", 'tokens_per_s = "maximize"\ndie_area_mm2 = "minimize"\n', "",
      "objectives", "at least one entry", "{}"),
    E("objective-unknown", 'die_area_mm2 = "minimize"', 'die_area_mm = "minimize"',
      "objectives.die_area_mm", "did you mean 'die_area_mm2'?", "unknown key 'die_area_mm'"),
    E("objective-direction", 'tokens_per_s = "maximize"', 'tokens_per_s = "maximise"',
      "objectives.tokens_per_s", "one of: maximize, minimize", "'maximise'"),
    E("objective-direction-int", 'tokens_per_s = "maximize"', "tokens_per_s = 1",
      "objectives.tokens_per_s", "one of: maximize, minimize", "1"),
    E("objective-duplicate", 'die_area_mm2 = "minimize"',
      'die_area_mm2 = "minimize"\ntokens_per_s = "minimize"', "<toml>", "valid TOML",
      "defined twice"),
    # constraints
    E("constraint-unknown", "tdp_w = { max = 1200 }", "tdp = { max = 1200 }", "constraints.tdp",
      "did you mean 'tdp_w'?", "unknown key 'tdp'"),
    E("constraint-min-gt-max", "die_area_mm2 = { max = 858 }",
      "die_area_mm2 = { min = 900, max = 858 }", "constraints.die_area_mm2",
      "`min <= max` must hold", "(min=900.0, max=858.0)"),
    E("constraint-empty", "die_area_mm2 = { max = 858 }", "die_area_mm2 = { }",
      "constraints.die_area_mm2", "at least one of min, max", "{}"),
    E("constraint-not-table", "tdp_w = { max = 1200 }", "tdp_w = 1200", "constraints.tdp_w",
      "a table like { min = 0, max = 1 }", "1200"),
    E("constraint-max-negative", "tdp_w = { max = 1200 }", "tdp_w = { max = -5 }",
      "constraints.tdp_w.max", "a number > 0", "-5"),
    E("constraint-max-zero", "tdp_w = { max = 1200 }", "tdp_w = { max = 0 }",
      "constraints.tdp_w.max", "a number > 0", "0"),
    E("constraint-min-negative", "tdp_w = { max = 1200 }", "tdp_w = { min = -1 }",
      "constraints.tdp_w.min", "a number >= 0", "-1"),
    E("constraint-max-nan", "tdp_w = { max = 1200 }", "tdp_w = { max = nan }",
      "constraints.tdp_w.max", "a number", "nan"),
    E("constraint-max-string", "tdp_w = { max = 1200 }", 'tdp_w = { max = "1200" }',
      "constraints.tdp_w.max", "a number", "'1200'"),
    E("constraint-unknown-bound", "tdp_w = { max = 1200 }", "tdp_w = { maximum = 1200 }",
      "constraints.tdp_w.maximum", "one of: min, max", "unknown key 'maximum'"),
    # budget, search
    E("trials-zero", "trials = 4", "trials = 0", "budget.trials", "an integer >= 1", "0"),
    E("trials-negative", "trials = 4", "trials = -5", "budget.trials", "an integer >= 1", "-5"),
    E("trials-float", "trials = 4", "trials = 1.5", "budget.trials", "an integer >= 1", "1.5"),
    E("trials-string", "trials = 4", 'trials = "4"', "budget.trials", "an integer >= 1", "'4'"),
    E("trials-bool", "trials = 4", "trials = true", "budget.trials", "an integer >= 1", "True"),
    E("budget-unknown-key", "trials = 4", "trails = 4", "budget.trails", "did you mean 'trials'?",
      "unknown key 'trails'"),
    E("sampler-bad", 'sampler = "random"', 'sampler = "cmaes"', "search.sampler",
      "one of: nsga2, nsga3, tpe, gp, random", "'cmaes'"),
    E("seed-negative", "seed = 0", "seed = -1", "search.seed", "an integer in [0, 4294967295]",
      "-1"),
    E("seed-huge", "seed = 0", "seed = 4294967296", "search.seed",
      "an integer in [0, 4294967295]", "4294967296"),
    E("population-one", "population = 4", "population = 1", "search.population",
      "an integer >= 2", "1"),
    E("population-zero", "population = 4", "population = 0", "search.population",
      "an integer >= 2", "0"),
    E("search-unknown-key", "population = 4", "popualtion = 4", "search.popualtion",
      "did you mean 'population'?", "unknown key 'popualtion'"),
    # storage in the file
    E("storage-url-int", "[tco]", "[storage]\nurl = 5\n\n[tco]", "storage.url", "a string", "5"),
    E("storage-url-no-scheme", "[tco]", '[storage]\nurl = "x.db"\n\n[tco]', "storage.url",
      "a URL starting with sqlite:///", "'x.db'"),
    E("storage-url-password", "[tco]",
      '[storage]\nurl = "postgresql://alice:s3cret@db.example/codesign"\n\n[tco]', "storage.url",
      "no password in the file", "postgresql://alice:***@db.example/codesign"),
    E("storage-url-unknown-scheme", "[tco]", '[storage]\nurl = "redis://host/0"\n\n[tco]',
      "storage.url", "a URL starting with sqlite:///", "'redis://host/0'"),
    E("storage-url-mysql", "[tco]", '[storage]\nurl = "mysql://u@localhost/db"\n\n[tco]',
      "storage.url", "pip install", "mysql://u@localhost/db"),
    E("storage-url-sqlite-nodir", "[tco]",
      '[storage]\nurl = "sqlite:///{tmp}/nodir/x.db"\n\n[tco]', "storage.url",
      "an existing directory", "{tmp}/nodir"),
    E("storage-unknown-key", "[tco]", '[storage]\nuri = "x.log"\n\n[tco]', "storage.uri",
      "did you mean 'url'?", "unknown key 'uri'"),
    # tco
    E("tco-negative", "energy_usd_per_kwh = 0.08", "energy_usd_per_kwh = -0.08",
      "tco.energy_usd_per_kwh", "a number > 0", "-0.08"),
    E("tco-zero", "energy_usd_per_kwh = 0.08", "amortization_years = 0",
      "tco.amortization_years", "a number > 0", "0"),
    E("tco-nan", "energy_usd_per_kwh = 0.08", "chip_margin = nan", "tco.chip_margin",
      "a number > 0", "nan"),
    E("tco-string", "energy_usd_per_kwh = 0.08", 'switch_usd = "lots"', "tco.switch_usd",
      "a number > 0", "'lots'"),
    E("tco-unknown-key", "energy_usd_per_kwh = 0.08", "energy_usd_per_kw = 0.08",
      "tco.energy_usd_per_kw", "did you mean 'energy_usd_per_kwh'?",
      "unknown key 'energy_usd_per_kw'"),
    # the same experiment through worker
    E("worker-bad-experiment", "trials = 4", "trials = 0", "budget.trials", "an integer >= 1",
      "0", argv=("worker", "{tmp}/exp.toml", "--storage", "{tmp}/j.log", "--study", "tiny",
                 "--out", "{tmp}/out", "--no-progress")),
]

SPACE_CASES = [
    S("empty-file", WHOLE, "", "space", "a table [space]", "nothing"),
    S("bom", WHOLE, BOM + SPACE, "<file>", "without a byte-order mark", "byte-order mark"),
    S("non-utf8", 'description = "test space"', 'description = "\udcff"', "<file>",
      "UTF-8 text", "byte 0xff at line 3"),
    S("syntax", "step = 8", "step = = 8", "<toml>", "valid TOML", "Invalid"),
    S("space-missing", '[space]\nname = "tiny"\ndescription = "test space"\n', "", "space",
      "a table [space]", "nothing"),
    S("name-missing", 'name = "tiny"\n', "", "space.name", "a string", "nothing"),
    S("unknown-key-space", 'description = "test space"', 'descripton = "x"',
      "space.descripton", "did you mean 'description'?", "unknown key 'descripton'"),
    S("unknown-section", "[base]", "[bases]", "bases", "did you mean 'base'?",
      "unknown key 'bases'"),
    S("unknown-param", "[params.clock_ghz]", "[params.clock_hz]", "params.clock_hz",
      "did you mean 'clock_ghz'?", "unknown key 'clock_hz'"),
    S("type-bad", 'type = "float"', 'type = "real"', "params.clock_ghz.type",
      "one of: int, float, categorical", "'real'"),
    S("type-missing", 'type = "float"\n', "", "params.clock_ghz.type", "one of:", "nothing"),
    S("int-as-float", 'type = "int"\nlow = 64', 'type = "float"\nlow = 64',
      "params.compute_units.type", "compute_units is an integer parameter", "'float'"),
    S("low-gt-high", "low = 64", "low = 300", "params.compute_units",
      "`low <= high` must hold", "(low=300, high=256)"),
    S("low-missing", "low = 1.0\n", "", "params.clock_ghz.low", "a number in [0.2, 4.0]",
      "nothing"),
    S("high-missing", "high = 2.0\n", "", "params.clock_ghz.high", "a number in [0.2, 4.0]",
      "nothing"),
    S("low-out-of-range", "low = 1.0", "low = 0.1", "params.clock_ghz.low",
      "a number in [0.2, 4.0]", "0.1"),
    S("high-out-of-range", "high = 256", "high = 5000", "params.compute_units.high",
      "an integer in [1, 4096]", "5000"),
    S("low-nan", "low = 1.0", "low = nan", "params.clock_ghz.low", "a number in [0.2, 4.0]",
      "nan"),
    S("high-inf", "high = 2.0", "high = inf", "params.clock_ghz.high", "a number in [0.2, 4.0]",
      "inf"),
    S("step-zero", "step = 8", "step = 0", "params.compute_units.step", "an integer", "0"),
    S("step-negative", "step = 8", "step = -8", "params.compute_units.step", "an integer", "-8"),
    S("step-float-on-int", "step = 8", "step = 0.5", "params.compute_units.step", "an integer",
      "0.5"),
    S("step-larger-than-range", "step = 8", "step = 1000", "params.compute_units.step",
      "an integer in [1, 192]", "1000"),
    S("step-1e-300", "high = 2.0", "high = 2.0\nstep = 1e-300", "params.clock_ghz.step",
      "grid points", "1e-300"),
    S("step-1e-12", "high = 2.0", "high = 2.0\nstep = 1e-12", "params.clock_ghz.step",
      "grid points", "1e-12"),
    S("step-nan", "high = 2.0", "high = 2.0\nstep = nan", "params.clock_ghz.step", "a number",
      "nan"),
    S("step-too-big-float", "high = 2.0", "high = 2.0\nstep = 5.0", "params.clock_ghz.step",
      "a number in [", "5.0"),
    S("log-not-bool", "log = true", 'log = "yes"', "params.sram_mb.log", "true or false",
      "'yes'"),
    S("log-low-zero", '[params.sram_mb]\ntype = "int"\nlow = 16\nhigh = 512',
      '[params.scaleup_links]\ntype = "int"\nlow = 0\nhigh = 64', "params.scaleup_links.low",
      "a value > 0 when log = true", "0"),
    S("log-with-step", "log = true", "log = true\nstep = 2", "params.sram_mb.step",
      "no step when log = true", "2"),
    S("choices-missing", "choices = [4, 6, 8]\n", "", "params.hbm_stacks.choices",
      "a non-empty array of values", "nothing"),
    S("choices-empty", "choices = [4, 6, 8]", "choices = []", "params.hbm_stacks.choices",
      "a non-empty array of values", "[]"),
    S("choices-not-array", "choices = [4, 6, 8]", "choices = 4", "params.hbm_stacks.choices",
      "a non-empty array of values", "4"),
    S("choices-duplicate", "choices = [4, 6, 8]", "choices = [4, 6, 4]",
      "params.hbm_stacks.choices[2]", "no duplicates (same as choices[0])", "4"),
    S("choice-out-of-range", "choices = [4, 6, 8]", "choices = [4, 6, 32]",
      "params.hbm_stacks.choices[2]", "an integer in [1, 16]", "32"),
    S("choice-wrong-type", "choices = [4, 6, 8]", 'choices = [4, "six"]',
      "params.hbm_stacks.choices[1]", "an integer in [1, 16]", "'six'"),
    S("categorical-with-low", "choices = [4, 6, 8]", "choices = [4, 6, 8]\nlow = 4",
      "params.hbm_stacks.low", "one of: type, choices", "unknown key 'low'"),
    S("base-unknown-key", "process_nm = 4", "process_nn = 4", "base.process_nn",
      "did you mean 'process_nm'?", "unknown key 'process_nn'"),
    S("base-out-of-range", "process_nm = 4", "process_nm = 6", "base.process_nm",
      "one of: 7, 5, 4, 3, 2", "6"),
    S("base-hbm-gen", 'hbm_gen = "HBM3e"', 'hbm_gen = "HBM5"', "base.hbm_gen",
      "one of: HBM2", "'HBM5'"),
    S("base-and-params", "[base]\n", "[base]\ncompute_units = 128\n", "params.compute_units",
      "each parameter in [base] or [params], not both", "also in [base] (compute_units = 128)"),
    S("params-empty", WHOLE, '[space]\nname = "x"\n[params]\n', "params",
      "at least one [params.NAME] table", "{}"),
]

CHIP_CASES = [
    D("n-chips", DESIGN + "n_chips = 64\n", "design.n_chips", "--n-chips",
      "unknown key 'n_chips'"),
    D("topology", DESIGN + 'topology = "torus-3d"\n', "design.topology", "--topology",
      "unknown key 'topology'"),
    D("oversubscription", DESIGN + "oversubscription = 2.0\n", "design.oversubscription",
      "--oversubscription", "unknown key 'oversubscription'"),
    D("pue", DESIGN + "pue = 1.2\n", "design.pue", "a chip parameter",
      "unknown key 'pue'"),
    D("unknown-key", DESIGN + "cores = 8\n", "design.cores", "a chip parameter",
      "unknown key 'cores'"),
    D("wrong-type", DESIGN.replace("compute_units = 128", 'compute_units = "many"'),
      "design.compute_units", "an integer in [1, 4096]", "'many'"),
    D("zero", DESIGN.replace("compute_units = 128", "compute_units = 0"),
      "design.compute_units", "an integer in [1, 4096]", "0"),
    D("clock-high", DESIGN.replace("clock_ghz = 1.8", "clock_ghz = 10"), "design.clock_ghz",
      "a number in [0.2, 4.0]", "10"),
    D("clock-nan", DESIGN.replace("clock_ghz = 1.8", "clock_ghz = nan"), "design.clock_ghz",
      "a number in [0.2, 4.0]", "nan"),
    D("hbm-gen", DESIGN.replace('"HBM3e"', '"HBM9"'), "design.hbm_gen", "one of: HBM2",
      "'HBM9'"),
    D("no-design-table", "compute_units = 128\n", "compute_units", "one of: design",
      "unknown key 'compute_units'"),
    D("empty-file", "", "design", "a table [design]", "nothing"),
    D("bom", BOM + DESIGN, "<file>", "without a byte-order mark", "byte-order mark"),
    D("non-utf8", DESIGN.encode() + b"# caf\xe9\n", "<file>", "UTF-8 text", "byte 0xe9"),
    D("syntax", DESIGN + "hbm_stacks = \n", "<toml>", "valid TOML", "Invalid"),
    D("duplicate-key", DESIGN + "hbm_stacks = 8\n", "<toml>", "valid TOML", "defined twice"),
    Bad("chip-missing-file", ("evaluate", "--chip", "{tmp}/none.toml", "--workload",
                              "llama3-8b", "--json"), "{tmp}/none.toml", "<file>",
        "an existing file", "no such file"),
    Bad("chip-directory", ("evaluate", "--chip", "{tmp}/dir.toml", "--workload", "llama3-8b",
                           "--json"), "{tmp}/dir.toml", "<file>", "a readable file",
        "Is a directory", setup="dir.toml"),
]

WORKLOAD_CASES = [
    W("missing-table", 'kind = "train"\n', "kind", "one of: workload", "unknown key 'kind'"),
    W("empty-file", "", "workload", "a table [workload]", "nothing"),
    W("extra-table", TRAIN_WORKLOAD + "[cluster]\nn_chips = 8\n", "cluster", "one of: workload",
      "unknown key 'cluster'"),
    W("kind-bad", TRAIN_WORKLOAD.replace('"train"', '"serve"'), "workload.kind",
      "one of: train, infer", "'serve'"),
    W("seq-len-zero", TRAIN_WORKLOAD.replace("seq_len = 4096", "seq_len = 0"),
      "workload.seq_len", "an integer", "0"),
    W("global-batch-huge", TRAIN_WORKLOAD.replace("global_batch = 256",
                                                  "global_batch = 1000000000000"),
      "workload.global_batch", "an integer in [1, ", "1000000000000"),
    W("model-unknown", TRAIN_WORKLOAD.replace('"llama3-8b"', '"llama9"'), "workload.model",
      "a catalog model id", "'llama9'"),
    W("unknown-key", TRAIN_WORKLOAD.replace("seq_len", "seqlen"), "workload.seqlen",
      "did you mean 'seq_len'?", "unknown key 'seqlen'"),
    W("infer-output-len", INFER.replace("output_len = 500", "output_len = 0"),
      "workload.output_len", "a number", "0"),
    W("bom", BOM + TRAIN_WORKLOAD, "<file>", "without a byte-order mark", "byte-order mark"),
    W("n-chips-inside", TRAIN_WORKLOAD + "n_chips = 8\n", "workload.n_chips", "one of: kind",
      "unknown key 'n_chips'"),
]


def _ev(*extra: str, base: tuple[str, ...] = EVALUATE) -> tuple[str, ...]:
    return (*base, *extra)


FLAG_CASES = [
    F("oversubscription-half", _ev("--oversubscription", "0.5"), "--oversubscription",
      "a number in [1.0, 16.0]", "0.5"),
    F("oversubscription-huge", _ev("--oversubscription", "100"), "--oversubscription",
      "a number in [1.0, 16.0]", "100"),
    F("oversubscription-nan", _ev("--oversubscription", "nan"), "--oversubscription",
      "a number", "nan"),
    F("tp-16-n-chips-8", ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                          "--n-chips", "8", "--tp", "16", "--json"), "--tp",
      "at most --n-chips (8)", "16"),
    F("tp-pp-over-n-chips", _ev("--tp", "8", "--pp", "16"), "--tp x --pp",
      "at most --n-chips (64)", "128"),
    F("degrees-over-n-chips", _ev("--tp", "4", "--pp", "4", "--cp", "8"),
      "--tp x --pp x --cp", "at most --n-chips (64)", "128"),
    F("degrees-product-not-n-chips", _ev("--tp", "2", "--pp", "2", "--dp", "2", "--cp", "2"),
      "--tp x --pp x --dp x --cp", "equal to --n-chips (64)", "16"),
    F("seq-len-with-input-len", _ev("--seq-len", "2048", base=EVAL_INFER), "--seq-len",
      "training only", "--seq-len 2048 with --input-len"),
    F("global-batch-with-input-len", _ev("--global-batch", "64", base=EVAL_INFER),
      "--global-batch", "training only", "--global-batch 64 with --input-len"),
    F("concurrency-without-input-len", _ev("--concurrency", "8"), "--concurrency",
      "serving only", "--concurrency 8 without --input-len"),
    F("ttft-without-input-len", _ev("--ttft-slo-s", "1"), "--ttft-slo-s", "serving only",
      "--ttft-slo-s 1.0 without --input-len"),
    F("kv-precision-without-input-len", _ev("--kv-precision", "fp8"), "--kv-precision",
      "serving only", "--kv-precision fp8 without --input-len"),
    F("output-len-without-input-len", _ev("--output-len", "100"), "--output-len",
      "serving only", "--output-len 100.0 without --input-len"),
    F("seq-len-with-workload-file", ("evaluate", "--chip", "h100-sxm", "--workload",
                                     "{tmp}/work.toml", "--seq-len", "2048", "--json"),
      "--seq-len", "a model id", "--seq-len 2048 with --workload {tmp}/work.toml",
      files=(("work.toml", TRAIN_WORKLOAD),)),
    F("n-chips-zero", _ev("--n-chips", "0"), "--n-chips", "an integer in [1, 10000000]", "0"),
    F("n-chips-negative", _ev("--n-chips", "-4"), "--n-chips", "an integer in [1, 10000000]", "-4"),
    F("n-chips-text", _ev("--n-chips", "abc"), "--n-chips", "an integer in [1, 10000000]", "abc"),
    F("n-chips-float", _ev("--n-chips", "1.5"), "--n-chips", "an integer in [1, 10000000]", "1.5"),
    F("n-chips-huge", _ev("--n-chips", "1000000000000"), "--n-chips", "an integer in [1, ",
      "1000000000000"),
    F("tp-zero", _ev("--tp", "0"), "--tp", "an integer >= 1", "0"),
    F("pp-negative", _ev("--pp", "-2"), "--pp", "an integer >= 1", "-2"),
    F("dp-zero", _ev("--dp", "0"), "--dp", "an integer >= 1", "0"),
    F("cp-zero", _ev("--cp", "0"), "--cp", "an integer >= 1", "0"),
    F("ep-zero", _ev("--ep", "0"), "--ep", "an integer >= 1", "0"),
    F("vpp-zero", _ev("--vpp", "0"), "--vpp", "an integer >= 1", "0"),
    F("micro-batch-zero", _ev("--micro-batch", "0"), "--micro-batch", "an integer >= 1", "0"),
    F("zero-5", _ev("--zero", "5"), "--zero", "one of: 0, 1, 2, 3", "5"),
    F("zero-text", _ev("--zero", "x"), "--zero", "a valid value", "x"),
    F("sequence-parallel-2", _ev("--sequence-parallel", "2"), "--sequence-parallel",
      "one of: 0, 1", "2"),
    F("ep-overlap-3", _ev("--ep-overlap", "3"), "--ep-overlap", "one of: 0, 1", "3"),
    F("hybrid-shard-2", _ev("--hybrid-shard", "2"), "--hybrid-shard", "one of: 0, 1", "2"),
    F("recompute-bad", _ev("--recompute", "some"), "--recompute", "one of:", "some"),
    F("precision-bad", _ev("--precision", "int8"), "--precision", "one of:", "int8"),
    F("kv-precision-bad", _ev("--kv-precision", "int8", base=EVAL_INFER), "--kv-precision",
      "one of:", "int8"),
    F("attention-bad", _ev("--attention", "sparse"), "--attention", "one of:", "sparse"),
    F("topology-bad", _ev("--topology", "ring"), "--topology", "one of:", "ring"),
    F("power-budget-zero", ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                            "--power-budget-mw", "0"), "--power-budget-mw", "a number > 0",
      "0"),
    F("power-budget-inf", ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                           "--power-budget-mw", "inf"), "--power-budget-mw", "a number > 0",
      "inf"),
    F("power-budget-with-n-chips", _ev("--power-budget-mw", "5"), "--power-budget-mw",
      "either --n-chips or --power-budget-mw", "both"),
    F("power-limit-zero", _ev("--power-limit-w", "0"), "--power-limit-w", "a number > 0", "0"),
    F("power-limit-nan", _ev("--power-limit-w", "nan"), "--power-limit-w", "a number > 0",
      "nan"),
    F("scaleout-zero", _ev("--scaleout-gbps", "0"), "--scaleout-gbps", "a number > 0", "0"),
    F("scaleout-negative", _ev("--scaleout-gbps", "-5"), "--scaleout-gbps", "a number > 0",
      "-5"),
    F("output-len-zero", _ev("--output-len", "0", base=EVAL_INFER), "--output-len",
      "a number in [1.0, ", "0"),
    F("concurrency-zero", _ev("--concurrency", "0", base=EVAL_INFER), "--concurrency",
      "an integer in [1, 16777216]", "0"),
    F("itl-negative", _ev("--itl-slo-s", "-1", base=EVAL_INFER), "--itl-slo-s",
      "a number > 0", "-1"),
    F("input-len-zero", _ev("--input-len", "0"), "--input-len", "an integer in [1, 16777216]", "0"),
    F("seq-len-zero", _ev("--seq-len", "0"), "--seq-len", "an integer in [1, 16777216]", "0"),
    F("seq-len-huge", _ev("--seq-len", "1000000000000"), "--seq-len", "an integer in [1, ",
      "1000000000000"),
    F("global-batch-float", _ev("--global-batch", "1.5"), "--global-batch",
      "an integer in [1, 16777216]", "1.5"),
    F("global-batch-1e12", _ev("--global-batch", "1000000000000"), "--global-batch",
      "an integer in [1, ", "1000000000000"),
    F("chip-unknown", ("evaluate", "--chip", "h100-pcie", "--workload", "llama3-8b"), "--chip",
      "a design TOML or one of:", "h100-pcie"),
    F("workload-unknown", ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-7b"),
      "--workload", "a workload TOML or one of:", "llama3-7b"),
    F("evaluate-no-chip", ("evaluate", "--workload", "llama3-8b"), "codesign evaluate",
      "valid flags", "required: --chip"),
    F("evaluate-unknown-flag", _ev("--chips", "8"), "codesign", "valid flags",
      "unrecognized arguments: --chips"),
    F("unknown-command", ("serch", "x.toml"), "command", "one of:", "serch"),
    # search / resume / worker
    F("search-trials-zero", (*SEARCH, "--trials", "0"), "--trials", "an integer >= 1", "0"),
    F("search-seed-negative", (*SEARCH, "--seed", "-1"), "--seed", "an integer >= 0", "-1"),
    F("search-workers-zero", (*SEARCH, "--workers", "0"), "--workers", "an integer >= 1", "0"),
    F("search-sampler-bad", (*SEARCH, "--sampler", "cmaes"), "--sampler", "one of:", "cmaes"),
    F("search-study-path", (*SEARCH, "--study", "../x"), "--study", "a name of letters",
      "../x"),
    F("search-study-empty", (*SEARCH, "--study", ""), "--study", "a name of letters", "''"),
    F("search-experiment-missing", ("search", "{tmp}/none.toml", "--out", "{tmp}/out"),
      "<file>", "an existing file", "no such file", file="{tmp}/none.toml"),
    F("search-experiment-directory", ("search", "{tmp}", "--out", "{tmp}/out"), "<file>",
      "a readable file", "Is a directory", file="{tmp}"),
    F("search-existing-run-other-study", ("search", "{tmp}/exp.toml", "--out", "{tmp}/run",
                                          "--study", "other", "--no-progress"), "study",
      "study 'tiny'", "'other'", run=True, file="{tmp}/run/run.json"),
    F("search-existing-run-other-storage", ("search", "{tmp}/exp.toml", "--out", "{tmp}/run",
                                            "--storage", "{tmp}/other.log", "--no-progress"),
      "--storage", "this run's storage", "{tmp}/other.log", run=True),
    F("search-changed-experiment", ("search", "{tmp}/exp.toml", "--out", "{tmp}/run",
                                    "--no-progress"), "<experiment>",
      "--allow-space-change", "a changed experiment", run=True, exp=("pue = 1.3", "pue = 1.4"),
      file="{tmp}/exp.toml"),
    F("resume-trials-zero", ("resume", "{tmp}/run", "--trials", "0"), "--trials",
      "an integer >= 1", "0", run=True),
    F("resume-not-a-run", ("resume", "{tmp}/empty"), "<run directory>",
      "a run directory with run.json", "no such file", setup="empty/", file="{tmp}/empty"),
    F("resume-missing", ("resume", "{tmp}/none"), "<run directory>",
      "a run directory with run.json", "no such file", file="{tmp}/none"),
    F("worker-no-storage", ("worker", "{tmp}/exp.toml", "--study", "tiny"), "codesign worker",
      "valid flags", "required: --storage"),
    F("worker-trials-zero", ("worker", "{tmp}/exp.toml", "--storage", "{tmp}/j.log", "--study",
                             "tiny", "--trials", "0"), "--trials", "an integer >= 1", "0"),
    F("worker-study-bad", ("worker", "{tmp}/exp.toml", "--storage", "{tmp}/j.log", "--study",
                           "a b", "--out", "{tmp}/out"), "--study", "a name of letters", "a b"),
    F("worker-storage-scheme", ("worker", "{tmp}/exp.toml", "--storage", "ftp://h/x",
                                "--study", "tiny", "--out", "{tmp}/out"), "--storage",
      "a journal file path", "ftp://h/x"),
    # commands on a run
    F("pareto-format", ("pareto", "{tmp}/run", "--format", "xml"), "--format",
      "one of: 'table', 'csv', 'json'", "xml", run=True),
    F("pareto-missing", ("pareto", "{tmp}/none"), "<run directory>", "run.json",
      "no such file", file="{tmp}/none"),
    F("report-design-negative", ("report", "{tmp}/run", "--design", "-1"), "--design",
      "an integer >= 0", "-1", run=True),
    F("report-against-unknown", ("report", "{tmp}/run", "--against", "h100-pcie", "-o",
                                 "{tmp}/r.html"), "--against", "one of:", "h100-pcie",
      run=True),
    F("report-missing", ("report", "{tmp}/none", "-o", "{tmp}/r.html"), "<run directory>",
      "run.json", "no such file", file="{tmp}/none"),
    F("compare-against-unknown", ("compare", "{tmp}/run", "--against", "h100-pcie"),
      "--against", "one of:", "h100-pcie", run=True),
    F("compare-format", ("compare", "{tmp}/run", "--against", "h100-sxm", "--format", "csv"),
      "--format", "one of: 'table', 'json'", "csv", run=True),
    F("compare-missing", ("compare", "{tmp}/none", "--against", "h100-sxm"), "<run directory>",
      "run.json", "no such file", file="{tmp}/none"),
    F("doctor-missing", ("doctor", "{tmp}/none"), "target", "a run directory or a journal file",
      "{tmp}/none"),
    F("export-missing", ("export", "{tmp}/none"), "<run directory>", "run.json",
      "no such file", file="{tmp}/none"),
    F("validate-workload", ("validate", "--workload", "eval"), "--workload",
      "one of: 'train', 'infer', 'all'", "eval"),
    F("validate-assume-input-len", ("validate", "--assume-input-len", "0"),
      "--assume-input-len", "an integer >= 1", "0"),
    F("validate-hardware-and-cases", ("validate", "--hardware", "--cases", "x.csv"),
      "--hardware", "--hardware or --cases", "--hardware --cases x.csv"),
    F("bench-search-trials", ("bench", "--search-trials", "0"), "--search-trials",
      "an integer >= 1", "0"),
]

CSV_CASES = [
    C("zero-5", ((0, "zero", "5"),), "row 2.zero", "an integer in 0..3", "5"),
    C("zero-negative", ((0, "zero", "-1"),), "row 2.zero", "an integer in 0..3", "-1"),
    C("sequence-parallel-2", ((0, "sequence_parallel", "2"),), "row 2.sequence_parallel",
      "an integer in 0..1", "2"),
    C("gated-mlp-3", ((0, "gated_mlp", "3"),), "row 2.gated_mlp", "an integer in 0..1", "3"),
    C("layers-zero", ((0, "layers", "0"),), "row 2.layers", "an integer > 0", "0"),
    C("layers-negative", ((0, "layers", "-4"),), "row 2.layers", "an integer > 0", "-4"),
    C("hidden-negative", ((0, "hidden", "-1"),), "row 2.hidden", "an integer > 0", "-1"),
    C("heads-kv-heads", ((0, "heads", "8"), (0, "kv_heads", "3")), "row 2.kv_heads",
      "a divisor of heads (8)", "3"),
    C("heads-hidden", ((0, "heads", "7"), (0, "kv_heads", "7")), "row 2.heads",
      "a divisor of hidden", "7"),
    C("topk-over-experts", ((0, "moe_experts", "8"), (0, "moe_topk", "9"),
                            (0, "moe_ffn_hidden", "1024")), "row 2.moe_topk",
      "an integer <= moe_experts (8)", "9"),
    C("n-chips-product", ((1, "n_chips", "100"),), "row 3.n_chips",
      "tp x pp x dp x cp", "100"),
    C("n-chips-zero", ((0, "n_chips", "0"),), "row 2.n_chips", "an integer > 0", "0"),
    C("tp-negative", ((0, "tp", "-2"),), "row 2.tp", "an integer >= 0", "-2"),
    C("micro-batch-fraction", ((0, "micro_batch", "1.5"),), "row 2.micro_batch",
      "an integer >= 0", "1.5"),
    C("global-batch-zero", ((0, "global_batch", "0"),), "row 2.global_batch",
      "an integer > 0", "0"),
    C("seq-len-zero", ((0, "seq_len", "0"),), "row 2.seq_len", "an integer > 0", "0"),
    C("value-negative", ((0, "value", "-3.5"),), "row 2.value", "a number > 0", "-3.5"),
    C("value-zero", ((0, "value", "0"),), "row 2.value", "a number > 0", "0"),
    C("value-text", ((0, "value", "fast"),), "row 2.value", "a number", "fast"),
    C("n-chips-text", ((0, "n_chips", "4 GPUs"),), "row 2.n_chips", "an integer",
      "4 GPUs"),
    C("tp-nan", ((0, "tp", "nan"),), "row 2.tp", "an integer", "nan"),
    C("vocab-negative", ((0, "vocab", "-5"),), "row 2.vocab", "an integer > 0", "-5"),
    C("recompute-bad", ((0, "recompute", "some"),), "row 2.recompute", "one of:", "some"),
    C("precision-bad", ((0, "precision", "int3"),), "row 2.precision", "one of:", "int3"),
    C("workload-bad", ((0, "workload", "eval"),), "row 2.workload", "one of: train, infer",
      "eval"),
    C("duplicate-id", ((1, "case_id", "MLM21-T1-09"),), "row 3.case_id", "a unique id",
      "MLM21-T1-09", more=()),
    C("missing-column-tp", (), "<header>", "the columns of calibration.csv", "missing tp",
      csv_drop=("tp",)),
    C("missing-column-value", (), "<header>", "the columns of calibration.csv",
      "missing value", csv_drop=("value",)),
    Bad("csv-empty-file", ("validate", "--cases", "{tmp}/e.csv"), "{tmp}/e.csv", "<header>",
        "the columns of calibration.csv", "missing case_id", files=(("e.csv", ""),)),
    Bad("csv-non-utf8", ("validate", "--cases", "{tmp}/l.csv"), "{tmp}/l.csv", "<file>",
        "UTF-8 text", "byte", files=(("l.csv", b"case_id,\xe9\n"),)),
    Bad("csv-directory", ("validate", "--cases", "{tmp}/d.csv"), "{tmp}/d.csv", "<file>",
        "a readable CSV file", "Is a directory", setup="d.csv"),
    Bad("csv-missing", ("validate", "--cases", "{tmp}/none.csv"), "{tmp}/none.csv", "<file>",
        "an existing CSV file", "no such file"),
]

GARBAGE = bytes(range(256)) * 8

STORAGE_CASES = [
    ST("mysql", "mysql://user@localhost/codesign", "pip install", "mysql://user@localhost"),
    ST("mysql-pymysql", "mysql+pymysql://user@localhost/codesign", "pip install",
       "mysql+pymysql://user@localhost"),
    ST("sqlite-nodir", "sqlite:///{tmp}/nodir/x.db", "an existing directory", "{tmp}/nodir"),
    ST("sqlite-relative-nodir", "sqlite:///nodir/x.db", "an existing directory", "nodir"),
    ST("sqlite-garbage", "sqlite:///{tmp}/garbage.db", "an SQLite database",
       "{tmp}/garbage.db", files=(("garbage.db", GARBAGE),)),
    ST("sqlite-text", "sqlite:///{tmp}/notes.db", "an SQLite database", "{tmp}/notes.db",
       files=(("notes.db", "hello\n"),)),
    ST("sqlite-directory", "sqlite:///{tmp}/adir", "an SQLite database", "{tmp}/adir",
       setup="adir/"),
    ST("journal-directory", "{tmp}/j.log", "a journal file", "{tmp}/j.log", setup="j.log/"),
    ST("journal-garbage", "{tmp}/g.log", "a journal file", "{tmp}/g.log",
       files=(("g.log", GARBAGE),)),
    ST("journal-text", "{tmp}/t.log", "a journal file", "{tmp}/t.log",
       files=(("t.log", "not json\n"),)),
    ST("journal-nodir", "{tmp}/nodir/j.log", "an existing directory", "{tmp}/nodir"),
    ST("unknown-scheme", "ftp://host/x", "a journal file path", "ftp://host/x"),
    ST("redis", "redis://localhost:6379/0", "a journal file path", "redis://localhost:6379/0"),
    ST("no-suffix", "{tmp}/x.db", "a journal file path", "{tmp}/x.db"),
    ST("postgres-no-database", "postgresql://localhost", "a database name",
       "postgresql://localhost"),
    ST("postgres-bad-port", "postgresql://localhost:port/db", "a port number",
       "postgresql://localhost:port/db"),
]

OUT_CASES = [
    F("search-out-file", ("search", "{tmp}/exp.toml", "--out", "{tmp}/afile", "--no-progress"),
      "--out", "a directory", "{tmp}/afile", files=(("afile", "x\n"),)),
    F("search-out-under-file", ("search", "{tmp}/exp.toml", "--out", "{tmp}/afile/run",
                                "--no-progress"), "--out", "a directory",
      "{tmp}/afile", files=(("afile", "x\n"),)),
    F("search-out-proc", ("search", "{tmp}/exp.toml", "--out", "/proc/x", "--no-progress"),
      "--out", "a writable directory", "/proc/x"),
    F("search-out-not-empty", ("search", "{tmp}/exp.toml", "--out", "{tmp}/full",
                               "--no-progress"), "--out", "an empty or new directory",
      "{tmp}/full", files=(("full/keep.txt", "x\n"),)),
    F("worker-out-file", ("worker", "{tmp}/exp.toml", "--storage", "{tmp}/j.log", "--study",
                          "tiny", "--out", "{tmp}/afile"), "--out", "a directory",
      "{tmp}/afile", files=(("afile", "x\n"),)),
    F("worker-out-proc", ("worker", "{tmp}/exp.toml", "--storage", "{tmp}/j.log", "--study",
                          "tiny", "--out", "/proc/x"), "--out", "a writable directory",
      "/proc/x"),
    F("report-out-readonly", ("report", "{tmp}/run", "-o", "{tmp}/ro/r.html"), "-o",
      "a writable", "{tmp}/ro/r.html", run=True, setup="ro/"),
    F("report-out-proc", ("report", "{tmp}/run", "-o", "/proc/r.html"), "-o", "a writable",
      "/proc/r.html", run=True),
    F("report-out-nodir", ("report", "{tmp}/run", "-o", "{tmp}/nodir/r.html"), "-o",
      "an existing directory", "{tmp}/nodir/r.html", run=True),
    F("report-out-under-file", ("report", "{tmp}/run", "-o", "{tmp}/afile/r.html"), "-o",
      "an existing directory", "{tmp}/afile/r.html", run=True, files=(("afile", "x\n"),)),
]

CASES = [*EXPERIMENT_CASES, *SPACE_CASES, *CHIP_CASES, *WORKLOAD_CASES, *FLAG_CASES,
         *CSV_CASES, *STORAGE_CASES, *OUT_CASES]


def test_the_matrix_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 190


# ----------------------------------------------------------------------------- machinery


def _edit(text: str, change: tuple[str, str] | None, tmp: Path) -> str:
    if change is None:
        return text
    old, new = change
    new = new.replace("{tmp}", str(tmp))
    if old == WHOLE:
        return new
    assert old in text, f"test bug: {old!r} not in the template"
    return text.replace(old, new, 1)


def _csv_text(edits: tuple[tuple[int, str, str], ...], drop: tuple[str, ...]) -> str:
    with default_cases_path().open(encoding="utf-8", newline="") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    chosen = [dict(rows[c]) for c in CSV_ROWS]
    for i, col, text in edits:
        chosen[i][col] = text
    buf = io.StringIO()
    cols = [c for c in COLUMNS if c not in drop]
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(chosen)
    return buf.getvalue()


def _snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root``: folders with their mode, files with their bytes and mode."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root)) + "/"] = stat.S_IMODE(p.lstat().st_mode)
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p)
            out[str(p.relative_to(root))] = (data, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished run (4 random trials) of the template experiment."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "space.toml").write_text(SPACE, encoding="utf-8")
    (folder / "exp.toml").write_text(EXPERIMENT, encoding="utf-8")
    code = main(["search", str(folder / "exp.toml"), "--out", str(folder / "run"),
                 "--no-progress"])
    assert code == 0
    return folder / "run"


def _setup(case: Bad, tmp: Path, request: pytest.FixtureRequest) -> None:
    exp_text = EXPERIMENT
    if case.infer:
        exp_text = exp_text.replace(TRAIN_WORKLOAD, INFER)
        exp_text = exp_text.replace("die_area_mm2 = { max = 858 }\n", "")
    (tmp / "exp.toml").write_bytes(
        _edit(exp_text, case.exp, tmp).encode("utf-8", "surrogateescape"))
    (tmp / "space.toml").write_bytes(
        _edit(SPACE, case.space, tmp).encode("utf-8", "surrogateescape"))
    for name, content in case.files:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8", "surrogateescape"))
    if case.csv is not None:
        (tmp / "cases.csv").write_text(_csv_text(case.csv, case.csv_drop), encoding="utf-8")
    if case.setup:  # a folder where the command expects a file, or a read-only folder
        (tmp / case.setup).mkdir()
    if case.id == "storage-mysql-pymysql" and importlib.util.find_spec("pymysql"):
        pytest.skip("PyMySQL is installed: the URL is valid (it would connect)")
    if case.run:
        shutil.copytree(request.getfixturevalue("finished_run"), tmp / "run", symlinks=True)
    if case.setup == "ro/":
        ro = tmp / "ro"
        ro.chmod(0o555)
        request.addfinalizer(lambda: ro.chmod(0o755))
        probe = ro / "probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        pytest.skip("this user writes into a read-only folder (root)")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_names_it_and_touches_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        request: pytest.FixtureRequest, case: Bad) -> None:
    tmp = tmp_path / "work"
    tmp.mkdir()
    _setup(case, tmp, request)
    monkeypatch.chdir(tmp)
    before = _snapshot(tmp)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    try:
        code = main(argv)
    except BaseException as exc:
        pytest.fail(f"traceback instead of exit 2:\n{''.join(traceback.format_exception(exc))}")
    out, err = capsys.readouterr()
    after = _snapshot(tmp)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    msg = lines[0]
    file = case.file.replace("{tmp}", str(tmp))
    assert msg.startswith(f"codesign: error: {file}: "), msg
    assert f": {case.key}" in msg.split(": expected ")[0], msg
    assert case.expected.replace("{tmp}", str(tmp)) in msg.split(", got ")[0], msg
    assert case.got.replace("{tmp}", str(tmp)) in msg.rsplit(", got ", 1)[-1], msg
    for text in case.more:
        assert text in msg, msg
    assert after == before, {k for k in after.keys() | before.keys()
                             if after.get(k) != before.get(k)}
    assert not Path("/proc/x").exists()
