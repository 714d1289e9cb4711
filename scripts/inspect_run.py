"""Inspect a run from Python, as in a notebook: trials, the front, the best designs, why
trials were infeasible, and what each design knob buys around the best design.

    python scripts/inspect_run.py runs/quickstart
"""

import argparse

import pandas as pd

import codesign
from codesign.results.inspect import hypervolume_history, infeasible_reasons, sensitivity

ap = argparse.ArgumentParser()
ap.add_argument("run_dir", nargs="?", default="runs/quickstart")
args = ap.parse_args()
pd.set_option("display.width", 200)

run = codesign.load_run(args.run_dir)
print(run)  # trials, feasible, objectives
print(f"\nhypervolume after the last trial: {hypervolume_history(run)['hypervolume'].iloc[-1]:.4f}")
print("\ninfeasible trials by reason:")
print(infeasible_reasons(run, by="category")[["category", "kind", "count"]].to_string(index=False))

objectives = [metric for metric, _ in run.objectives]
print(f"\nPareto front ({len(run.pareto)} designs):")
cols = ["trial", *[f"value_{o}" for o in objectives],
        *[c for c in run.pareto.columns if c.startswith("param_")]]
print(run.pareto[cols].to_string(index=False))

best = run.best(objectives[0])
print(f"\nbest {objectives[0]}: trial {best['trial']}; one parameter at a time around it:")
sens = sensitivity(run, int(best["trial"]))
print(sens[["param", "from", "to", *[f"rel_{o}" for o in objectives], "constraints_ok"]]
      .to_string(index=False, float_format=lambda x: f"{x:+.3f}"))
