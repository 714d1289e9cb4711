"""codesign: hardware-software co-design search for AI datacenter chips and clusters.

An Optuna study proposes chip and cluster designs; a numba-compiled analytical model scores
each one on an LLM workload with its best parallel mapping; Pareto fronts go to Parquet.
Start with ``codesign search experiments/quickstart.toml`` or :func:`codesign.perf.evaluate`.
"""

__version__ = "0.1.0"
