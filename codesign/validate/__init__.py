"""The model against published measurements and datasheets (``codesign validate``).

* :mod:`~codesign.validate.cases`: rows of a calibration CSV -> chips, models, jobs, with
  every assumption listed;
* :mod:`~codesign.validate.predictions`: each case predicted, errors summarised by family,
  workload and overall;
* :mod:`~codesign.validate.hardware`: die area and TDP predicted vs published, and the fit
  of the area constants.

Also the old ``codesign.validate`` module's API (``predict``, ``run_cases``, ``summarize``,
...), unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codesign._lazy import exports

if TYPE_CHECKING:
    from codesign.validate.cases import Case, default_cases_path, family_of, load_cases
    from codesign.validate.hardware import gate_summary, hardware_table
    from codesign.validate.predictions import compact, error_stats, predict, run_cases, summarize

_PUBLIC = {
    "predict": "codesign.validate.predictions",
    "run_cases": "codesign.validate.predictions",
    "summarize": "codesign.validate.predictions",
    "error_stats": "codesign.validate.predictions",
    "compact": "codesign.validate.predictions",
    "load_cases": "codesign.validate.cases",
    "Case": "codesign.validate.cases",
    "family_of": "codesign.validate.cases",
    "default_cases_path": "codesign.validate.cases",
    "hardware_table": "codesign.validate.hardware",
    "gate_summary": "codesign.validate.hardware",
}
__all__ = [
    "Case",
    "compact",
    "default_cases_path",
    "error_stats",
    "family_of",
    "gate_summary",
    "hardware_table",
    "load_cases",
    "predict",
    "run_cases",
    "summarize",
]
__getattr__, __dir__ = exports(__name__, _PUBLIC)
