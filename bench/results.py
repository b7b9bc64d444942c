"""Results as data: every trial record of a results folder as one pandas DataFrame, for notebooks and
scripts. ``bench report`` reads records through the same ``bench.store.records_frame``.

>>> from bench import results
>>> frame = results.load("results", suite="quickstart")
>>> frame[frame.task == "next_item"][["label", "test/recall@10", "test/ndcg@10"]]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.render import check_suites
from bench.store import load_records, records_frame


def load(root: str | Path = "results", suite: str | list[str] | None = None,
         per_example: bool = False) -> pd.DataFrame:
    """One row per trial under ``root`` (only ``suite``'s, one name or several, where given): identity,
    configuration (``param.*``, ``budget.*``, ``protocol.*``), status and error, test and validation
    metrics with their CIs (``test/recall@10``, ``test/recall@10/ci_low``, ...), costs (``acct.*``) and
    how training ended (``train.*``). ``per_example``: also ``test/<metric>/values``, each test example's
    value (a numpy array in the trial's example order, which ``bench report --versus`` pairs). Damaged
    records are left out and named on stderr."""
    root = Path(root)
    suites = [suite] if isinstance(suite, str) else suite
    check_suites(root, suites)
    records = load_records(root, suites)
    for damaged in records.damaged:
        print(f"note: skipped a damaged record, {damaged}", file=sys.stderr)
    frame = records_frame(records)
    if per_example and len(frame):
        values = [(rec.get("per_example") or {}).get("test") or {} for rec in records]
        for name in dict.fromkeys(name for trial in values for name in trial):
            frame[f"test/{name}/values"] = [np.asarray(trial[name]) if name in trial else None for trial in values]
    return frame
