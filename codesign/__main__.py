"""``python -m codesign``: the command line (as the ``codesign`` console script)."""

from codesign.cli import entry

entry()
