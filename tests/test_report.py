"""Reports: the paper's tables with its own numbers beside ours, "—" where we have no result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.report.paper_tables import LAYOUTS, TABLE3_ROWS, paper_numbers, paper_table
from bench.store import records_frame

from helpers import RECORD_PROTOCOL as PROTOCOL
from helpers import record, seq_record

# cells the paper leaves empty: DualEnc cannot generate reviews; table 6's NextItem row has three values
EMPTY_IN_PAPER = {(4, "Google Review ReviewG ROUGE", "DualEnc"), (4, "Amazon Review ReviewG ROUGE", "DualEnc"),
                  (6, "MovieLens20M NextItem R@1", "Perceiver Enc")}
# table 3's measured rows are this harness's own: the paper reports tokens and 6ND only
EMPTY_IN_PAPER |= {(3, row, f"Len{n}") for row in TABLE3_ROWS[3:] for n in (50, 100, 200)}


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
    base = {"fusion": "cross_attention", "encoder.kind": "ar", "perceiver": False, "short_context": 0}
    frame = records_frame([record("userllm", "ml-100k", 0.25, strategy="enc", pretrained=True, **base),
                           record("userllm", "ml-100k", 0.11, strategy="enc", pretrained=False, **base)])
    rows = pd.read_csv(__import__("io").StringIO(paper_table(13, frame, "csv"))).set_index("Unnamed: 0")
    assert rows.loc["MovieLens20M NextItem R@10", "Enc PT ours"] == "0.250 (ml-100k, s/userllm)"
    assert rows.loc["MovieLens20M NextItem R@10", "Enc RD ours"] == "0.110 (ml-100k, s/userllm)"
    assert rows.loc["MovieLens20M NextItem R@10", "Full PT ours"] == "—"


def test_table2_puts_our_number_beside_the_papers():
    frame = records_frame([record("dual_encoder", "ml-100k", 0.0412)])
    text = paper_table(2, frame, "csv")
    rows = pd.read_csv(__import__("io").StringIO(text)).set_index("Unnamed: 0")
    assert rows.loc["MovieLens20M NextItem R@10", "DualEnc ours"] == "0.041 (ml-100k, s/dual_encoder)"
    assert rows.loc["MovieLens20M NextItem R@10", "DualEnc paper"] == 0.206
    assert rows.loc["MovieLens20M NextItem R@10", "Bert4Rec ours"] == "—"
    assert rows.loc["Amazon Review NextItem R@10", "DualEnc ours"] == "—"


def test_table3_without_results_shows_dashes_not_numbers():
    text = paper_table(3, records_frame([]), "csv")
    rows = pd.read_csv(__import__("io").StringIO(text)).set_index("Unnamed: 0")
    ours = rows[[c for c in rows.columns if c.endswith(" ours")]]
    assert ours.size == 21 and (ours == "—").all().all()
    assert rows.loc["FLOPs Reduction", "Len200 paper"] == "78.1"


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ConfigError, match="--table 9: .*table 9 hyper-parameters .*; expected one of 2, 3, 4,"):
        paper_table(9, records_frame([]))
    with pytest.raises(ConfigError, match="--table: unknown paper table 15; expected one of 2, 3, 4, "):
        paper_table(15, records_frame([]))


def test_figures_are_drawn_from_results(tmp_path):
    from bench.report.figures import cost_quality, draw_figure, figure3

    base = {"fusion": "cross_attention", "encoder.kind": "ar", "perceiver": False, "short_context": 0, "pretrained": True}
    records = [seq_record("popularity", 50, 0.01)]
    for n in (100, 50):  # out of order: lines run by N
        records += [seq_record("text_prompt", n, 0.05 + n / 1e4, strategy="lora", prompt_events=n),
                    seq_record("userllm", n, 0.06 + n / 1e4, strategy="enc", **base)]
    for number in ("3", "0"):
        path = draw_figure(number, records, tmp_path / f"f{number}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    frame = records_frame(records)
    frozen_r10 = figure3(frame).axes[5]  # second row (frozen LLM), recall@10
    lines = {c.get_label(): c.lines[0] for c in frozen_r10.containers}
    assert lines["TP (LoRA)"].get_xdata().tolist() == [50, 100]
    assert lines["TP (LoRA)"].get_ydata().tolist() == pytest.approx([0.055, 0.060])
    assert lines["USER-LLM (Enc)"].get_ydata().tolist() == pytest.approx([0.065, 0.070])
    assert not figure3(frame).axes[2].containers  # no unfrozen-LLM results: an empty panel
    cost = cost_quality(frame).axes[0]
    points = sorted((float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in cost.lines
                    if line.get_marker() == "o")
    assert points == [(3e11, pytest.approx(0.055)), (3e11, pytest.approx(0.065)), (6e11, pytest.approx(0.060)),
                      (6e11, pytest.approx(0.070))]
    assert {c.get_label() for c in cost.containers} == {"text_prompt", "userllm"}  # each with its CI bars
    assert [line.get_ydata()[0] for line in cost.lines if line.get_linestyle() == "--"] == [0.01]  # popularity
    assert {t.get_text() for t in cost.texts} >= {"n=10", "popularity (no LLM; n=10)"}
    capped = records_frame([{**records[1], "capped": True}, *records[2:]])
    frozen = figure3(capped).axes[5]
    hollow = [line.get_markerfacecolor() for line in frozen.lines if line.get_marker() == "o"]
    assert hollow.count("none") == 1  # TP (LoRA) at N=100 was tested on a capped sample
    with pytest.raises(ConfigError, match="figure 3 needs next_item results"):
        draw_figure("3", [seq_record("popularity", 50, 0.01)], tmp_path / "none.png")
    with pytest.raises(ConfigError, match="--figure: unknown figure .7.; expected one of 3, 0, efficiency"):
        draw_figure("7", records, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="no trial with a validation curve"):
        draw_figure("curves", records, tmp_path / "c.png")


def test_curves_plot_each_trials_validation_metric_against_step_and_seconds():
    from bench.report.figures import curves

    trained = seq_record("dual_encoder", 50, 0.1)
    trained["training"] = {"valid_metric": "recall@10", "stopped": "patience",
                           "curve": [{"step": s, "seconds": 2.0 * s, "valid": {"recall@10": v}}
                                     for s, v in ((100, 0.05), (200, 0.09), (300, 0.08))]}
    figure = curves([seq_record("popularity", 50, 0.01), trained])
    by_step, by_seconds = figure.axes[:2]
    assert len(by_step.lines) == len(by_seconds.lines) == 1  # popularity has no curve
    assert by_step.lines[0].get_xdata().tolist() == [100, 200, 300]
    assert by_seconds.lines[0].get_xdata().tolist() == [200.0, 400.0, 600.0]
    assert by_step.lines[0].get_ydata().tolist() == by_seconds.lines[0].get_ydata().tolist() == [0.05, 0.09, 0.08]
    assert "stopped: patience" in by_step.get_legend().get_texts()[0].get_text()
    assert by_step.lines[0].get_linestyle() == "-"  # no validation count recorded: not marked
    trained["examples"] = {"valid": [8, 900], "test": [10, 10]}
    few = curves([trained]).axes[0]
    assert few.lines[0].get_linestyle() == "--" and "valid n=8, noisy" in few.get_legend().get_texts()[0].get_text()


def test_paired_difference_counts_wins_and_losses_on_the_same_examples():
    from bench.intervals import paired_difference

    method = np.array([1, 1, 0, 1, 0, 0, 1, 1] * 25, dtype=float)
    reference = np.array([0, 1, 0, 0, 1, 0, 1, 0] * 25, dtype=float)
    paired = paired_difference(method, reference)
    assert (paired["wins"], paired["losses"], paired["n"]) == (75, 25, 200)
    assert paired["diff"] == pytest.approx(0.25)
    assert 0 < paired["ci_low"] < 0.25 < paired["ci_high"] < 0.5
    same = paired_difference(method, method)
    assert (same["diff"], same["wins"], same["losses"], same["p"]) == (0, 0, 0, 1.0) and same["ci_low"] < 0 < same["ci_high"]
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


def scored(trial_id: str, label: str, hits: list[float], seed: int = 0, **params) -> dict:
    rec = record(label, "ml-100k", float(np.mean(hits)), **params)
    rec["spec"]["seed"] = seed
    rec |= {"trial_id": trial_id, "test_examples": "f1", "per_example": {"test": {"recall@10": hits}}}
    return rec


def test_a_budget_is_part_of_the_configuration_in_the_summary_and_versus():
    from bench.report.paired import versus_rows
    from bench.report.summary import summary_rows

    short, long = scored("s", "Mine", [1, 0, 0, 0]), scored("l", "Mine", [1, 1, 1, 0])
    long["spec"]["budget"] = {"steps": 2400}
    rows = summary_rows(records_frame([short, long]))
    assert list(rows["budget.steps"]) == [100, 2400] and list(rows["seeds"]) == [1, 1]  # not two seeds of one
    rows = versus_rows([scored("p", "Popularity", [0, 0, 1, 0]), short, long], "Popularity")
    assert list(rows["budget.steps"]) == [100, 2400] and list(rows["seed"]) == [0, 0]


def test_each_protocol_has_its_own_summary_table_and_pairs_only_within_it():
    from bench.report.paired import versus_rows, versus_tables
    from bench.report.terminal import summary_tables

    records = [scored("p", "Popularity", [0, 0, 1, 0]), scored("m", "Mine", [1, 1, 0, 0])]
    for name, hits, protocol in (("pt", [0, 1, 0, 0], {"split": "temporal"}), ("mt", [1, 1, 1, 1], {"split": "temporal"}),
                                 ("pp", [0, 0, 1, 0], {"windows": "prefixes"}), ("mp", [1, 0, 0, 0], {"windows": "prefixes"})):
        later = scored(name, "Popularity" if name.startswith("p") else "Mine", hits)
        later["spec"]["protocol"] = later["protocol"] = {**PROTOCOL, **protocol}
        records.append(later)
    titles, tables = zip(*summary_tables(records_frame(records)), strict=True)
    assert ["split" in t or "trained on" in t for t in titles] == [False, True, True]
    assert "· trained on prefixes ·" in titles[1] and "· temporal split ·" in titles[2]
    assert all(len(rows) == 2 for rows in tables)
    rows = versus_rows(records, "Popularity")  # each Mine against its own protocol's Popularity
    assert sorted(d.split()[0] for d in rows["difference [95% CI]"]) == ["+0.0000", "+0.2500", "+0.7500"]
    titles = [title for title, _ in versus_tables(records, "Popularity")[0]]  # a table per protocol, named
    assert sorted(titles) == sorted(f"ml-100k · next_item · N=50{words} · test recall@10 against Popularity"
                                    for words in ("", " · trained on prefixes", " · temporal split"))


def test_the_protocols_table_ranks_each_method_under_each_protocol_jointly_where_paired_intervals_overlap(tmp_path):
    from bench.report.html import html_report
    from bench.report.protocols import protocol_tables

    def under(name: str, label: str, hits: int, protocol: dict) -> dict:
        rec = scored(name, label, [1] * hits + [0] * (40 - hits))
        rec["spec"]["protocol"] = rec["protocol"] = {**PROTOCOL, **protocol}
        rec["examples"] = {"test": [40, 40]}
        return rec

    paper, temporal = {}, {"split": "temporal"}
    records = [under("a", "A", 30, paper), under("b", "B", 29, paper), under("c", "C", 2, paper),
               under("at", "A", 3, temporal), under("bt", "B", 20, temporal), under("ct", "C", 19, temporal)]
    (title, rows, notes), = protocol_tables(records)
    assert "rank" in title and list(rows["configuration"]) == ["A", "B", "C"]  # in the paper protocol's order
    assert list(rows.columns[1:]) == ["leave-one-out, exact windows (n=40)", "temporal split (n=40)"]
    # B's 29 of 40 is not told apart from A's 30 (joint first); C is; under temporal the order turns over
    assert list(rows.iloc[:, 1]) == ["0.7500 (1)", "0.7250 (=1)", "0.0500 (3)"]
    assert list(rows.iloc[:, 2]) == ["0.0750 (3)", "0.5000 (1)", "0.4750 (=1)"]
    assert notes == ["temporal split: Kendall's tau with leave-one-out, exact windows -0.33 over 3 configurations"]
    assert protocol_tables(records[:3]) == []  # one protocol: nothing to compare
    page = html_report(records, records_frame(records), tmp_path / "html", None, tmp_path).read_text()
    assert "<section id='protocols'>" in page and "(=1)" in page
    assert "id='protocols'" not in html_report(records[:3], records_frame(records[:3]), tmp_path / "one", None,
                                                tmp_path).read_text()


def test_versus_never_pairs_runs_under_different_protocols_or_dataset_options():
    from bench.report.paired import versus_rows

    kept = scored("m", "Mine", [1, 1, 0, 0])
    kept["protocol"] = {**PROTOCOL, "exclude_history": False}
    other_category = scored("o", "Mine", [1, 1, 1, 0])
    other_category["spec"]["dataset"] = {"name": "ml-100k", "options": {"category": "X"}}
    with pytest.raises(ConfigError, match="no other trial was scored on the same test examples"):
        versus_rows([scored("p", "Popularity", [0, 0, 1, 0]), kept, other_category], "Popularity")


def test_the_best_searched_trial_is_picked_by_the_searchs_own_metric():
    from bench.report.summary import best_of_searches

    def searched(trial_id: str, recall1: float, recall10: float) -> dict:
        rec = record("dual_encoder", "ml-100k", recall10)
        rec["trial_id"] = trial_id
        rec["spec"] |= {"search_group": "g", "search_metric": "recall@1"}
        rec["metrics"]["valid"]["recall@1"] = {"mean": recall1, "ci_low": 0, "ci_high": 1, "n": 10}
        return rec

    frame = records_frame([searched("a", 0.30, 0.10), searched("b", 0.10, 0.50)])
    assert list(best_of_searches(frame)["trial_id"]) == ["a"]


DAMAGED = {  # file content -> what the report says about it
    b'{"trial_id": "bad", "spe': "not JSON",
    b'{"trial_id": "\xff\xfe"}': "bytes that are not UTF-8",
    b'["a", "list"]': "a JSON list instead of an object",
    b'"a string"': "a JSON str instead of an object",
    b'{"status": "ok"}': "no trial_id",
    b'{"trial_id": "bad", "suite": "s", "spec": {}, "status": "ok"}': "spec: suite=None; expected a str",
}


@pytest.mark.parametrize("content", list(DAMAGED))
def test_a_damaged_record_is_skipped_by_the_report_and_named(tmp_path, capsys, content):
    from bench.report.render import render_report
    from bench.store import load_records, record_path, write_json_atomically

    write_json_atomically(record_path("s", "popularity", tmp_path), record("popularity", "ml-100k", 0.1))
    bad = record_path("s", "bad", tmp_path)
    bad.write_bytes(content)
    records = load_records(tmp_path)
    assert [r["trial_id"] for r in records] == ["popularity"]
    assert records.damaged == [f"{bad} ({records.damaged[0].split(' (', 1)[1][:-1]})"]
    assert DAMAGED[content] in records.damaged[0]
    assert "popularity" in render_report(tmp_path)
    assert f"note: skipped a damaged record, {bad}" in capsys.readouterr().err


def test_a_finished_record_without_test_metrics_is_damaged_not_a_dash(tmp_path):
    from bench.store import load_records, record_path, write_json_atomically

    empty = {**record("popularity", "ml-100k", 0.1), "metrics": {"valid": {}, "test": {}}}
    write_json_atomically(record_path("s", "popularity", tmp_path), empty)
    assert "a finished trial without test metrics" in load_records(tmp_path).damaged[0]


def test_report_out_and_suite_mistakes_are_one_error_each(tmp_path, capsys):
    from bench.cli import main
    from bench.store import record_path, write_json_atomically

    write_json_atomically(record_path("s", "popularity", tmp_path), record("popularity", "ml-100k", 0.1))
    results = ["--results", str(tmp_path)]
    (tmp_path / "a_file").write_text("")
    cases = {
        ("--out", str(tmp_path)): "is a folder",
        ("--out", str(tmp_path / "a_file" / "table.txt")): "cannot make its folder",
        ("--figure", "3", "--out", str(tmp_path / "fig.xyz")): "matplotlib cannot write .xyz files",
        ("--figure", "3", "--out", str(tmp_path)): "is a folder",
        ("--suite", "no_such_suite", "--table", "2"): "--suite no_such_suite: no results under",
    }
    for args, expected in cases.items():
        assert main(["report", *args, *results]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and "Traceback" not in err, (args, err)
    drawn = {**seq_record("text_prompt", 50, 0.05, strategy="lora", prompt_events=50), "trial_id": "tp50"}
    write_json_atomically(record_path("s", "tp50", tmp_path), drawn)
    assert main(["report", "--figure", "3", "--out", str(tmp_path / "fig"), *results]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'fig.png'}"
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_table3_compares_textprompt_and_userllm_of_the_same_strategy_and_says_which():
    def costed(method: str, strategy: str, tokens: float, flops: float, **params) -> dict:
        rec = record(method, "ml-100k", 0.1, strategy=strategy, **params)
        rec["trial_id"] = f"{method}-{strategy}"
        rec["accounting"] = {"llm_input_tokens_mean": tokens, "flops_per_train_example_6nd": flops}
        return rec

    ours = {"fusion": "cross_attention", "short_context": 0}
    frame = records_frame([costed("text_prompt", "lora", 700, 7e12, prompt_events=50),
                           costed("userllm", "enc", 17, 1e11, **ours), costed("userllm", "lora", 17, 2e11, **ours)])
    rows = pd.read_csv(__import__("io").StringIO(paper_table(3, frame, "csv"))).set_index("Unnamed: 0")
    assert rows.loc["FLOPs Reduction", "Len50 ours"] == "35.0X [lora; ml-100k, s/text_prompt / ml-100k, s/userllm]"  # not 7e12 / 1e11 of the enc trial
    assert rows.loc["# Tokens TP", "Len50 ours"] == "700 (ml-100k, s/text_prompt) [lora]"
    assert rows.loc["# Tokens USER-LLM", "Len50 ours"] == "17 (ml-100k, s/userllm) [lora]"


def test_table3_measured_rows_pair_the_same_timed_users_and_name_the_device():
    def timed(method: str, seconds: list[float], fingerprint: str, **params) -> dict:
        rec = record(method, "ml-100k", 0.1, strategy="full", **params)
        rec["trial_id"] = f"{method}-{fingerprint}"
        rec["accounting"] = {"llm_input_tokens_mean": 700 if method == "text_prompt" else 32,
                             "flops_per_train_example_6nd": 7e12 if method == "text_prompt" else 2e11,
                             "flops_per_train_example_measured": 9e12 if method == "text_prompt" else 3e11,
                             "flops_per_inference_example_measured": 4e12 if method == "text_prompt" else 1e11}
        rec |= {"timing": {"test_seconds": seconds}, "test_examples": fingerprint, "device_name": "Test CPU",
                "peak_rss_gb": 6.5 if method == "text_prompt" else 1.25}
        return rec

    ours = {"fusion": "cross_attention", "short_context": 0}
    frame = records_frame([timed("text_prompt", [2.0, 4.0, 3.0], "f1", prompt_events=50),
                           timed("userllm", [0.1, 0.2, 0.1], "f1", **ours)])
    rows = pd.read_csv(__import__("io").StringIO(paper_table(3, frame, "csv"))).set_index("Unnamed: 0")
    speedup = rows.loc["Inference speed-up, measured", "Len50 ours"]
    assert speedup.startswith("22.5X [") and "(3 users, 3.00 / 0.133 s each; Test CPU) [full]" in speedup
    low, high = map(float, speedup.split("[")[1].split("]")[0].split(", "))
    assert low <= 22.5 <= high
    assert rows.loc["FLOPs Reduction, measured training", "Len50 ours"].startswith("30.0X [full;")
    assert rows.loc["FLOPs Reduction, measured inference", "Len50 ours"].startswith("40.0X [full;")
    assert rows.loc["Peak memory GB, TP / USER-LLM", "Len50 ours"] == "6.50 / 1.25 [full]"
    other_users = records_frame([timed("text_prompt", [2.0, 4.0, 3.0], "f1", prompt_events=50),
                                 timed("userllm", [0.1, 0.2, 0.1], "f2", **ours)])
    rows = pd.read_csv(__import__("io").StringIO(paper_table(3, other_users, "csv"))).set_index("Unnamed: 0")
    assert rows.loc["Inference speed-up, measured", "Len50 ours"] == "—"  # never across different users

    from bench.report.figures import efficiency

    figure = efficiency(frame)
    tokens_ax, seconds_ax = figure.axes
    assert tokens_ax.get_yscale() == "log" and seconds_ax.get_xscale() == "log"
    labels = [line.get_label() for line in tokens_ax.get_lines()]
    assert labels == ["TP (full), ours", "TP, paper", "USER-LLM (full), ours", "USER-LLM, paper"]
    assert list(tokens_ax.get_lines()[1].get_ydata()) == [700, 1350, 2500]  # the paper's points
    assert "Test CPU" in figure._suptitle.get_text()


def test_versus_refuses_a_reference_label_on_two_configurations_and_lists_the_unpaired():
    from bench.report.paired import versus_rows

    short, long = scored("p1", "Popularity", [0, 0, 1, 0]), scored("p2", "Popularity", [0, 1, 1, 0])
    long["spec"]["budget"] = {"steps": 2400}
    with pytest.raises(ConfigError, match=r"2 configurations carry that label on ml-100k/next_item/N=50 "
                                          r"\(budget.steps=100; budget.steps=2400\)"):
        versus_rows([short, long, scored("m", "Mine", [1, 1, 1, 0])], "Popularity")
    capped = scored("c", "Capped", [1, 0])
    capped["test_examples"] = "f2"
    rows = versus_rows([short, scored("m", "Mine", [1, 1, 1, 0]), capped], "Popularity")
    assert rows.attrs["unpaired"] == ["Capped (ml-100k/next_item/N=50, seed 0): Popularity differs in test examples "
                                      "(none shared)"]


def test_a_capped_run_pairs_with_the_reference_on_its_shared_users_in_a_table_a_person_reads():
    from bench.report.paired import versus_rows, versus_tables
    from bench.report.terminal import versus_text

    reference = scored("p", "Popularity", [0, 0, 1, 0, 1, 0])
    reference["test_label_positions"] = [10, 20, 30, 40, 50, 60]
    capped = scored("c", "A much longer label than anyone would type (32 users)", [1, 1])
    capped["test_label_positions"] = [30, 60]
    full = scored("m", "Mine", [1, 1, 1, 0, 0, 0], beams=10)
    full["test_label_positions"] = reference["test_label_positions"]
    rows = versus_rows([reference, capped, full], "Popularity")
    by_label = rows.set_index("label")
    assert by_label.loc["A much longer label than anyone would type (32 users)", "Popularity"] == "0.5000"  # at 30 and 60
    assert by_label.loc["A much longer label than anyone would type (32 users)", "n"] == 2
    tables, unpaired = versus_tables([reference, capped, full], "Popularity")
    (title, table), = tables
    assert title == "ml-100k · next_item · N=50 · test recall@10 against Popularity" and not unpaired
    assert list(table.columns) == ["configuration", "n", "recall@10", "Popularity", "difference [95% CI]", "p", "won/lost"]
    assert list(table["won/lost"]) == ["1/0", "2/1"]  # largest difference first
    text = versus_text([reference, capped, full], "Popularity")
    assert max(map(len, text.splitlines())) <= 120
    other_task = scored("o", "Other", [1, 0, 0, 0, 0, 0])
    other_task["spec"]["task"] = "fav_category"
    _, unpaired = versus_tables([reference, full, other_task], "Popularity")
    assert unpaired == ["ml-100k/fav_category: no Popularity trial (Other)"]  # one line per task it never ran on


def test_a_paper_table_cell_shows_one_configuration_and_says_which():
    quick, long = record("dual_encoder", "ml-100k", 0.04), record("dual_encoder", "ml-100k", 0.08)
    quick["trial_id"], long["trial_id"] = "q", "l"
    long["spec"]["budget"] = {"steps": 3000}
    quick["examples"] = {"test": [100, 563]}
    quick["capped"] = True
    long["examples"] = {"test": [563, 563]}
    rows = pd.read_csv(__import__("io").StringIO(paper_table(2, records_frame([quick, long]), "csv")))
    cell = rows.set_index("Unnamed: 0").loc["MovieLens20M NextItem R@10", "DualEnc ours"]
    assert cell == "0.080 (ml-100k, s/dual_encoder; 1 of 2 configurations)"  # the uncapped one, never a mean


def test_the_terminal_summary_fits_120_columns_sorted_by_the_primary_metric(tmp_path):
    from bench.report.terminal import terminal_summary

    def ranked(trial_id: str, label: str, recall: float, **params) -> dict:
        rec = record(trial_id, "ml-100k", recall, **params)
        rec["spec"]["label"] = label
        stats = {"mean": recall / 2, "ci_low": 0.0, "ci_high": 1.0, "n": 10}
        rec["metrics"]["test"] |= {"ndcg@10": stats, "mrr@10": stats}
        return rec

    long = "a method with a label far longer than any terminal column should hold"
    records = [ranked("a", "Popularity", 0.10), ranked("b", long, 0.30), ranked("c", "DualEnc", 0.20, dim=32),
               ranked("d", "DualEnc", 0.25, dim=64),
               {**record("e", "ml-100k", 0.0), "status": "failed", "error": {"message": "boom " * 80}}]
    for rec in records:
        rec["spec"]["method"] = "dual_encoder" if rec["spec"]["label"] == "DualEnc" else rec["trial_id"]
    # one currency for every row: examples, pretraining's where some row pretrained, FLOPs of all of it
    records[2]["accounting"] = {"train_examples": 128, "pretrain_examples": 38_400, "total_train_flops": 2.31e13}
    text = terminal_summary(records_frame(records), tmp_path)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[0] == "ml-100k · next_item · N=50 · sorted by test recall@10"
    assert any(line.startswith("§ native kernels") for line in lines)  # records without pinned kernels
    assert lines[1].split() == ["configuration", "test", "n", "recall@10", "ndcg@10", "train", "ex",
                                "pre", "ex", "FLOPs", "stopped"]  # mrr@10 gave way to fit 120 columns
    assert lines[5].split()[-4:-1] == ["128", "38,400", "2.3e+13"]
    names = [line.split("  ")[0] for line in lines[3:7]]
    assert names[1:] == ["DualEnc [dim=64]", "DualEnc [dim=32]", "Popularity"]
    # a long name is cut, at 30 characters or more where the table has room to spare below 120 columns
    assert names[0].endswith("…") and long.startswith(names[0][:-1]) and len(names[0]) >= 30
    assert "0.3000 [0.300, 0.300]" in lines[3] and "0.1500" in lines[3]
    assert lines[-2].startswith("  e ml-100k/next_item/N=50 seed=0: boom boom") and lines[-2].endswith("…")
    assert lines[-1].strip() == str(tmp_path / "s" / "trials" / "e.json")


def test_results_load_gives_one_row_per_trial_with_per_example_values_on_request(tmp_path):
    from bench import results
    from bench.store import record_path, write_json_atomically

    for name, recall in (("popularity", 0.1), ("dual_encoder", 0.3)):
        rec = record(name, "ml-100k", recall, dim=64)
        rec["per_example"] = {"test": {"recall@10": [recall > 0.2] * 3 + [0.0] * 7}}
        write_json_atomically(record_path("s", name, tmp_path), rec)
    frame = results.load(tmp_path, suite="s", per_example=True)
    assert sorted(frame["method"]) == ["dual_encoder", "popularity"]
    row = frame.set_index("method").loc["dual_encoder"]
    assert row["test/recall@10"] == 0.3 and row["param.dim"] == 64 and row["primary_metric"] == "recall@10"
    assert row["test/recall@10/values"].tolist() == [1.0] * 3 + [0.0] * 7
    assert "test/recall@10/values" not in results.load(tmp_path)
    with pytest.raises(ConfigError, match="--suite other: no results"):
        results.load(tmp_path, suite="other")


def frontier_record(label: str, method: str, budget: float | None, spent: float | None, recall: float) -> dict:
    rec = seq_record(method, 50, recall)
    rec["trial_id"], rec["spec"]["label"] = f"{label}-{budget}", label
    rec["spec"]["budget"] = {"steps": 100, **({"flops": budget} if budget else {})}
    rec["accounting"] = {"total_train_flops": spent} if spent else {}
    return rec


def test_the_frontier_draws_each_method_through_its_budgets_at_the_compute_it_spent(tmp_path):
    from bench.report.figures import draw_figure, frontier

    records = [frontier_record("Popularity", "popularity", None, None, 0.01),
               frontier_record("USER-LLM", "userllm", 3e13, 2.9e13, 0.07),  # out of order: lines run by FLOPs
               frontier_record("USER-LLM", "userllm", 5e12, 4.8e12, 0.02),
               frontier_record("TP10", "text_prompt", 5e12, 5.1e12, 0.03),
               frontier_record("TP10", "text_prompt", 3e13, 3.0e13, 0.04)]
    axes = frontier(records_frame(records)).axes[0]
    lines = {c.get_label(): c.lines[0] for c in axes.containers}
    assert lines["USER-LLM"].get_xdata().tolist() == [4.8e12, 2.9e13]
    assert lines["USER-LLM"].get_ydata().tolist() == pytest.approx([0.02, 0.07])
    assert lines["TP10"].get_xdata().tolist() == [5.1e12, 3.0e13]
    assert [line.get_ydata()[0] for line in axes.lines if line.get_linestyle() == "--"] == [0.01]  # trains nothing
    assert axes.get_xscale() == "log"
    genre = frontier_record("USER-LLM", "userllm", 5e12, 5.2e12, 0.5)
    genre["spec"]["task"], genre["trial_id"] = "fav_category", "USER-LLM-genre"
    panels = frontier(records_frame([*records, genre])).axes
    colours = [{c.get_label(): c.lines[0].get_color() for c in ax.containers} for ax in panels]
    assert colours[0]["USER-LLM"] == colours[1]["USER-LLM"]  # a method keeps its colour in every panel
    genre["capped"] = True  # tested on a capped sample: drawn hollow, over the line's own filled marker
    genre_axes = frontier(records_frame([*records, genre])).axes[0]
    hollow = [line for line in genre_axes.lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and genre_axes.containers[0].lines[0].get_marker() == "None"  # no filled one beneath
    path = draw_figure("frontier", records, tmp_path / "frontier.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="the frontier needs trained results"):
        draw_figure("frontier", records[:1], tmp_path / "none.png")
