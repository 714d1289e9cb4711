#!/usr/bin/env bash
# Set up a virtualenv with the project, then run the quickstart search (about a minute) and
# write its HTML report (runs/quickstart/report.html, opens offline).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
.venv/bin/codesign search experiments/quickstart.toml "$@"
if [ "$#" -eq 0 ]; then
  .venv/bin/codesign report runs/quickstart
fi
