"""Launch a search from Python: copy this file and edit the experiment, trials and sampler.

    python scripts/launch_search.py experiments/quickstart.toml --trials 200
"""

import argparse

from codesign.search.experiment import load_experiment
from codesign.search.study import prepare_run, run_search

ap = argparse.ArgumentParser()
ap.add_argument("experiment", nargs="?", default="experiments/quickstart.toml")
ap.add_argument("--trials", type=int, default=200)
ap.add_argument("--study", default=None)
ap.add_argument("--sampler", default=None, help="nsga2 | nsga3 | tpe | gp | random")
args = ap.parse_args()

exp = load_experiment(args.experiment)
run = prepare_run(exp, out=None, study=args.study, storage=None, sampler=args.sampler)
summary = run_search(exp, run, n_trials=args.trials)
print(f"{summary.trials_total_complete} trials; Pareto front ({summary.pareto_size} designs): "
      f"{summary.pareto_path}")
