"""Reports: the paper's tables with its own numbers beside ours, "—" where we have no result."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.report.paper_tables import LAYOUTS, paper_numbers, paper_table
from bench.store import records_frame


def record(method: str, dataset: str, recall10: float, **params) -> dict:
    stats = {"mean": recall10, "ci_low": recall10, "ci_high": recall10, "n": 10}
    return {"trial_id": method, "suite": "s", "status": "ok",
            "spec": {"method": method, "label": method, "dataset": {"name": dataset}, "task": "next_item",
                     "seq_len": 50, "seed": 0, "params": params},
            "metrics": {"valid": {"recall@10": stats}, "test": {"recall@10": stats}}, "accounting": {}}


def test_every_layout_cell_has_a_transcribed_paper_number():
    for number, layout in LAYOUTS.items():
        paper = paper_numbers(number)
        assert {(r, c) for r in layout.rows for c in layout.columns} == set(paper), number


def test_table2_puts_our_number_beside_the_papers():
    frame = records_frame([record("dual_encoder", "ml-100k", 0.0412)])
    text = paper_table(2, frame, "csv")
    rows = pd.read_csv(__import__("io").StringIO(text)).set_index("Unnamed: 0")
    assert rows.loc["MovieLens20M R@10", "DualEnc ours"] == "0.041 (ml-100k)"
    assert rows.loc["MovieLens20M R@10", "DualEnc paper"] == 0.206
    assert rows.loc["MovieLens20M R@10", "Bert4Rec ours"] == "—"
    assert rows.loc["Amazon Review R@10", "DualEnc ours"] == "—"


def test_table3_without_results_shows_dashes_not_numbers():
    text = paper_table(3, records_frame([]), "csv")
    assert text.count("—") == 9 and "21.9" in text


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ConfigError, match="--table 13: layouts so far: 2, 3"):
        paper_table(13, records_frame([]))
