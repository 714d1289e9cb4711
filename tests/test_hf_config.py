"""Hugging Face ``config.json`` files as workloads (codesign.search.hf_config): each layout, the
published configs against the catalog models, ``evaluate --workload cfg.json``, experiments
with ``model = "cfg.json"``, and bad input (exit 2, file and key named, no traceback)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run, run_json

from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.model.specs import ModelSpec, TrainJob
from codesign.search.experiment import load_experiment
from codesign.search.hf_config import inline_json_model, load_hf_model, model_toml
from codesign.search.workload_file import load_workload

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ published config.json files
# The files as published on the Hugging Face Hub (the keys the mapping reads are exact; a few
# keys no mapping reads, e.g. DeepSeek's auto_map, are left out). Llama-3.3-70B-Instruct checked
# against the copy in ai-dynamo/aiconfigurator (model_configs/); gpt-oss against the 20b copy in
# tinygrad's test (same keys, 24 layers, 32 experts).

LLAMA3_8B = {  # meta-llama/Meta-Llama-3-8B
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256}
LLAMA33_70B = {  # meta-llama/Llama-3.3-70B-Instruct
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 8192, "initializer_range": 0.02,
    "intermediate_size": 28672, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.47.0", "use_cache": True, "vocab_size": 128256}
LLAMA31_405B = {  # meta-llama/Meta-Llama-3.1-405B
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 16384,
    "initializer_range": 0.02, "intermediate_size": 53248, "max_position_embeddings": 131072,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 128,
    "num_hidden_layers": 126, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256}
LLAMA2_70B = {  # meta-llama/Llama-2-70b-hf
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 8192, "initializer_range": 0.02,
    "intermediate_size": 28672, "max_position_embeddings": 4096, "model_type": "llama",
    "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
    "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "tie_word_embeddings": False, "torch_dtype": "float16",
    "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000}
YI_34B = {  # 01-ai/Yi-34B
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
    "intermediate_size": 20480, "max_position_embeddings": 4096, "model_type": "llama",
    "num_attention_heads": 56, "num_hidden_layers": 60, "num_key_value_heads": 8,
    "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 5000000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0", "use_cache": True, "vocab_size": 64000}
MIXTRAL_8X7B = {  # mistralai/Mixtral-8x7B-v0.1
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000}
MIXTRAL_8X22B = {  # mistralai/Mixtral-8x22B-v0.1
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 6144, "initializer_range": 0.02,
    "intermediate_size": 16384, "max_position_embeddings": 65536, "model_type": "mixtral",
    "num_attention_heads": 48, "num_experts_per_tok": 2, "num_hidden_layers": 56,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.38.0", "use_cache": True, "vocab_size": 32000}
DEEPSEEK_V3 = {  # deepseek-ai/DeepSeek-V3
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1,
    "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
    "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "pretraining_tp": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                            "quant_method": "fp8", "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "seq_aux": True, "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True,
    "v_head_dim": 128, "vocab_size": 129280}
QWEN3_235B = {  # Qwen/Qwen3-235B-A22B
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 12288, "max_position_embeddings": 40960,
    "max_window_layers": 94, "mlp_only_layers": [], "model_type": "qwen3_moe",
    "moe_intermediate_size": 1536, "norm_topk_prob": True, "num_attention_heads": 64,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 94,
    "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936}
GPT_OSS_120B = {  # openai/gpt-oss-120b
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
    "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_experts_per_tok": 4, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "num_local_experts": 128, "output_router_logits": False, "pad_token_id": 199999,
    "quantization_config": {"modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
        "lm_head"], "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                     "original_max_position_embeddings": 4096, "rope_type": "yarn",
                     "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
    "swiglu_limit": 7.0, "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0",
    "use_cache": True, "vocab_size": 201088}
# no catalog model of these architectures
QWEN25_7B = {  # Qwen/Qwen2.5-7B
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 3584,
    "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 131072,
    "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 28,
    "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 152064}
QWEN3_8B = {  # Qwen/Qwen3-8B
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 12288,
    "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
    "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936}
QWEN15_MOE = {  # Qwen/Qwen1.5-MoE-A2.7B (Qwen2-MoE: a shared expert)
    "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 8192,
    "max_window_layers": 21, "model_type": "qwen2_moe", "num_attention_heads": 16,
    "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.39.0.dev0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936, "decoder_sparse_step": 1,
    "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
    "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": False,
    "output_router_logits": False, "router_aux_loss_coef": 0.001}

CATALOG_MATCHES = [
    ("llama3-8b", LLAMA3_8B), ("llama3-70b", LLAMA33_70B), ("llama3-405b", LLAMA31_405B),
    ("llama2-70b", LLAMA2_70B), ("yi-34b", YI_34B), ("mixtral-8x7b", MIXTRAL_8X7B),
    ("mixtral-8x22b", MIXTRAL_8X22B), ("deepseek-v3", DEEPSEEK_V3),
    ("qwen3-235b-a22b", QWEN3_235B), ("gpt-oss-120b", GPT_OSS_120B),
]


def _write(tmp_path: Path, folder: str, cfg: Any) -> Path:
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg, indent=2),
                    encoding="utf-8")
    return path


def _fields(spec: ModelSpec) -> dict[str, Any]:
    return {k: v for k, v in asdict(spec).items() if k != "name"}


@pytest.mark.parametrize(("model_id", "cfg"), CATALOG_MATCHES,
                         ids=[m for m, _ in CATALOG_MATCHES])
def test_published_config_equals_catalog_model(tmp_path: Path, model_id: str,
                                               cfg: dict[str, Any]) -> None:
    spec = load_hf_model(_write(tmp_path, model_id, cfg))
    assert _fields(spec) == _fields(catalog.get_model(model_id))
    assert spec.name == model_id  # no name_or_path: the folder's name


def test_llama_dense(tmp_path: Path) -> None:
    spec = load_hf_model(_write(tmp_path, "Meta-Llama-3-8B", LLAMA3_8B))
    assert (spec.name, spec.layers, spec.hidden, spec.heads, spec.kv_heads, spec.head_dim,
            spec.ffn_hidden, spec.vocab) == ("Meta-Llama-3-8B", 32, 4096, 32, 8, 128, 14336,
                                             128256)
    assert spec.gated_mlp and not spec.tied_embeddings and not spec.is_moe
    assert spec.sliding_window == spec.sliding_window_layers == 0


def test_qwen_dense_head_dim_and_no_sliding_window(tmp_path: Path) -> None:
    q25 = load_hf_model(_write(tmp_path, "Qwen2.5-7B", QWEN25_7B))
    assert (q25.layers, q25.hidden, q25.heads, q25.kv_heads, q25.head_dim, q25.ffn_hidden,
            q25.vocab) == (28, 3584, 28, 4, 128, 18944, 152064)
    assert q25.sliding_window == 0  # sliding_window 131072 with use_sliding_window false
    q3 = load_hf_model(_write(tmp_path, "Qwen3-8B", QWEN3_8B))
    assert (q3.layers, q3.hidden, q3.heads, q3.kv_heads, q3.head_dim, q3.ffn_hidden) == (
        36, 4096, 32, 8, 128, 12288)
    # Qwen3-0.6B: attention wider than hidden (16 x 128 > 1024), tied embeddings
    small = load_hf_model(_write(tmp_path, "Qwen3-0.6B", {
        **QWEN3_8B, "hidden_size": 1024, "intermediate_size": 3072, "num_attention_heads": 16,
        "num_hidden_layers": 28, "tie_word_embeddings": True}))
    assert small.head_dim == 128 and small.tied_embeddings
    # use_sliding_window true: the layers from max_window_layers on
    swa = load_hf_model(_write(tmp_path, "swa", {**QWEN25_7B, "use_sliding_window": True,
                                                 "sliding_window": 4096,
                                                 "max_window_layers": 20}))
    assert (swa.sliding_window, swa.sliding_window_layers) == (4096, 8)


def test_qwen_moe_shared_experts_and_dense_layers(tmp_path: Path) -> None:
    spec = load_hf_model(_write(tmp_path, "Qwen1.5-MoE-A2.7B", QWEN15_MOE))
    assert (spec.moe_experts, spec.moe_topk, spec.moe_ffn_hidden, spec.moe_shared_experts,
            spec.moe_dense_layers, spec.ffn_hidden) == (60, 4, 1408, 4, 0, 1408)
    q3 = load_hf_model(_write(tmp_path, "Qwen3-30B-A3B", {
        **QWEN3_235B, "hidden_size": 2048, "intermediate_size": 6144,
        "moe_intermediate_size": 768, "num_attention_heads": 32, "num_hidden_layers": 48,
        "max_window_layers": 48}))
    assert (q3.moe_experts, q3.moe_topk, q3.moe_ffn_hidden, q3.moe_shared_experts,
            q3.ffn_hidden, q3.head_dim) == (128, 8, 768, 0, 768, 128)
    lead = load_hf_model(_write(tmp_path, "lead", {**QWEN3_235B, "mlp_only_layers": [0, 1]}))
    assert (lead.moe_dense_layers, lead.ffn_hidden) == (2, 12288)


def test_mixtral_deepseek_gpt_oss(tmp_path: Path) -> None:
    mix = load_hf_model(_write(tmp_path, "Mixtral-8x7B-v0.1", MIXTRAL_8X7B))
    assert (mix.moe_experts, mix.moe_topk, mix.moe_ffn_hidden, mix.ffn_hidden,
            mix.sliding_window) == (8, 2, 14336, 14336, 0)
    ds = load_hf_model(_write(tmp_path, "DeepSeek-V3", DEEPSEEK_V3))
    assert ds.is_mla and ds.kv_latent_dim == 576 and ds.kv_heads == 128
    assert (ds.moe_dense_layers, ds.moe_shared_experts, ds.ffn_hidden) == (3, 1, 18432)
    lite = load_hf_model(_write(tmp_path, "lite", {  # DeepSeek-V2-Lite: full-rank queries
        **DEEPSEEK_V3, "architectures": ["DeepseekV2ForCausalLM"], "q_lora_rank": None}))
    assert lite.q_lora_rank == 0 and lite.is_mla
    oss = load_hf_model(_write(tmp_path, "gpt-oss-120b", GPT_OSS_120B))
    assert (oss.sliding_window, oss.sliding_window_layers, oss.head_dim) == (128, 18, 64)
    no_types = {k: v for k, v in GPT_OSS_120B.items()
                if k not in ("layer_types", "num_experts_per_tok")}
    oss2 = load_hf_model(_write(tmp_path, "oss2", no_types))  # HF's default, older key
    assert (oss2.sliding_window_layers, oss2.moe_topk) == (18, 4)


def test_name_from_name_or_path_and_model_type(tmp_path: Path) -> None:
    cfg = {k: v for k, v in LLAMA3_8B.items() if k != "architectures"}
    spec = load_hf_model(_write(tmp_path, "x", {**cfg, "_name_or_path": "meta-llama/L3"}))
    assert spec.name == "meta-llama/L3"
    assert _fields(spec) == _fields(catalog.get_model("llama3-8b"))


def test_inline_toml_round_trip(tmp_path: Path) -> None:
    for model_id, cfg in CATALOG_MATCHES:
        spec = load_hf_model(_write(tmp_path, f'odd "name\\{model_id}', cfg))
        text = inline_json_model('[workload]\nkind = "train"\nmodel = "a/config.json"\n'
                                 'seq_len = 8\nglobal_batch = 8\n', spec)
        assert model_toml(spec) in text
        wl = tmp_path / "wl.toml"
        wl.write_text(text, encoding="utf-8")
        assert load_workload(wl).model == spec


# ------------------------------------------------------------------ as workloads


def test_evaluate_config_json_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    cfg = _write(tmp_path, "Meta-Llama-3-8B", LLAMA3_8B)
    doc = run_json(capsys, "evaluate", "--workload", str(cfg), "--chip", "h100-sxm",
                   "--n-chips", "8", "--json")
    assert doc["model"] == "Meta-Llama-3-8B" and doc["workload"] == "train"
    assert doc["n_chips"] == 8 and doc["feasible"] and doc["tokens_per_s"] > 0
    ref = run_json(capsys, "evaluate", "--workload", "llama3-8b", "--chip", "h100-sxm",
                   "--n-chips", "8", "--json")
    assert doc["tokens_per_s"] == ref["tokens_per_s"]
    assert doc["mapping"] == ref["mapping"]
    serve = run_json(capsys, "evaluate", "--workload", str(cfg), "--chip", "h100-sxm",
                     "--n-chips", "8", "--input-len", "1024", "--output-len", "128", "--json")
    assert serve["workload"] == "infer" and serve["ttft_s"] > 0


def test_workload_and_experiment_toml_with_config_json(tmp_path: Path) -> None:
    _write(tmp_path, "models/DeepSeek-V3", DEEPSEEK_V3)
    wl = tmp_path / "wl.toml"
    wl.write_text('[workload]\nkind = "infer"\nmodel = "models/DeepSeek-V3/config.json"\n'
                  "input_len = 2048\noutput_len = 256\n", encoding="utf-8")
    job = load_workload(wl)
    assert _fields(job.model) == _fields(catalog.get_model("deepseek-v3"))
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8").replace(
        'search_space = "../search_spaces/quickstart.toml"',
        f'search_space = "{REPO / "search_spaces" / "quickstart.toml"}"').replace(
        'model = "llama3-8b"', 'model = "llama/config.json"')
    _write(tmp_path, "llama", LLAMA3_8B)
    exp_path = tmp_path / "exp.toml"
    exp_path.write_text(text, encoding="utf-8")
    exp = load_experiment(exp_path)
    assert isinstance(exp.job, TrainJob) and exp.job.model.name == "llama"
    assert _fields(exp.job.model) == _fields(catalog.get_model("llama3-8b"))


def test_search_with_config_json_model_resumes(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The run directory's copy of the experiment holds the model inline (the config.json
    path is relative to the original), so a resume reads the same model."""
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8").replace(
        'search_space = "../search_spaces/quickstart.toml"',
        f'search_space = "{REPO / "search_spaces" / "quickstart.toml"}"').replace(
        'model = "llama3-8b"', 'model = "hf/Meta-Llama-3-8B/config.json"')
    _write(tmp_path, "hf/Meta-Llama-3-8B", LLAMA3_8B)
    exp_path = tmp_path / "exp.toml"
    exp_path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = run(capsys, "search", str(exp_path), "--trials", "2", "--no-progress",
                       "--out", str(out))
    assert code == 0, err
    copied = load_experiment(out / "experiment.toml")
    assert copied.job == load_experiment(exp_path).job
    code, _, err = run(capsys, "resume", str(out), "--trials", "3")
    assert code == 0, err


# ------------------------------------------------------------------ bad input


def _bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], cfg: Any) -> str:
    path = _write(tmp_path, "bad", cfg)
    with pytest.raises(ConfigError):
        load_hf_model(path)
    code, out, err = run(capsys, "evaluate", "--workload", str(path), "--chip", "h100-sxm",
                         "--n-chips", "8", "--json")
    assert code == 2 and out == "" and "Traceback" not in err
    assert str(path) in err
    return err


def test_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad(tmp_path, capsys, '{"architectures": ["LlamaForCausalLM"],')
    assert "<json>" in err and "valid JSON" in err and "line 1" in err
    err = _bad(tmp_path, capsys, "[1, 2]")
    assert "a JSON object" in err
    err = _bad(tmp_path, capsys, '{"num_hidden_layers": NaN}')
    assert "valid JSON" in err


def test_unknown_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad(tmp_path, capsys, {**LLAMA3_8B, "architectures": ["MambaForCausalLM"]})
    assert "architectures" in err and "LlamaForCausalLM" in err and "MambaForCausalLM" in err
    cfg = {k: v for k, v in LLAMA3_8B.items() if k != "architectures"}
    err = _bad(tmp_path, capsys, {**cfg, "model_type": "mamba"})
    assert "model_type" in err and "'mamba'" in err


@pytest.mark.parametrize("key", ["num_hidden_layers", "hidden_size", "vocab_size",
                                 "intermediate_size"])
def test_missing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    err = _bad(tmp_path, capsys, {k: v for k, v in LLAMA3_8B.items() if k != key})
    assert f"{key}: expected an integer in [1, 16777216], got nothing" in err


@pytest.mark.parametrize(("cfg", "key", "got"), [
    ({**LLAMA3_8B, "hidden_size": "4096"}, "hidden_size", "'4096'"),
    ({**LLAMA3_8B, "num_hidden_layers": 32.0}, "num_hidden_layers", "32.0"),
    ({**LLAMA3_8B, "num_attention_heads": True}, "num_attention_heads", "True"),
    ({**LLAMA3_8B, "tie_word_embeddings": "no"}, "tie_word_embeddings", "'no'"),
    ({**LLAMA3_8B, "num_key_value_heads": 5}, "num_key_value_heads", "5"),
    ({**LLAMA3_8B, "vocab_size": 10**30}, "vocab_size", str(10**30)),
    ({**MIXTRAL_8X7B, "num_local_experts": None}, "num_local_experts", "None"),
    ({**MIXTRAL_8X7B, "num_experts_per_tok": 9}, "num_experts_per_tok", "9"),
    ({**DEEPSEEK_V3, "moe_layer_freq": 2}, "moe_layer_freq", "2"),
    ({**GPT_OSS_120B, "layer_types": ["sliding_attention"]}, "layer_types", "sliding"),
    ({**QWEN3_235B, "mlp_only_layers": [5]}, "mlp_only_layers", "[5]"),
    ({**QWEN15_MOE, "shared_expert_intermediate_size": 1000},
     "shared_expert_intermediate_size", "1000"),
])
def test_wrong_type_or_value(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             cfg: dict[str, Any], key: str, got: str) -> None:
    err = _bad(tmp_path, capsys, cfg)
    assert f": {key}: expected " in err and got in err.split("got", 1)[1]


def test_bad_json_model_in_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wl = tmp_path / "wl.toml"
    wl.write_text('[workload]\nkind = "train"\nmodel = "nope/config.json"\nseq_len = 8\n'
                  "global_batch = 8\n", encoding="utf-8")
    code, _, err = run(capsys, "evaluate", "--workload", str(wl), "--chip", "h100-sxm",
                       "--json")
    assert code == 2 and str(wl) in err and "workload.model" in err
    assert "nope/config.json" in err and "Traceback" not in err
    _write(tmp_path, "bad", {**LLAMA3_8B, "vocab_size": -1})
    wl.write_text('[workload]\nkind = "train"\nmodel = "bad/config.json"\nseq_len = 8\n'
                  "global_batch = 8\n", encoding="utf-8")
    code, _, err = run(capsys, "evaluate", "--workload", str(wl), "--chip", "h100-sxm",
                       "--json")
    assert code == 2 and "bad/config.json: vocab_size: expected an integer in [1, " in err


def test_fields_cover_model_spec() -> None:
    """model_toml writes every ModelSpec field (a new field must round-trip too)."""
    spec = replace(catalog.get_model("deepseek-v3"), name="x")
    assert model_toml(spec).count(" = ") == len(fields(ModelSpec))
