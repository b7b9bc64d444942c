"""Reports: the paper's tables with its own numbers beside ours, "—" where we have no result."""

from __future__ import annotations

import numpy as np
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


# cells the paper leaves empty: DualEnc cannot generate reviews; table 6's NextItem row has three values
EMPTY_IN_PAPER = {(4, "Google Review ReviewG ROUGE", "DualEnc"), (4, "Amazon Review ReviewG ROUGE", "DualEnc"),
                  (6, "MovieLens20M NextItem R@1", "Perceiver Enc")}


def test_every_layout_cell_has_a_transcribed_paper_number():
    for number, layout in LAYOUTS.items():
        paper = paper_numbers(number)
        cells = {(layout.row_label(r), layout.column_label(c)) for r in layout.rows for c in layout.columns}
        assert cells - set(paper) == {(r, c) for n, r, c in EMPTY_IN_PAPER if n == number}, number
        assert set(paper) <= cells, number


def test_transcription_spot_checks_against_the_paper_text():
    assert paper_numbers(13)[("Amazon Review NextItem R@10", "Proj RD")] == 0.0003
    assert paper_numbers(11)[("MovieLens20M NextItem R@10", "Frozen Len200 USER-LLM")] == 0.159
    assert paper_numbers(14)[("Google Review FavCat R@1", "soft Proj")] == 0.259
    assert paper_numbers(4)[("Amazon Review ReviewG ROUGE", "USER-LLM")] == 26.38


def test_table13_picks_the_userllm_variant_by_its_parameters():
    base = {"fusion": "cross_attention", "encoder": "ar", "perceiver": False, "short_context": 0}
    frame = records_frame([record("userllm", "ml-100k", 0.25, strategy="enc", pretrained=True, **base),
                           record("userllm", "ml-100k", 0.11, strategy="enc", pretrained=False, **base)])
    rows = pd.read_csv(__import__("io").StringIO(paper_table(13, frame, "csv"))).set_index("Unnamed: 0")
    assert rows.loc["MovieLens20M NextItem R@10", "Enc PT ours"] == "0.250 (ml-100k)"
    assert rows.loc["MovieLens20M NextItem R@10", "Enc RD ours"] == "0.110 (ml-100k)"
    assert rows.loc["MovieLens20M NextItem R@10", "Full PT ours"] == "—"


def test_table2_puts_our_number_beside_the_papers():
    frame = records_frame([record("dual_encoder", "ml-100k", 0.0412)])
    text = paper_table(2, frame, "csv")
    rows = pd.read_csv(__import__("io").StringIO(text)).set_index("Unnamed: 0")
    assert rows.loc["MovieLens20M NextItem R@10", "DualEnc ours"] == "0.041 (ml-100k)"
    assert rows.loc["MovieLens20M NextItem R@10", "DualEnc paper"] == 0.206
    assert rows.loc["MovieLens20M NextItem R@10", "Bert4Rec ours"] == "—"
    assert rows.loc["Amazon Review NextItem R@10", "DualEnc ours"] == "—"


def test_table3_without_results_shows_dashes_not_numbers():
    text = paper_table(3, records_frame([]), "csv")
    assert text.count("—") == 9 and "21.9" in text


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ConfigError, match="--table 9: expected one of 2, 3, 4, .*table 9 is hyper-parameters"):
        paper_table(9, records_frame([]))


def seq_record(method: str, n: int, recall: float, **params) -> dict:
    stats = {"mean": recall, "ci_low": recall - 0.01, "ci_high": recall + 0.01, "n": 100}
    rec = record(method, "ml-100k", recall, **params)
    rec["trial_id"] = f"{method}-{n}-{params}"
    rec["spec"]["seq_len"] = n
    rec["metrics"]["test"] = {f"recall@{k}": stats for k in (1, 5, 10)}
    rec["accounting"] = {"flops_per_train_example_6nd": 6e9 * n} if method != "popularity" else {}
    return rec


def test_figures_are_drawn_from_results(tmp_path):
    from bench.report.figures import draw_figure

    base = {"fusion": "cross_attention", "encoder": "ar", "perceiver": False, "short_context": 0, "pretrained": True}
    records = [seq_record("popularity", 50, 0.01)]
    for n in (50, 100):
        records += [seq_record("text_prompt", n, 0.05, strategy="lora", prompt_events=n),
                    seq_record("userllm", n, 0.06, strategy="enc", **base)]
    frame = records_frame(records)
    for number in (3, 0):
        path = draw_figure(number, frame, tmp_path / f"f{number}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ConfigError, match="figure 3 needs next_item results"):
        draw_figure(3, records_frame([seq_record("popularity", 50, 0.01)]), tmp_path / "none.png")
    with pytest.raises(ConfigError, match="--figure 7: expected 3"):
        draw_figure(7, frame, tmp_path / "x.png")


def test_paired_difference_counts_wins_and_losses_on_the_same_examples():
    from bench.report.paired import paired_difference

    method = np.array([1, 1, 0, 1, 0, 0, 1, 1] * 25, dtype=float)
    reference = np.array([0, 1, 0, 0, 1, 0, 1, 0] * 25, dtype=float)
    paired = paired_difference(method, reference)
    assert (paired["wins"], paired["losses"], paired["n"]) == (75, 25, 200)
    assert paired["diff"] == pytest.approx(0.25)
    assert 0 < paired["ci_low"] < 0.25 < paired["ci_high"] < 0.5
    same = paired_difference(method, method)
    assert (same["diff"], same["ci_low"], same["ci_high"], same["wins"], same["losses"]) == (0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(method, reference[:-1])


def test_versus_pairs_only_the_same_test_examples_and_tells_configurations_apart():
    from bench.report.paired import versus_rows

    def scored(trial_id: str, label: str, hits: list[float], fingerprint: str = "f1", **params) -> dict:
        rec = record(label, "ml-100k", float(np.mean(hits)), **params)
        rec |= {"trial_id": trial_id, "test_examples": fingerprint, "per_example": {"test": {"recall@10": hits}}}
        return rec

    records = [scored("p", "Popularity", [0, 0, 1, 0]), scored("a", "Mine", [1, 0, 1, 0], beams=10),
               scored("b", "Mine", [1, 1, 1, 0], beams=20), scored("c", "Mine", [1, 1, 1, 1], "f2", beams=30)]
    rows = versus_rows(records, "Popularity")
    assert list(rows["param.beams"]) == [10, 20]
    assert list(rows["wins"]) == [1, 2] and list(rows["losses"]) == [0, 0]
    with pytest.raises(ConfigError, match="no other trial was scored on the same test examples"):
        versus_rows([records[0], records[3]], "Popularity")


def test_versus_pools_a_configurations_seeds_on_the_same_examples():
    from bench.report.paired import versus_rows

    def scored(trial_id: str, label: str, seed: int, hits: list[float]) -> dict:
        rec = record(label, "ml-100k", float(np.mean(hits)))
        rec["spec"]["seed"] = seed
        rec |= {"trial_id": trial_id, "test_examples": "f1", "per_example": {"test": {"recall@10": hits}}}
        return rec

    records = [scored("p0", "Popularity", 0, [0, 0, 1, 0]), scored("p1", "Popularity", 1, [0, 0, 1, 0]),
               scored("m1", "Mine", 1, [0, 1, 0, 0]), scored("m0", "Mine", 0, [1, 1, 1, 0])]
    rows = versus_rows(records, "Popularity")
    assert list(rows["seed"]) == [0, 1, "0 + 1"]
    assert list(rows["mean"]) == ["0.7500", "0.2500", "0.5000"]
    assert list(rows["wins"]) == [2, 1, 2] and list(rows["losses"]) == [0, 1, 1]
    assert rows["difference [95% CI]"].iloc[2].startswith("+0.2500")


def test_versus_tells_a_parameter_left_at_its_default_from_one_set_and_pools_each_apart():
    from bench.report.paired import versus_rows

    def scored(trial_id: str, label: str, seed: int, hits: list[float], **params) -> dict:
        rec = record(label, "ml-100k", float(np.mean(hits)), **params)
        rec["spec"]["seed"] = seed
        rec |= {"trial_id": trial_id, "test_examples": "f1", "per_example": {"test": {"recall@10": hits}}}
        return rec

    records = [scored("p0", "Popularity", 0, [0, 0, 1, 0]), scored("p1", "Popularity", 1, [0, 0, 1, 0]),
               scored("d0", "Mine", 0, [0, 0, 0, 0]), scored("d1", "Mine", 1, [0, 0, 1, 0]),
               scored("g0", "Mine", 0, [1, 1, 1, 1], gate_lr=0.02), scored("g1", "Mine", 1, [1, 1, 1, 0], gate_lr=0.02)]
    rows = versus_rows(records, "Popularity")
    assert list(rows["param.gate_lr"].fillna(0)) == [0, 0, 0, 0.02, 0.02, 0.02]
    assert list(rows["seed"]) == [0, 1, "0 + 1"] * 2
    assert list(rows["mean"]) == ["0.0000", "0.2500", "0.1250", "1.0000", "0.7500", "0.8750"]
