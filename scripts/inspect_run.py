"""Inspect a run: every trial and the latest Pareto snapshot as pandas DataFrames.

    python scripts/inspect_run.py runs/quickstart
"""

import argparse
from pathlib import Path

import pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("run_dir", nargs="?", default="runs/quickstart")
args = ap.parse_args()
run = Path(args.run_dir)

trials = pd.read_parquet(run / "trials")
latest = sorted((run / "pareto").glob("front-*.parquet"))[-1]
front = pd.read_parquet(latest)
print(f"{len(trials)} trials, {int(trials.constraints_ok.sum())} feasible")
print("infeasible by reason:")
print(trials.loc[~trials.feasible, "reason"].value_counts().to_string())
print(f"\nPareto front ({latest.name}):")
cols = [c for c in front.columns if c.startswith(("value_", "param_"))] + ["tdp_w", "mfu"]
print(front.sort_values(cols[0], ascending=False)[cols].to_string(index=False))
