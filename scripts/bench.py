"""Benchmark the evaluator, the mapping search and the search loop; print the JSON document.

    python scripts/bench.py [--quick] [--search-trials N] > bench.json
"""

import argparse
import json

from codesign.search.bench import run_bench

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="300 search trials instead of 2000")
ap.add_argument("--search-trials", type=int, default=None)
args = ap.parse_args()
print(json.dumps(run_bench(quick=args.quick, search_trials=args.search_trials), indent=2))
