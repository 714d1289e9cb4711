"""The embedded Optuna journal (``study.log``): checked, checksummed, replayed, repaired.

* :mod:`~codesign.search.journal.check`: torn or corrupt records, locks, live workers;
* :mod:`~codesign.search.journal.sums`: per-record checksums (``study.log.sums``);
* :mod:`~codesign.search.journal.replay`: a journal replayed without Optuna's side effects;
* :mod:`~codesign.search.journal.log_check`: the Parquet log against the journal;
* :mod:`~codesign.search.journal.doctor`: ``codesign doctor`` (repair, backups, restore).
"""

from __future__ import annotations
