"""The reference LLM catalog (codesign/catalog/models.toml) against the published models.

Three kinds of checks:

* parameter counts: ``params_total()`` / ``params_active()`` of each model within a stated
  tolerance of the figure its authors publish (with what ModelSpec leaves out, and how much);
* names: every ``model`` of calibration.csv matches the catalog id of the same architecture,
  and names of other architectures match nothing;
* shapes: the non-empty shape columns of a calibration row agree with the catalog model it
  matches, except the differences listed in ``DOCUMENTED_DIFFERENCES`` with their reason.
"""

from __future__ import annotations

import csv
import io
import tomllib
from importlib import resources

import pytest

from codesign.model.catalog import get_model, match_model, model_ids, normalize_model_name

B = 1e9


def calibration_rows() -> list[dict[str, str]]:
    text = resources.files("codesign.model.catalog").joinpath("calibration.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def model_tables() -> dict[str, dict]:
    text = resources.files("codesign.model.catalog").joinpath("models.toml").read_text("utf-8")
    return tomllib.loads(text)


# ---- parameter counts ------------------------------------------------------------------------
# id: (published total, published active, relative tolerance, source of the published figures)
PUBLISHED = {
    # DeepSeek-V3 report (arXiv 2412.19437) abstract: 671B total, 37B activated per token; the
    # 671B is the main model: the weights' one multi-token-prediction module (11.5B unique
    # parameters, README_WEIGHTS.md) is excluded, as it is here. README_WEIGHTS.md gives the
    # activated count of the main model as 36.7B; the catalog gives 37.55B (MLA counted
    # exactly, router and shared expert included): 1.5 % above 37B, 2.3 % above 36.7B.
    "deepseek-v3": (671e9, 37e9, 0.02, "DeepSeek-V3 report"),
    # Qwen3 model card / report: 235B total, 22B activated (the "A22B"); catalog 235.09B / 22.19B.
    "qwen3-235b-a22b": (235e9, 22e9, 0.02, "Qwen3-235B-A22B model card"),
    # Mistral AI, "Cheaper, Better, Faster, Stronger" (Mixtral 8x22B): 141B total, 39B active;
    # catalog 140.62B / 39.15B.
    "mixtral-8x22b": (141e9, 39e9, 0.02, "Mistral AI Mixtral 8x22B announcement"),
    # Mistral AI, "Mixtral of experts": 46.7B total, 12.9B active; catalog 46.70B / 12.88B.
    "mixtral-8x7b": (46.7e9, 12.9e9, 0.01, "Mistral AI Mixtral 8x7B announcement"),
}


@pytest.mark.parametrize("mid", list(PUBLISHED))
def test_moe_parameter_counts_match_published(mid):
    total, active, tol, _source = PUBLISHED[mid]
    m = get_model(mid)
    assert m.params_total() == pytest.approx(total, rel=tol)
    assert m.params_active() == pytest.approx(active, rel=tol)


def test_gpt_oss_120b_parameter_counts():
    """OpenAI's gpt-oss model card (arXiv 2508.10925) Table 1: 116.83B total, 5.13B active;
    MLP 114.71B, attention 0.96B, embed + unembed 1.16B.

    ModelSpec leaves out the attention biases (q/k/v/o), the expert biases (mlp1 and mlp2 of
    each of the 128 experts), the router biases, the attention sinks (one per head and layer)
    and the norm scales: 40.3M parameters together (0.03 % of the total), computed below from
    the shapes of openai/gpt-oss gpt_oss/torch/model.py.

    OpenAI's 5.13B active counts the unembedding but not the input-embedding table (a lookup,
    not a matmul); ModelSpec.params_active counts both, so it is 5.13B + 201088 x 2880 = 5.71B.
    """
    m = get_model("gpt-oss-120b")
    layers, hidden, experts, heads, kv, hd = 36, 2880, 128, 64, 8, 64
    ffn = 2880
    qkvo_bias = (heads + 2 * kv) * hd + hidden
    expert_bias = experts * (2 * ffn + hidden)
    router_bias = experts
    sinks = heads
    norms = 2 * hidden
    missing = layers * (qkvo_bias + expert_bias + router_bias + sinks + norms) + hidden
    assert missing == 40_318_272
    assert m.params_total() + missing == pytest.approx(116.83e9, rel=0.001)
    assert m.params_total() == pytest.approx(116.8e9, rel=0.002)
    # the card's breakdown, part by part (MLP weights with their biases)
    attn = m.layers * m.attention_params_per_layer()
    assert attn == pytest.approx(0.96e9, rel=0.01)
    assert m.vocab * m.hidden * 2 == pytest.approx(1.16e9, rel=0.01)
    mlp = m.params_total() - attn - 2 * m.vocab * m.hidden
    assert mlp + layers * expert_bias == pytest.approx(114.71e9, rel=0.001)
    # active: OpenAI counts the unembedding, not the input embedding
    assert m.params_active() - m.vocab * m.hidden == pytest.approx(5.13e9, rel=0.01)


def test_grok_1_parameter_counts():
    """xai-org/grok-1 README: 314B parameters; xAI's release post: "25% of the weights active
    on a given token" (2 of 8 experts; no exact active count is published). Catalog: 315.68B
    total (+0.5 %; embeddings tied, norms not counted), 83.76B active = 26.5 % of the total
    (attention and the embedding are always active, hence above 25 %)."""
    m = get_model("grok-1")
    assert m.params_total() == pytest.approx(314e9, rel=0.01)
    assert m.params_active() / m.params_total() == pytest.approx(0.25, abs=0.02)
    assert m.tied_embeddings


def test_nemotron_4_340b_parameter_count():
    """Nemotron-4 340B: 340B parameters (report title and model card); catalog 341.02B
    (+0.3 %, norms not counted). Dense: every weight is active."""
    m = get_model("nemotron-4-340b")
    assert m.params_total() == pytest.approx(340e9, rel=0.01)
    assert m.params_active() == m.params_total()
    assert not m.gated_mlp and not m.is_moe


# ---- the architectures behind the counts -----------------------------------------------------
def test_deepseek_v3_is_multi_head_latent_attention():
    """config_671B.json: q_lora_rank 1536, kv_lora_rank 512, qk_nope_head_dim 128,
    qk_rope_head_dim 64, v_head_dim 128, 128 heads; first 3 layers dense (18432), then 256
    routed experts of 2048 (8 per token) and 1 shared expert."""
    m = get_model("deepseek-v3")
    assert m.is_mla and m.is_moe
    assert (m.q_lora_rank, m.kv_lora_rank, m.head_dim, m.rope_head_dim, m.v_head_dim) == (
        1536, 512, 128, 64, 128)
    assert m.kv_latent_dim == 576  # derived: kv_lora_rank + rope_head_dim
    assert m.qk_head_dim == 192 and m.kv_heads == m.heads == 128
    h, n = 7168, 128
    q = h * 1536 + 1536 * n * 192
    kv = h * (512 + 64) + 512 * n * (128 + 128)
    o = n * 128 * h
    assert m.attention_params_per_layer() == q + kv + o == 187_105_280
    assert (m.moe_dense_layers, m.ffn_hidden, m.moe_experts, m.moe_topk, m.moe_ffn_hidden,
            m.moe_shared_experts) == (3, 18432, 256, 8, 2048, 1)
    assert not m.tied_embeddings
    table = model_tables()["deepseek-v3"]
    assert "kv_latent_dim" not in table  # derived, not restated


def test_wide_attention_and_sliding_windows():
    """Qwen3-235B-A22B and gpt-oss-120b attend with 64 heads wider than hidden / heads;
    gpt-oss alternates 128-token sliding-window and full-attention layers (18 of 36)."""
    qwen = get_model("qwen3-235b-a22b")
    assert qwen.head_dim == 128 and qwen.heads * qwen.head_dim == 8192 > qwen.hidden
    assert qwen.moe_dense_layers == 0 and qwen.moe_shared_experts == 0
    oss = get_model("gpt-oss-120b")
    assert oss.head_dim == 64 and oss.heads * oss.head_dim == 4096 > oss.hidden
    assert (oss.sliding_window, oss.sliding_window_layers, oss.layers) == (128, 18, 36)
    for mid in model_ids():
        if mid != "gpt-oss-120b":
            assert get_model(mid).sliding_window == 0, mid


def test_grok_1_expert_width_as_its_code_computes_it():
    """model.py ffn_size(emb_size, widening_factor): int(w * emb) * 2 // 3, rounded up to a
    multiple of 8; run.py: emb_size 48 * 128, widening_factor 8."""
    emb, widening = 48 * 128, 8
    size = int(widening * emb) * 2 // 3
    size += (8 - size) % 8
    m = get_model("grok-1")
    assert m.moe_ffn_hidden == size == 32768
    assert (m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim, m.vocab) == (
        64, 6144, 48, 8, 128, 128 * 1024)
    assert m.gated_mlp and (m.moe_experts, m.moe_topk) == (8, 2)


# ---- names -----------------------------------------------------------------------------------
# Every distinct `model` of calibration.csv and the catalog id it must match (None: a model the
# catalog does not hold, or a different architecture of a similar size).
CALIBRATION_MATCHES = {
    "DeepSeek-V3": "deepseek-v3",
    "Qwen3-235B-A22B": "qwen3-235b-a22b",
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "qwen3-235b-a22b",
    "gpt-oss-120b": "gpt-oss-120b",
    "Mixtral-8x7B": "mixtral-8x7b",
    "Mixtral-8x22B": "mixtral-8x22b",
    "Grok-1 314B": "grok-1",
    "GPT-3 175B": "gpt3-175b",
    "GPT3-175B": "gpt3-175b",
    "MT-NLG 530B": "mtnlg-530b",
    "Nemotron-340B": "nemotron-4-340b",
    "Nemotron4 340B": "nemotron-4-340b",
    "LLAMA3-8B": "llama3-8b",
    "Llama 3.1 8B": "llama3-8b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama3-8b",
    # Llama 3.1 70B and 3.3 70B are the Llama 3 70B architecture (same config.json shapes)
    "LLAMA3-70B": "llama3-70b",
    "Llama 3.1 70B": "llama3-70b",
    "Llama 3.3 70B": "llama3-70b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama3-70b",
    "Llama 3.1 405B": "llama3-405b",
    "Llama 3.1 405B FP8": "llama3-405b",
    "meta-llama/Llama-3.1-405B-Instruct-FP8": "llama3-405b",
    # other architectures: must match nothing
    "GPT 174.6B (ZeRO-3, no model parallel)": None,  # Megatron run, vocab 51200: not GPT-3's
    "GPT 174.6B (PTD parallelism)": None,
    "GPT 529.6B (ZeRO-3, no model parallel)": None,
    "GPT 529.6B (PTD parallelism)": None,
    "GPT 529.6B": None,
    "LLAMA2-70B": "llama2-70b",  # Llama 2 (vocab 32000), in the catalog since issue 17
    "LLAMA2-13B": None,
    "LLAMA2-7B": None,
    "MPT-70b": None,  # MPT: MHA, 4x GELU MLP, vocab 50368
    "MPT-30b": None,
    "MPT-13b": None,
    "MPT-7b": None,
    "MPT-3b": None,
    "MPT-1b": None,
    "Nemotron-15B": None,  # Nemotron-4 15B
    "Nemotron-22B": None,
    "Nemotron-8B": None,
    "GPT3-20B": None,
    "GPT3-5B": None,
    "22B": None,
    "1T": None,
    "GPT 1.7B": None,
    "GPT 3.6B": None,
    "GPT 7.5B": None,
    "GPT 18.4B": None,
    "GPT 39.1B": None,
    "GPT 76.1B": None,
    "GPT 145.6B": None,
    "GPT 310.1B": None,
    "GPT 1008.0B": None,
}


@pytest.mark.parametrize("row", calibration_rows(), ids=lambda r: r["case_id"])
def test_calibration_row_matches_its_catalog_model(row):
    name = row["model"]
    assert name in CALIBRATION_MATCHES, (
        f"new calibration model {name!r}: add it to CALIBRATION_MATCHES (and, if it is a catalog "
        "architecture, to that model's aliases in models.toml)")
    assert match_model(name) == CALIBRATION_MATCHES[name]


@pytest.mark.parametrize("name, expected", [
    ("meta-llama/Meta-Llama-3-70B-Instruct", "llama3-70b"),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama3-70b"),
    ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
    ("DeepSeek-V3-0324", "deepseek-v3"),
    ("openai/gpt-oss-120b", "gpt-oss-120b"),
    ("xai-org/grok-1", "grok-1"),
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral-8x22b"),
    ("mistralai/Mixtral-8x7B-v0.1", "mixtral-8x7b"),
    ("Qwen/Qwen3-235B-A22B", "qwen3-235b-a22b"),
    ("nvidia/Nemotron-4-340B-Instruct", "nemotron-4-340b"),
    # similar names, other architectures
    ("Llama 2 70B", "llama2-70b"),
    ("meta-llama/Llama-2-70b-hf", "llama2-70b"),
    ("Llama 2 13B", None),
    ("mosaicml/mpt-70b", None),
    ("openai/gpt-oss-20b", None),
    ("Qwen/Qwen3-30B-A3B", None),
    ("Qwen/Qwen3-32B", None),
    ("DeepSeek-V2", None),
    ("Grok-2", None),
    ("Nemotron-4 15B", None),
    ("Llama 3.2 3B", None),
])
def test_names_match_only_their_architecture(name, expected):
    assert match_model(name) == expected


def test_every_alias_names_one_model():
    """No normalized name (id, name or alias) belongs to two catalog ids, and every alias
    matches its own model (match_model keeps the first id a name was seen with)."""
    owner: dict[str, str] = {}
    for mid, table in model_tables().items():
        names = (mid, table["name"], *table.get("aliases", ()))
        for name in names:
            key = normalize_model_name(name)
            assert key, (mid, name)
            assert owner.setdefault(key, mid) == mid, (name, owner[key], mid)
            assert match_model(name) == mid, (name, mid)
        assert table.get("aliases"), f"{mid}: no aliases"


# ---- shapes ----------------------------------------------------------------------------------
SHAPE_COLUMNS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "gated_mlp", "vocab",
                 "moe_experts", "moe_topk", "moe_ffn_hidden")

# (calibration model, column, value in calibration.csv): why it differs from the catalog
DOCUMENTED_DIFFERENCES = {
    ("Grok-1 314B", "vocab", 128256):
        "NVIDIA dgxc-benchmarking grok1_314b.yaml trains Grok-1's shape with the "
        "meta-llama/Meta-Llama-3-70B tokenizer as a proxy (128256); Grok-1's own SentencePiece "
        "vocabulary is 131072 (run.py vocab_size=128 * 1024)",
    ("Mixtral-8x22B", "vocab", 32768):
        "NeMo's Mixtral 8x22B perf script uses the v3 tokenizer (32768, as in "
        "Mixtral-8x22B-Instruct-v0.1's config.json); mistralai/Mixtral-8x22B-v0.1 config.json "
        "says 32000",
    ("GPT-3 175B", "vocab", 51200):
        "Megatron-LM runs (Korthikanti et al. 2022, Table 5) pad the GPT-2 BPE vocabulary "
        "(50257) to 51200",
    ("GPT-3 175B", "vocab", 50304):
        "MaxText's gpt3-175b config pads the GPT-2 BPE vocabulary (50257) to 50304, a multiple "
        "of 128",
}


def _shape_differences():
    found = {}
    for row in calibration_rows():
        mid = match_model(row["model"])
        if mid is None:
            continue
        m = get_model(mid)
        for col in SHAPE_COLUMNS:
            text = row[col].strip()
            if not text:
                continue
            if int(float(text)) != int(getattr(m, col)):
                found.setdefault((row["model"], col, int(float(text))), []).append(row["case_id"])
    return found


def test_calibration_shapes_agree_with_the_catalog():
    found = _shape_differences()
    undocumented = {k: v for k, v in found.items() if k not in DOCUMENTED_DIFFERENCES}
    assert not undocumented, (
        "calibration rows whose shape differs from the catalog model they match "
        f"(model, column, row value) -> case ids: {undocumented}")


def test_documented_differences_still_occur():
    """A documented difference that no row shows any more is stale: drop it."""
    stale = set(DOCUMENTED_DIFFERENCES) - set(_shape_differences())
    assert not stale, stale
