"""Write codesign/model/catalog/residuals.csv: the model's residuals on calibration.csv that the
uncertainty bands are estimated from (codesign.validate.residuals). Run after a change to the
model or to calibration.csv; tests/test_uncertainty.py fails while the file is stale.

    python scripts/fit_uncertainty.py
"""

from pathlib import Path

from codesign.model.uncertainty.sources import fit_errors
from codesign.validate.predictions import load_cases, run_cases
from codesign.validate.residuals import residual_rows, residuals_csv

OUT = Path(__file__).resolve().parents[1] / "codesign" / "model" / "catalog" / "residuals.csv"
rows = residual_rows(run_cases(load_cases()))
OUT.write_text(residuals_csv(rows))
print(f"{len(rows)} rows -> {OUT}")
print(fit_errors())
