"""numba kernels: pure functions over flat float64/int64 arrays, status codes, no Python objects.

Nothing in this package imports Optuna or pandas. The column order of every array is defined in
:mod:`codesign.kernels.layout`; :mod:`codesign.pack` is the only place that fills them from specs.
"""
