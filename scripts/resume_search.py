"""Resume a study from its run directory (same study, same storage, numbering continues).

    python scripts/resume_search.py runs/quickstart --trials 100
"""

import argparse

from codesign.search.study import load_run, run_search

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--trials", type=int, default=100)
args = ap.parse_args()

exp, run = load_run(args.run_dir)
summary = run_search(exp, run, n_trials=args.trials)
print(f"now {summary.trials_total_complete} trials; front: {summary.pareto_path}")
