#!/usr/bin/env bash
# Set up a virtualenv with the project and its dev extras, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
