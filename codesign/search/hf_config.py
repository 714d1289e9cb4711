"""Hugging Face ``config.json`` files, read from disk (no network), as a
:class:`~codesign.model.specs.ModelSpec`.

:func:`load_hf_model` picks the layout from the first known entry of ``architectures`` (else
``model_type``) and maps the file's keys onto the model's fields. Units: counts are plain
integers, widths are elements per token (vector entries), windows are tokens.

Layouts (``architectures`` / ``model_type``):

- ``dense``: LlamaForCausalLM / llama, MistralForCausalLM / mistral, Qwen2ForCausalLM / qwen2,
  Qwen3ForCausalLM / qwen3.
- ``mixtral``: MixtralForCausalLM / mixtral.
- ``qwen_moe``: Qwen2MoeForCausalLM / qwen2_moe, Qwen3MoeForCausalLM / qwen3_moe.
- ``deepseek``: DeepseekV3ForCausalLM / deepseek_v3, DeepseekV2ForCausalLM / deepseek_v2.
- ``gpt_oss``: GptOssForCausalLM / gpt_oss.

Every layout:

- ``layers`` <- ``num_hidden_layers``; ``hidden`` <- ``hidden_size``; ``heads`` <-
  ``num_attention_heads`` (query heads); ``vocab`` <- ``vocab_size`` (tokens).
- ``kv_heads`` <- ``num_key_value_heads`` (absent or null: ``heads``, the HF default).
- ``head_dim`` <- ``head_dim`` (absent or null: ``hidden_size / num_attention_heads``).
- ``ffn_hidden`` <- ``intermediate_size`` (dense MLP inner width; see the MoE layouts).
- ``tied_embeddings`` <- ``tie_word_embeddings`` (absent: false, the default of every
  supported HF config class).
- ``gated_mlp`` = true: every supported layout has the 3-matrix gated MLP (gate, up, down
  projections); ``hidden_act`` (silu in the published configs) is not read.
- ``name`` <- ``name_or_path`` / ``_name_or_path`` when a non-empty string, else the name of
  the file's folder (``.../Meta-Llama-3-8B/config.json`` -> ``Meta-Llama-3-8B``).
- Sliding window (``sliding_window`` tokens, on ``sliding_window_layers`` layers): where
  ``layer_types`` is given, its ``"sliding_attention"`` entries are the sliding layers.
  Otherwise: Mistral and Mixtral, every layer when ``sliding_window`` is a number (null: none);
  Qwen2/Qwen3 (dense or MoE), only when ``use_sliding_window`` is true, the layers from
  ``max_window_layers`` on (Qwen2.5's ``sliding_window: 131072`` with
  ``use_sliding_window: false`` is no window); gpt-oss, every other layer from the first (HF
  ``GptOssConfig``'s default); Llama and DeepSeek, none.

MoE layouts (``moe_experts`` routed experts of width ``moe_ffn_hidden``, ``moe_topk`` per token):

- ``mixtral``: ``num_local_experts``, ``num_experts_per_tok``; ``intermediate_size`` is the
  expert width: ``moe_ffn_hidden`` = ``ffn_hidden`` (every layer is MoE, no dense MLP: the
  catalog's convention).
- ``qwen_moe``: ``num_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``. Layer ``i``
  is dense (width ``intermediate_size``) when listed in ``mlp_only_layers`` or when ``(i + 1)
  % decoder_sparse_step != 0`` (absent: ``[]`` and 1); the dense layers must lead
  (``moe_dense_layers``: ModelSpec has no other pattern). With none, ``ffn_hidden`` =
  ``moe_ffn_hidden``. Qwen2-MoE's one shared expert of ``shared_expert_intermediate_size`` is
  ``moe_shared_experts`` = that / ``moe_intermediate_size`` experts (same weights and FLOPs;
  its 1-output sigmoid gate, ``hidden_size`` weights a layer, is not modelled); Qwen3-MoE has
  none.
- ``deepseek``: ``n_routed_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``,
  ``moe_shared_experts`` <- ``n_shared_experts`` (absent or null: 0), ``moe_dense_layers`` <-
  ``first_k_dense_replace`` (absent: 0), ``ffn_hidden`` <- ``intermediate_size`` (the dense
  layers; with none, ``moe_ffn_hidden``); ``moe_layer_freq`` must be 1 (absent: 1).
  Multi-head latent attention: ``head_dim`` <- ``qk_nope_head_dim``, ``rope_head_dim`` <-
  ``qk_rope_head_dim``, ``v_head_dim`` <- ``v_head_dim``, ``q_lora_rank`` <- ``q_lora_rank``
  (null: 0, full-rank queries, DeepSeek-V2-Lite), ``kv_lora_rank`` <- ``kv_lora_rank``;
  ``kv_heads`` = ``heads`` (keys and values are up-projected per head;
  ``num_key_value_heads`` is not read); ``kv_latent_dim`` = ``kv_lora_rank +
  rope_head_dim`` (derived by ModelSpec).
- ``gpt_oss``: ``num_local_experts``, ``num_experts_per_tok`` (else ``experts_per_token``),
  ``intermediate_size`` = ``moe_ffn_hidden`` = ``ffn_hidden``; ``head_dim`` is required
  (attention is wider than ``hidden_size``).

Not read (ModelSpec has no field for them): RoPE settings and
``max_position_embeddings`` (the context is the workload's), norms, biases (attention, gpt-oss's
experts and router) and attention sinks, dropout, ``torch_dtype`` and ``quantization_config``
(the precision is the workload's ``precision``), router details (scoring, groups, aux loss,
``norm_topk_prob``), DeepSeek-V3's multi-token-prediction module (``num_nextn_predict_layers``,
not part of the 671B main model, as in the catalog).

Every count and width read is an integer in [1, :data:`MAX_INT`] (a few may be 0 or null, as
above). Every problem (no such file, not UTF-8, not JSON, an unknown layout, a missing or
ill-typed key, shapes that do not fit) is a :class:`~codesign.errors.ConfigError` naming the
file, the key, what was expected and what was got.

An experiment's ``model = "path/config.json"`` is relative to the experiment's folder; the run
directory's copy of the experiment holds the model as an inline table instead
(:func:`inline_json_model`), so a resume reads the same model wherever the config.json went.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from codesign.errors import ConfigError
from codesign.model.specs import ModelSpec
from codesign.search.toml_checks import _MISSING, _REQUIRED, _check, _Plain, read_bytes

ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
    "MixtralForCausalLM": "mixtral",
    "Qwen2MoeForCausalLM": "qwen2_moe", "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV3ForCausalLM": "deepseek_v3", "DeepseekV2ForCausalLM": "deepseek_v2",
    "GptOssForCausalLM": "gpt_oss",
}
"""Hugging Face ``architectures`` entries read, and the ``model_type`` they stand for."""
MODEL_TYPES: dict[str, str] = {
    "llama": "dense", "mistral": "dense", "qwen2": "dense", "qwen3": "dense",
    "mixtral": "mixtral", "qwen2_moe": "qwen_moe", "qwen3_moe": "qwen_moe",
    "deepseek_v3": "deepseek", "deepseek_v2": "deepseek", "gpt_oss": "gpt_oss",
}
"""Hugging Face ``model_type`` values read, and their layout."""

MAX_INT = 2**24
"""The largest count or width read (16.8M): 64x the largest vocabulary of a catalog model; a
larger JSON integer (JSON has no bound) is bad input, not an overflow in the kernels."""

_SLIDING, _FULL = "sliding_attention", "full_attention"


class _Config:
    """A config.json being read: typed getters that name the file and key in every error."""

    def __init__(self, file: str, data: dict[str, Any]) -> None:
        self.file, self.data = file, data

    def error(self, key: str, expected: str, got: object) -> ConfigError:
        return ConfigError(self.file, key, expected, got)

    def integer(self, key: str, default: Any = _REQUIRED, *, low: int = 1,
                null: int | None = None) -> int:
        """The integer in [``low``, :data:`MAX_INT`] at ``key``; ``default`` if absent,
        ``null`` if JSON null (when given; else null is an error)."""
        if key not in self.data and default is not _REQUIRED:
            return default
        value = self.data.get(key, _MISSING)
        if value is None and null is not None:
            return null
        expected = f"an integer in [{low}, {MAX_INT}]" + (" or null" if null is not None else "")
        return _check(self.file, key, value, "int", low=low, high=MAX_INT, expected=expected)

    def flag(self, key: str, default: bool) -> bool:
        """The true/false at ``key``; ``default`` if absent."""
        if key not in self.data:
            return default
        return _check(self.file, key, self.data[key], "bool")


def _read_json(path: str | os.PathLike[str]) -> _Config:
    file = str(path)
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        got = _Plain(f"byte 0x{raw[exc.start]:02x} at offset {exc.start}")
        raise ConfigError(file, "<file>", "UTF-8 text", got) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        msg = (f"{exc.msg} at line {exc.lineno} column {exc.colno}"
               if isinstance(exc, json.JSONDecodeError) else str(exc))
        raise ConfigError(file, "<json>", "valid JSON (a Hugging Face config.json)",
                          _Plain(msg)) from None
    if not isinstance(data, dict):
        raise ConfigError(file, "<json>", "a JSON object (a Hugging Face config.json)",
                          _Plain(f"a JSON {type(data).__name__}"))
    return _Config(file, data)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} (not JSON)")


def _family(c: _Config) -> str:
    """The ``model_type`` the file's layout stands for: the first known ``architectures``
    entry's, else its ``model_type``."""
    archs = c.data.get("architectures")
    if archs is not None:
        if not (isinstance(archs, list) and archs and all(isinstance(a, str) for a in archs)):
            raise c.error("architectures", "a non-empty array of strings", archs)
        for arch in archs:
            if arch in ARCHITECTURES:
                return ARCHITECTURES[arch]
        raise c.error("architectures", f"an array with one of: {', '.join(ARCHITECTURES)}",
                      archs)
    mtype = c.data.get("model_type", _MISSING)
    if mtype not in MODEL_TYPES:
        raise c.error("model_type", "one of: " + ", ".join(MODEL_TYPES)
                      + " (or an 'architectures' array)", mtype)
    return str(mtype)


def _name(c: _Config) -> str:
    for key in ("name_or_path", "_name_or_path"):
        value = c.data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return Path(c.file).resolve().parent.name or Path(c.file).stem


def _sliding(c: _Config, family: str, layers: int) -> tuple[int, int]:
    """(window in tokens, layers that use it); (0, 0) for none."""
    if family in ("llama", "deepseek_v2", "deepseek_v3"):
        return 0, 0
    qwen = family.startswith("qwen")
    if qwen and not c.flag("use_sliding_window", False):
        return 0, 0
    types = c.data.get("layer_types")
    if types is not None:
        if not (isinstance(types, list) and len(types) == layers
                and all(t in (_SLIDING, _FULL) for t in types)):
            raise c.error("layer_types", f"an array of {layers} (num_hidden_layers) entries "
                          f'"{_SLIDING}" or "{_FULL}"', types)
        n = types.count(_SLIDING)
    elif family == "gpt_oss":
        n = (layers + 1) // 2
    elif qwen:
        n = layers - min(layers, c.integer("max_window_layers", low=0))
    else:  # Mistral, Mixtral: every layer
        n = layers
    if n == 0:
        return 0, 0
    window = c.integer("sliding_window", null=None if family == "gpt_oss" else 0)
    return (window, n) if window else (0, 0)


def _moe_pattern(c: _Config, layers: int) -> int:
    """Qwen-MoE: the number of leading dense layers (the dense layers must lead)."""
    step = c.integer("decoder_sparse_step", 1)
    only = c.data.get("mlp_only_layers", [])
    if not (isinstance(only, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers for i in only)):
        raise c.error("mlp_only_layers", f"an array of layer indices in [0, {layers - 1}]", only)
    dense = [i for i in range(layers) if i in only or (i + 1) % step != 0]
    if dense != list(range(len(dense))):
        key = "mlp_only_layers" if only else "decoder_sparse_step"
        raise c.error(key, "dense layers that lead (codesign models MoE layers after "
                      "moe_dense_layers leading dense ones)",
                      only if only else step)
    return len(dense)


def load_hf_model(path: str | os.PathLike[str]) -> ModelSpec:
    """The model a Hugging Face ``config.json`` describes (the mapping rules: module docs).

    Raises:
        ConfigError: naming the file, the key, what was expected and what was got.

    Example:
        >>> spec = load_hf_model("Meta-Llama-3-8B/config.json")  # doctest: +SKIP
        >>> spec.layers, spec.hidden, spec.kv_heads  # doctest: +SKIP
        (32, 4096, 8)
    """
    c = _read_json(path)
    family = _family(c)
    layout = MODEL_TYPES[family]
    layers = c.integer("num_hidden_layers")
    hidden = c.integer("hidden_size")
    heads = c.integer("num_attention_heads")
    v: dict[str, Any] = {
        "name": _name(c), "layers": layers, "hidden": hidden, "heads": heads,
        "kv_heads": c.integer("num_key_value_heads", heads, null=heads),
        "ffn_hidden": c.integer("intermediate_size"), "vocab": c.integer("vocab_size"),
        "gated_mlp": True, "tied_embeddings": c.flag("tie_word_embeddings", False),
        "head_dim": (c.integer("head_dim") if layout == "gpt_oss"
                     else c.integer("head_dim", 0, null=0)),
    }
    if layout in ("mixtral", "gpt_oss"):
        topk_key = ("experts_per_token" if layout == "gpt_oss" and "num_experts_per_tok"
                    not in c.data and "experts_per_token" in c.data else "num_experts_per_tok")
        v |= {"moe_experts": c.integer("num_local_experts"), "moe_topk": c.integer(topk_key),
              "moe_ffn_hidden": v["ffn_hidden"]}
    elif layout == "qwen_moe":
        expert = c.integer("moe_intermediate_size")
        dense = _moe_pattern(c, layers)
        v |= {"moe_experts": c.integer("num_experts"),
              "moe_topk": c.integer("num_experts_per_tok"),
              "moe_ffn_hidden": expert, "moe_dense_layers": dense}
        if not dense:
            v["ffn_hidden"] = expert
        if family == "qwen2_moe":
            shared = c.integer("shared_expert_intermediate_size", low=0)
            if shared % expert:
                raise c.error("shared_expert_intermediate_size", "a multiple of "
                              f"moe_intermediate_size ({expert}): ModelSpec counts shared "
                              "experts of the routed width", shared)
            v["moe_shared_experts"] = shared // expert
    elif layout == "deepseek":
        if c.integer("moe_layer_freq", 1) != 1:
            raise c.error("moe_layer_freq", "1 (every layer after first_k_dense_replace is "
                          "MoE)", c.data["moe_layer_freq"])
        v |= {"moe_experts": c.integer("n_routed_experts"),
              "moe_topk": c.integer("num_experts_per_tok"),
              "moe_ffn_hidden": c.integer("moe_intermediate_size"),
              "moe_shared_experts": c.integer("n_shared_experts", 0, low=0, null=0),
              "moe_dense_layers": c.integer("first_k_dense_replace", 0, low=0),
              "kv_heads": heads, "head_dim": c.integer("qk_nope_head_dim"),
              "rope_head_dim": c.integer("qk_rope_head_dim"),
              "v_head_dim": c.integer("v_head_dim"),
              "q_lora_rank": c.integer("q_lora_rank", null=0),
              "kv_lora_rank": c.integer("kv_lora_rank")}
        if not v["moe_dense_layers"]:
            v["ffn_hidden"] = v["moe_ffn_hidden"]
    v["sliding_window"], v["sliding_window_layers"] = _sliding(c, family, layers)
    _check_shapes(c, v)
    return ModelSpec(**v)


def _check_shapes(c: _Config, v: dict[str, Any]) -> None:
    """The rules of an inline ``[workload.model]`` table, named by the config.json keys."""
    rules = (
        ("num_attention_heads", v["heads"], v["head_dim"] > 0 or v["hidden"] % v["heads"] == 0,
         f"a divisor of hidden_size ({v['hidden']}) unless head_dim is given"),
        ("num_key_value_heads", v["kv_heads"], v["heads"] % v["kv_heads"] == 0,
         f"a divisor of num_attention_heads ({v['heads']})"),
        ("num_experts_per_tok", v.get("moe_topk", 0),
         v.get("moe_topk", 0) <= v.get("moe_experts", 0),
         f"an integer <= the number of experts ({v.get('moe_experts', 0)})"),
        ("first_k_dense_replace", v.get("moe_dense_layers", 0),
         v.get("moe_dense_layers", 0) <= v["layers"],
         f"an integer <= num_hidden_layers ({v['layers']})"),
    )
    for key, got, ok, expected in rules:
        if not ok:
            raise c.error(key, expected, got)


# ------------------------------------------------------------------------ run directories

_JSON_MODEL = re.compile(r"""(?m)^(\s*model\s*=\s*)("[^"\n]*\.json"|'[^'\n]*\.json')""")


def model_toml(model: ModelSpec) -> str:
    """``model`` as a one-line TOML inline table that an experiment's ``[workload]`` reads back
    as the same ModelSpec (every field given)."""
    parts = []
    for f in fields(ModelSpec):
        value = getattr(model, f.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
        else:
            text = str(int(value))
        parts.append(f"{f.name} = {text}")
    return "{ " + ", ".join(parts) + " }"


def inline_json_model(text: str, model: ModelSpec) -> str:
    """An experiment's TOML ``text`` with its ``model = "....json"`` (a path relative to the
    experiment's folder, which a copy elsewhere could not follow) replaced by ``model`` as an
    inline table; ``text`` unchanged when it names no config.json."""
    return _JSON_MODEL.sub(lambda m: m.group(1) + model_toml(model), text, count=1)


__all__ = ["ARCHITECTURES", "MAX_INT", "MODEL_TYPES", "inline_json_model", "load_hf_model",
           "model_toml"]
