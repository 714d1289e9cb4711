"""Disaggregated against one-pool serving, and heterogeneous prefill/decode pairs, on catalog
chips as built (platforms.toml): the figures of issue 17's closing note.

    .venv/bin/python scripts/serving_compare.py [--json]

Chat traffic: LMSYS-Chat-1M mean lengths (codesign.model.traffic: 212 prompt, 215 output
tokens), lognormal with a coefficient of variation of 1 (an assumption), P99 limits of 2 s
TTFT and 50 ms ITL, 72 chips, goodput = the highest rate meeting both. Then, for Llama-3 70B
on H100: the goodput ratio disaggregated / one pool over ITL limits and prompt lengths (where
disaggregation wins and where it loses).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from codesign.model.traffic import ASSUMED_INPUT_LEN, ASSUMED_OUTPUT_LEN
from codesign.search.request import EvaluateRequest, evaluate_request

CHIPS = ("h100-sxm", "h200", "b200", "gb200", "mi300x")
BASE = EvaluateRequest(chip="h100-sxm", workload="llama3-70b", input_len=ASSUMED_INPUT_LEN,
                       output_len=float(ASSUMED_OUTPUT_LEN), precision="fp8", n_chips=72,
                       ttft_slo_s=2.0, itl_slo_s=0.05, input_cv=1.0, output_cv=1.0)


def serve(req: EvaluateRequest) -> dict:
    s = evaluate_request(req)["serving_traffic"]
    return {k: s[k] for k in ("mode", "goodput_rps", "cost_per_mtoken_usd", "tokens_per_joule",
                              "prefill_chips", "prefill_mapping", "decode_mapping",
                              "prefill_chunk_tokens", "decode_chip", "reason")}


def main() -> None:
    doc: dict = {"models": {}, "sweep": []}
    for model in ("deepseek-v3", "llama3-70b"):
        rows = []
        for chip in CHIPS:
            for dis in (False, True):
                r = serve(replace(BASE, chip=chip, workload=model, disaggregated=dis))
                rows.append({"prefill_chip": chip, "decode_chip": chip if dis else None, **r})
        for pre in CHIPS:
            for dec in CHIPS:
                if pre != dec:
                    r = serve(replace(BASE, chip=pre, workload=model, disaggregated=True,
                                      decode_chip=dec))
                    rows.append({"prefill_chip": pre, "decode_chip": dec, **r})
        doc["models"][model] = rows
    for itl in (0.015, 0.025, 0.05, 0.1, 0.2):
        for isl in (128, 512, 2048, 8192):
            one = serve(replace(BASE, itl_slo_s=itl, input_len=isl))
            dis = serve(replace(BASE, itl_slo_s=itl, input_len=isl, disaggregated=True))
            doc["sweep"].append({"itl_slo_s": itl, "input_len": isl,
                                 "one_pool_rps": one["goodput_rps"],
                                 "disaggregated_rps": dis["goodput_rps"]})
    if "--json" in sys.argv:
        print(json.dumps(doc, indent=1))
        return
    for model, rows in doc["models"].items():
        print(f"\n{model}: chat traffic, 72 chips, P99 TTFT 2 s / ITL 50 ms")
        print(f"{'prefill':<9} {'decode':<9} {'mode':<14} {'goodput/s':>10} {'$/Mtok':>8} "
              f"{'tok/J':>7}  pools")
        for r in sorted(rows, key=lambda r: -(r["goodput_rps"] or 0)):
            g = r["goodput_rps"]
            pools = (f"{r['prefill_chips']} prefill {r['prefill_mapping']} / decode "
                     f"{r['decode_mapping']}" if r["mode"] == "disaggregated" else
                     f"{r['prefill_mapping']} chunk {r['prefill_chunk_tokens']}"
                     if r["mode"] else r["reason"])
            print(f"{r['prefill_chip']:<9} {r['decode_chip'] or '-':<9} {r['mode'] or '-':<14} "
                  f"{g or 0:>10.1f} {r['cost_per_mtoken_usd'] or 0:>8.3f} "
                  f"{r['tokens_per_joule'] or 0:>7.2f}  {pools}")
    print("\nllama3-70b on H100 x 72: goodput disaggregated / one pool")
    print(f"{'ITL limit':>9} " + " ".join(f"{f'isl {i}':>10}" for i in (128, 512, 2048, 8192)))
    for itl in (0.015, 0.025, 0.05, 0.1, 0.2):
        cells = []
        for r in (x for x in doc["sweep"] if x["itl_slo_s"] == itl):
            one, dis = r["one_pool_rps"] or 0.0, r["disaggregated_rps"] or 0.0
            cells.append(f"{dis / one:>9.2f}x" if one > 0 else
                         ("  only dis" if dis > 0 else "   neither"))
        print(f"{itl * 1e3:>7.0f}ms " + " ".join(f"{c:>10}" for c in cells))


if __name__ == "__main__":
    main()
