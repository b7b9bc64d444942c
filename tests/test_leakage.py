"""``bench check-leakage``: every built-in method predicts the same test answers when the test label events
are replaced; a method that reads them is caught."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.leakage import check_leakage
from bench.models.llm import TINY

from conftest import fresh_cache
from helpers import built_in_methods, leakage_spec

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
SMALL_ENCODER = {"encoder.layers": 1, "encoder.dim": 16, "encoder.heads": 2}
BUILT_INS = [
    ("popularity", "next_item", {}),
    ("cooccurrence", "next_item", {}),
    ("dual_encoder", "fav_category", {"layers": 1, "dim": 16, "heads": 2}),
    ("ar_encoder", "next_item", {"layers": 1, "dim": 16, "heads": 2}),
    ("window_count", "fav_category", {}),
    ("latest_label", "fav_category", {}),
    ("recbole", "next_item", {"model": "SASRec", "layers": 1, "dim": 16, "heads": 1}),
    ("recbole", "next_item", {"model": "SASRecF", "layers": 1, "dim": 16, "heads": 1}),
    ("bert4rec", "next_item", {"layers": 1, "dim": 16, "heads": 1}),
    ("text_prompt", "next_item", {"llm": TINY, "prompt_events": 3, "beams": 2}),
    ("userllm", "next_item", {"llm": TINY, "pretrain.steps": 2, "xattn_every": 1, "beams": 2, **SMALL_ENCODER}),
    ("userllm", "fav_category", {"llm": TINY, "fusion": "soft_prompt", "pretrained": False, "beams": 2,
                                 **SMALL_ENCODER}),
]


def test_the_probe_covers_every_built_in_method():
    assert {method for method, _, _ in BUILT_INS} == built_in_methods()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return fresh_cache(tmp_path_factory.mktemp("leakage-cache"))


@pytest.mark.parametrize("split", ["leave_one_out", "temporal"])
@pytest.mark.parametrize(("method", "task", "params"), BUILT_INS, ids=[f"{m}-{t}" for m, t, _ in BUILT_INS])
def test_every_built_in_method_passes(method, task, params, split, tmp_path, cache):
    result = check_leakage(leakage_spec(method, task, params, split=split), tmp_path, cache)
    assert result.examples == 12 and not result.leaks, result


def test_a_method_that_reads_the_test_labels_reads_hidden_events_and_is_reported(tmp_path, cache):
    result = check_leakage(leakage_spec("test_leaky", "next_item", {}, ("bench_test_methods",)), tmp_path, cache)
    assert not result.leaks and "1682 is the item of a hidden event" in result.error, result


def test_a_method_that_reads_the_data_behind_the_harness_is_caught(tmp_path, cache):
    """A method that loads the source data itself sees the replaced labels: the refit probe catches it."""
    result = check_leakage(leakage_spec("test_reads_source", "next_item", {}, ("bench_test_methods",)), tmp_path, cache)
    assert result.leaks and result.changed == 12 and result.first["example"] == 0, result


def test_the_command_names_the_leak_and_exits_1(tmp_path, capsys):
    suite = tmp_path / "leaky.yaml"
    suite.write_text("name: leaky\nplugins: [bench_test_methods]\ndatasets: [ml-100k]\ntasks: [next_item]\n"
                     "seq_lens: [12]\nbudget: {steps: 1}\nmethods:\n  - {method: test_leaky, label: Leaky}\n"
                     "  - {method: popularity}\n")
    assert main(["check-leakage", "Leaky", "--suite", str(suite), "--examples", "8"]) == 1
    out = capsys.readouterr().out
    assert "[error] Leaky ml-100k/next_item/N=12: the method failed: PredictionError" in out
    assert "the method read an event its context hides (a label)" in out
    assert main(["check-leakage", "popularity", "--suite", str(suite), "--examples", "8"]) == 0
    assert "[ok]   popularity ml-100k/next_item/N=12: 8 test predictions unchanged" in capsys.readouterr().out


def test_a_favourite_category_method_that_reads_past_its_window_is_caught(tmp_path, cache, monkeypatch):
    """The second line of defence: were the window-only view to fail, the probe that replaces the events
    before the windows still catches a method counting the whole visible history."""
    import bench.leakage
    import bench.trial

    spec = leakage_spec("test_history_counter", "fav_category", {}, ("bench_test_methods",))
    assert not check_leakage(spec, tmp_path, cache).leaks
    monkeypatch.setattr(bench.trial, "window_only", lambda view, examples: view)
    monkeypatch.setattr(bench.leakage, "window_only", lambda view, examples: view)
    result = check_leakage(spec, tmp_path, cache)
    assert result.leaks and result.changed == 0 and result.past_window > 0, result
