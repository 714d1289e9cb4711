"""The model's residuals on calibration.csv, as the uncertainty model reads them
(``codesign/model/catalog/residuals.csv``; :mod:`codesign.model.uncertainty.sources`).

Each predicted row gives ``log_error`` = log(measured / predicted) of a speed (throughput rows;
time rows inverted, so a positive error always means the hardware was faster than predicted)
or of power. Written by ``scripts/fit_uncertainty.py``; a test checks the packaged file
against a fresh ``codesign validate``.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pandas as pd

SPEED_METRICS = {"tokens_per_s_per_chip": 1, "output_tokens_per_s": 1, "iteration_time_s": -1,
                 "ttft_s": -1, "itl_s": -1}
"""Speed rows: metric -> sign of log(measured / predicted) that makes a faster chip positive."""
POWER_METRICS = {"chip_power_w": 1}
"""Power rows. Energy-per-token rows mix speed and power error: not fitted, only checked."""
COLUMNS = ("case_id", "family", "metric", "kind", "measured", "predicted", "log_error")


def kind_of(metric: str) -> str:
    """"speed", "power" or "energy" (a row the error model is not fitted to)."""
    return "speed" if metric in SPEED_METRICS else "power" if metric in POWER_METRICS \
        else "energy"


def residual_rows(predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of :data:`COLUMNS` for every predicted row of ``predictions``
    (:func:`codesign.validate.predictions.run_cases`)."""
    out = []
    for r in predictions.itertuples(index=False):
        if r.predicted is None or not (isinstance(r.predicted, float | int)
                                       and math.isfinite(r.predicted) and r.predicted > 0):
            continue
        sign = SPEED_METRICS.get(r.metric, 1)
        out.append({"case_id": r.case_id, "family": r.family, "metric": r.metric,
                    "kind": kind_of(r.metric), "measured": float(r.measured),
                    "predicted": float(r.predicted),
                    "log_error": sign * math.log(float(r.measured) / float(r.predicted))})
    return out


def residuals_csv(rows: list[dict[str, Any]]) -> str:
    """The CSV text of :func:`residual_rows` (6 significant digits)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
