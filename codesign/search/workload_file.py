"""Strict TOML -> a workload: ``[workload]`` tables of experiments and workload files
(training steps or serving), catalog, inline or Hugging Face ``config.json`` models
(:mod:`codesign.search.toml_checks` rules: file, key path, expected and got in every error)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codesign.model import catalog
from codesign.model.specs import ATTENTION_IMPLS, PRECISIONS, InferJob, ModelSpec, TrainJob
from codesign.search.toml_checks import _one_of, _read, _Table

MAX_TOKENS = 2**24
"""Most tokens of one sequence (``seq_len``, ``input_len``, ``output_len``), 16.8M: over 10x
the longest context of a catalog model; larger values overflow nothing useful."""
MAX_BATCH = 2**24
"""Most sequences per step (``global_batch``) or requests in flight (``concurrency``), 16.8M:
1,000x the largest published pre-training batch (16M tokens of 8K-token sequences = 2K)."""

_MODEL_INTS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab")  # >= 1
_MODEL_MOE = ("moe_experts", "moe_topk", "moe_ffn_hidden", "moe_shared_experts",
              "moe_dense_layers", "kv_latent_dim", "head_dim", "q_lora_rank", "kv_lora_rank",
              "rope_head_dim", "v_head_dim", "sliding_window",
              "sliding_window_layers")  # >= 0, default 0 (head_dim 0 = hidden / heads)


_TRAIN_KEYS = ("kind", "model", "seq_len", "global_batch", "precision", "attention",
               "moe_imbalance", "train_tokens")
_INFER_KEYS = ("kind", "model", "input_len", "output_len", "concurrency", "precision",
               "kv_precision", "ttft_slo_s", "itl_slo_s", "moe_imbalance")


def _workload(t: _Table) -> TrainJob | InferJob:
    """A ``[workload]`` table: ``kind = "train"`` (a training step) or ``"infer"`` (serving)."""
    kind = t.get("kind", "str", choices=("train", "infer"))
    t.only(_TRAIN_KEYS if kind == "train" else _INFER_KEYS)
    model_value = t.data.get("model")
    if isinstance(model_value, dict):
        model = _inline_model(t.table("model"))
    elif isinstance(model_value, str) and model_value.endswith(".json"):
        model = _json_model(t, model_value)
    else:
        ids = catalog.model_ids()
        expected = (f"a catalog model id ({_one_of(ids)}), a table [{t.at('model')}] or a "
                    "Hugging Face config.json path")
        model = catalog.get_model(t.get("model", "str", choices=ids, expected=expected))
    if kind == "infer":
        return InferJob(
            model=model,
            input_len=t.get("input_len", "int", low=1, high=MAX_TOKENS),
            output_len=t.get("output_len", "float", low=1.0, high=MAX_TOKENS),
            concurrency=t.get("concurrency", "int", default=None, low=1, high=MAX_BATCH),
            precision=t.get("precision", "str", default="bf16", choices=PRECISIONS),
            kv_precision=t.get("kv_precision", "str", default=None, choices=PRECISIONS),
            ttft_slo_s=t.get("ttft_slo_s", "float", default=None, low=0.0, low_open=True),
            itl_slo_s=t.get("itl_slo_s", "float", default=None, low=0.0, low_open=True),
            moe_imbalance=t.get("moe_imbalance", "float", default=1.0, low=1.0, high=16.0),
        )
    return TrainJob(
        model=model,
        seq_len=t.get("seq_len", "int", low=1, high=MAX_TOKENS),
        global_batch=t.get("global_batch", "int", low=1, high=MAX_BATCH),
        precision=t.get("precision", "str", default="bf16", choices=PRECISIONS),
        attention=t.get("attention", "str", default="flash", choices=ATTENTION_IMPLS),
        train_tokens=t.get("train_tokens", "float", default=None, low=0.0, low_open=True),
        moe_imbalance=t.get("moe_imbalance", "float", default=1.0, low=1.0, high=16.0),
    )


def _json_model(t: _Table, rel: str) -> ModelSpec:
    """``model = "path/config.json"``: a Hugging Face config (relative to the TOML file's
    folder), read by :func:`codesign.search.hf_config.load_hf_model`."""
    from codesign.search.hf_config import load_hf_model

    folder = Path(t.file).parent
    if not (folder / rel).is_file():
        raise t.error("model", f"a Hugging Face config.json file (relative to {folder})", rel)
    return load_hf_model(folder / rel)


def _inline_model(t: _Table) -> ModelSpec:
    t.only(("name", *_MODEL_INTS, "gated_mlp", *_MODEL_MOE, "tied_embeddings"))
    v: dict[str, Any] = {"name": t.get("name", "str")}
    v |= {k: t.get(k, "int", low=1) for k in _MODEL_INTS}
    v |= {k: t.get(k, "int", default=0, low=0) for k in _MODEL_MOE}
    v["gated_mlp"] = t.get("gated_mlp", "bool", default=True)
    v["tied_embeddings"] = t.get("tied_embeddings", "bool", default=False)
    moe = v["moe_experts"] > 0
    rules = (
        ("heads", v["head_dim"] > 0 or v["hidden"] % v["heads"] == 0,
         f"a divisor of hidden ({v['hidden']}) unless head_dim is given"),
        ("kv_heads", v["heads"] % v["kv_heads"] == 0, f"a divisor of heads ({v['heads']})"),
        ("moe_topk", v["moe_topk"] <= v["moe_experts"],
         f"an integer <= moe_experts ({v['moe_experts']})"),
        ("moe_topk", not moe or v["moe_topk"] >= 1, "an integer >= 1 when moe_experts > 0"),
        ("moe_ffn_hidden", not moe or v["moe_ffn_hidden"] >= 1,
         "an integer >= 1 when moe_experts > 0"),
        ("moe_dense_layers", v["moe_dense_layers"] <= v["layers"],
         f"an integer <= layers ({v['layers']})"),
        ("sliding_window_layers", v["sliding_window_layers"] <= v["layers"],
         f"an integer <= layers ({v['layers']})"),
        ("kv_latent_dim", v["kv_lora_rank"] == 0 or v["kv_latent_dim"] in (
            0, v["kv_lora_rank"] + v["rope_head_dim"]),
         f"0 or kv_lora_rank + rope_head_dim ({v['kv_lora_rank'] + v['rope_head_dim']})"),
    )
    for key, ok, expected in rules:
        if not ok:
            raise t.error(key, expected, v[key])
    return ModelSpec(**v)


def load_workload(path: str | os.PathLike[str]) -> TrainJob | InferJob:
    """A workload file: one ``[workload]`` table, as in experiments (train or infer).

    Raises:
        ConfigError: on any problem, naming file, key path, expected and got.
    """
    _, root = _read(path)
    root.only(("workload",))
    return _workload(root.table("workload"))
