#!/usr/bin/env bash
# Set up a virtualenv with the project and its dev extras, start the local PostgreSQL of the
# distributed tests (scripts/postgres.sh) and install the headless Chromium of the browser tests
# (scripts/chromium.sh), each skipped with a message where it cannot be installed, lint, then
# run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if url=$(bash scripts/postgres.sh 2>/dev/null); then
  export CODESIGN_TEST_PG_URL="$url"
else
  echo "scripts/postgres.sh could not start PostgreSQL: the PostgreSQL tests will be skipped" >&2
fi
if chromium=$(bash scripts/chromium.sh); then
  export CODESIGN_CHROMIUM="$chromium" CODESIGN_REQUIRE_BROWSER=1
else
  echo "scripts/chromium.sh could not install Chromium: the browser tests will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
