"""How sure the model is: sources of uncertainty, paired Monte Carlo draws through the kernels,
P10/P50/P90 bands of every metric.

* :mod:`~codesign.model.uncertainty.sources`: the model's own error, estimated from its
  residuals on calibration.csv (a shared part per source family and a per-design part), and
  the published ranges of the technology constants no measurement fits;
* :mod:`~codesign.model.uncertainty.propagate`: the draws of one design through the compiled
  kernels (:mod:`codesign.model.kernels.draws`) and the metrics of each draw; bands and paired
  win probabilities.
"""
