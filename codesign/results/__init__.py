"""What a finished (or running) study says: the notebook API, the report, comparisons.

:func:`load_run` gives a :class:`Run` (trials, front, baselines, the study);
:func:`sensitivity` re-evaluates one knob at a time around a design;
:func:`hypervolume_history` and :func:`infeasible_reasons` summarise the search;
:func:`compare_run` puts a run's best designs next to a reference chip;
:func:`extension_ladder` walks from a baseline chip to a design, one change per rung;
:func:`write_report` writes the offline HTML report (:func:`build_figures`: its Plotly
figures by element id). Results import the model and the search,
never the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codesign._lazy import exports

if TYPE_CHECKING:
    from codesign.results.compare import compare_run
    from codesign.results.extend import ExtendResult, extension_ladder
    from codesign.results.hypervolume import hypervolume_history
    from codesign.results.inspect import Run, infeasible_reasons, load_run, read_trials
    from codesign.results.report import build_figures, build_report, write_report
    from codesign.results.sensitivity import sensitivity

_PUBLIC = {
    "load_run": "codesign.results.inspect",
    "Run": "codesign.results.inspect",
    "infeasible_reasons": "codesign.results.inspect",
    "read_trials": "codesign.results.inspect",
    "sensitivity": "codesign.results.sensitivity",
    "hypervolume_history": "codesign.results.hypervolume",
    "compare_run": "codesign.results.compare",
    "extension_ladder": "codesign.results.extend",
    "ExtendResult": "codesign.results.extend",
    "build_figures": "codesign.results.report",
    "build_report": "codesign.results.report",
    "write_report": "codesign.results.report",
}
__all__ = [
    "ExtendResult",
    "Run",
    "build_figures",
    "build_report",
    "compare_run",
    "extension_ladder",
    "hypervolume_history",
    "infeasible_reasons",
    "load_run",
    "read_trials",
    "sensitivity",
    "write_report",
]
__getattr__, __dir__ = exports(__name__, _PUBLIC)
