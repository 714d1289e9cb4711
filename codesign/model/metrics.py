"""Metrics a result exposes: the names objectives and constraints may use, with units."""

from __future__ import annotations

METRICS: dict[str, tuple[str, str]] = {
    # name: (unit, natural direction)
    "tokens_per_s": ("tokens/s", "maximize"),
    "tokens_per_s_per_chip": ("tokens/s/chip", "maximize"),
    "tokens_per_joule": ("tokens/J", "maximize"),
    "mfu": ("fraction", "maximize"),
    "step_time_s": ("s", "minimize"),
    "ttft_s": ("s", "minimize"),
    "itl_s": ("s", "minimize"),
    "die_area_mm2": ("mm^2 (one compute die)", "minimize"),
    "silicon_mm2": ("mm^2 (all compute dies)", "minimize"),
    "n_compute_dies": ("dies", "minimize"),
    "tdp_w": ("W", "minimize"),
    "chip_cost_usd": ("USD", "minimize"),
    "chip_power_w": ("W", "minimize"),
    "cluster_power_w": ("W", "minimize"),
    "cost_per_mtoken_usd": ("USD per 1e6 tokens", "minimize"),
    "cost_per_run_usd": ("USD", "minimize"),
    "train_days": ("days to train the workload's train_tokens", "minimize"),
    "host_w_per_chip": ("W of host (CPU, DRAM, board) per chip", "minimize"),
    "network_w_per_chip": ("W of network (NICs, switches, optics, cables) per chip", "minimize"),
    "cooling_w_per_chip": ("W of cooling and power delivery (PUE - 1) per chip", "minimize"),
    "host_usd_per_chip": ("USD of host per chip", "minimize"),
    "network_usd_per_chip": ("USD of network per chip", "minimize"),
    "facility_usd_per_chip": ("USD of building per chip (built for its provisioned power)",
                              "minimize"),
    "tokens_per_s_per_mw": ("tokens/s per MW of provisioned facility power", "maximize"),
    "tokens_per_s_per_gw": ("tokens/s per GW of provisioned facility power", "maximize"),
    "provisioned_power_w": ("W of facility power provisioned (budget, or chips at TDP + hosts "
                            "+ network, x PUE)", "minimize"),
    "idle_chips": ("chips the job's mapping leaves without work", "minimize"),
    "rack_power_kw": ("kW per rack (chips at TDP + their host and network share)",
                      "minimize"),
    "rack_limit_kw": ("kW per rack the cluster's cooling removes (air or liquid; NaN: no "
                      "cooling stated, no limit)", "maximize"),
    "cooling_ok": ("1 if the rack's power and the chip's TDP are within what its cooling "
                   "removes, else 0", "maximize"),
    "n_chips": ("chips", "maximize"),
    "energy_per_token_j": ("J/token (accelerators only)", "minimize"),
    "memory_gb_per_chip": ("GB", "minimize"),
    "hbm_gb": ("GB", "maximize"),
    "peak_tflops_bf16": ("TFLOP/s", "maximize"),
    "clock_fraction": ("sustained clock / peak clock (< 1: throttled to the TDP)", "maximize"),
    # training at scale: failures, checkpoints, restarts, spares (codesign.model.reliability)
    "interruptions_per_day": ("job interruptions per day (hardware failures by component, "
                              "plus known software ones)", "minimize"),
    "effective_training_fraction": ("share of wall time that advances training (after "
                                    "checkpoints, restarts, lost work, chips out for repair)",
                                    "maximize"),
    "train_goodput_tokens_per_s": ("training tokens/s delivered (tokens_per_s x "
                                   "effective_training_fraction)", "maximize"),
    "cost_per_goodput_mtoken_usd": ("USD per 1e6 training tokens delivered (hot spares "
                                    "included)", "minimize"),
    "goodput_train_days": ("days to train the workload's train_tokens, failures included",
                           "minimize"),
    "spare_chips": ("hot spare chips kept in the scale-up domains", "minimize"),
    # serving under traffic (an experiment's [traffic]): at the goodput of the best deployment
    "goodput_rps": ("requests/s whose TTFT and ITL meet the limits at the [traffic] "
                    "percentile (the highest such rate)", "maximize"),
    "goodput_tokens_per_s": ("output tokens/s at the goodput", "maximize"),
    "ttft_p99_s": ("s, P99 time to first token at the goodput", "minimize"),
    "itl_p99_s": ("s, P99 inter-token latency at the goodput", "minimize"),
    "ttft_p50_s": ("s, median time to first token at the goodput", "minimize"),
    "ttft_p90_s": ("s, P90 time to first token at the goodput", "minimize"),
    "itl_p50_s": ("s, median inter-token latency at the goodput", "minimize"),
    "itl_p90_s": ("s, P90 inter-token latency at the goodput", "minimize"),
    "goodput_cost_per_mtoken_usd": ("USD per 1e6 output tokens at the goodput", "minimize"),
    "goodput_tokens_per_joule": ("output tokens/J at the goodput", "maximize"),
    "disaggregated": ("1 if the best deployment splits prefill and decode pools, else 0",
                      "maximize"),
    "one_pool_goodput_rps": ("goodput of the best one-pool deployment, requests/s",
                             "maximize"),
    "disaggregated_goodput_rps": ("goodput of the best disaggregated deployment, requests/s",
                                  "maximize"),
    "prefill_chip_share": ("share of the chips in the prefill pool of the best deployment "
                           "(0: one pool)", "minimize"),
    # the decode pool's chip (a search space's decode_* parameters; else the design's chip)
    "decode_die_area_mm2": ("mm^2 (one compute die of the decode pool's chip)", "minimize"),
    "decode_n_compute_dies": ("dies (the decode pool's chip)", "minimize"),
    "decode_tdp_w": ("W (the decode pool's chip)", "minimize"),
    "decode_chip_cost_usd": ("USD (the decode pool's chip)", "minimize"),
    "decode_hbm_gb": ("GB (the decode pool's chip)", "maximize"),
}
"""Every metric name an experiment may use as an objective or constraint."""

DIRECTIONS = ("maximize", "minimize")

GOODPUT_METRICS = ("interruptions_per_day", "effective_training_fraction",
                   "train_goodput_tokens_per_s", "cost_per_goodput_mtoken_usd",
                   "goodput_train_days", "spare_chips")
"""Metrics of a training job under failures (:mod:`codesign.model.reliability`)."""
TRAIN_ONLY = ("mfu", "step_time_s", "cost_per_run_usd", "train_days", *GOODPUT_METRICS)
INFER_ONLY = ("ttft_s", "itl_s")
"""Metrics that exist for one workload kind only (NaN for the other). For serving,
``tokens_per_s`` counts output tokens of the whole system."""
TRAFFIC_ONLY = ("goodput_rps", "goodput_tokens_per_s", "ttft_p99_s", "itl_p99_s",
                "goodput_cost_per_mtoken_usd", "goodput_tokens_per_joule", "disaggregated",
                "one_pool_goodput_rps", "disaggregated_goodput_rps", "prefill_chip_share",
                "ttft_p50_s", "ttft_p90_s", "itl_p50_s", "itl_p90_s",
                "decode_die_area_mm2", "decode_n_compute_dies", "decode_tdp_w",
                "decode_chip_cost_usd", "decode_hbm_gb")
"""Metrics of serving under traffic: NaN unless the experiment has a ``[traffic]`` table."""
DECODE_CHIP_METRICS = {"decode_die_area_mm2": "die_area_mm2",
                       "decode_n_compute_dies": "n_compute_dies", "decode_tdp_w": "tdp_w",
                       "decode_chip_cost_usd": "chip_cost_usd", "decode_hbm_gb": "hbm_gb"}
"""The decode pool's chip: each metric and the chip metric it mirrors."""

STEP_PARTS = (
    # key, label, level (1: a part of the level-0 row above it)
    ("compute", "compute", 0),
    ("attention_compute", "attention core", 1),
    ("moe_compute", "MoE layers", 1),
    ("tp_cp_ep_comm", "tp/cp/ep communication", 0),
    ("cp_ring_exposed", "cp ring", 1),
    ("ep_all_to_all_exposed", "ep all-to-all", 1),
    ("pipeline_bubble", "pipeline bubble", 0),
    ("pipeline_p2p", "pipeline p2p sends", 0),
    ("dp_comm_exposed", "data-parallel communication", 0),
    ("fsdp_gather_exposed", "ZeRO-3/FSDP gathers", 1),
    ("optimizer", "optimizer step", 0),
    ("host_offload_exposed", "host offload (exposed)", 0),
)
"""The parts of a training step's time (``evaluate``'s ``breakdown_s``, seconds): key, words
for people, level (1: a part of the level-0 part above it)."""
