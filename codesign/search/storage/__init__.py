"""Where a run lives: its directory, its storage URL, run.json and the rows of its trials.

* :mod:`~codesign.search.storage.rundir`: run directories, fingerprints, opening storages;
* :mod:`~codesign.search.storage.urls`: ``--out`` and storage URLs checked before anything
  is made;
* :mod:`~codesign.search.storage.runfile`: run.json, and a change of experiment as one
  transaction;
* :mod:`~codesign.search.storage.trial_rows`: a finished trial as one log row;
* :mod:`~codesign.search.storage.compact`: the Parquet log's small files merged, crash-safe;
* :mod:`~codesign.search.storage.log_state`: whether the Parquet log stands in for the
  storage (read without replaying the journal).
"""

from __future__ import annotations
