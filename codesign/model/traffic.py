"""Traffic a measurement left unstated: the documented assumptions ``validate`` applies.

No imports beyond the standard library: the CLI reads these for its help text without loading
the model.
"""

from __future__ import annotations

ASSUMED_INPUT_LEN = 212
"""Prompt tokens of an inference row whose ``input_len`` is empty (``--assume-input-len``
overrides it). The ML.ENERGY (MLE3-*) rows serve LMArena chat conversations, one request per
turn whose prompt is the whole conversation before it (ml-energy/benchmark
``mlenergy/llm/datasets.py``, LMArenaHumanPreferenceDataset: "each turn is the concatenation
of all historical user prompts and model responses"). Real chat traffic of the LMSYS/LMArena
site averages 2.0 turns per conversation, 69.5 tokens per prompt and 214.5 per response
(LMSYS-Chat-1M, Zheng et al., ICLR 2024, Table 1; confirmed as quoted by copies of the paper
and of the dataset card): a two-turn conversation gives requests of 69.5 and 69.5 + 214.5 +
69.5 prompt tokens, 211.5 on average."""

ASSUMED_OUTPUT_LEN = 215
"""Generated tokens of an inference row whose ``output_len`` is empty: LMSYS-Chat-1M, same
table, 214.5 tokens per response on average (confirmed as :data:`ASSUMED_INPUT_LEN`)."""
