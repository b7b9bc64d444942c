"""Suites: grid expansion, stable hashes, and one clear error per kind of bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from bench.errors import ConfigError
from bench.suite import load_suite

sys.path.insert(0, str(Path(__file__).parent / "plugins"))

GOOD = {
    "name": "t", "datasets": ["ml-100k"], "tasks": ["next_item", "fav_category"], "seq_lens": [10, 20],
    "seeds": [0, 1], "budget": {"steps": 5}, "plugins": ["bench_test_methods"],
    "methods": [{"method": "test_constant", "grid": {"seconds": [0, 0.5]}}, {"method": "popularity"}],
}


def write(tmp_path: Path, suite: dict | str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(suite if isinstance(suite, str) else yaml.safe_dump(suite))
    return path


def test_grid_expansion_and_stable_hashes(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert len(suite.trials) == 2 * 2 * 2 * 2 + 2 * 2 * 2  # grid x tasks x lens x seeds + popularity
    again = load_suite(write(tmp_path, GOOD))
    assert [t["trial_id"] for t in suite.trials] == [t["trial_id"] for t in again.trials]
    assert len({t["trial_id"] for t in suite.trials}) == len(suite.trials)


def test_overrides(tmp_path):
    suite = load_suite(write(tmp_path, GOOD), sets=["budget.steps=7", "methods.0.grid.seconds=[0]"], budget_scale=2)
    assert {t["budget"]["steps"] for t in suite.trials} == {14}
    assert len(suite.trials) == 8 + 8


def test_paper_preset_gives_each_trial_the_papers_budget(tmp_path):
    raw = {**GOOD, "budget": {"steps": 5, "max_test_examples": 40},
           "methods": [{"method": "popularity"}, {"method": "userllm", "params": {"llm": "tiny-random", "xattn_every": 1}}]}
    suite = load_suite(write(tmp_path, raw), preset="paper")
    by_task = {t["task"]: t for t in suite.trials if t["method"] == "popularity"}
    budget = by_task["next_item"]["budget"]
    assert (budget["lr"], budget["batch_size"], budget["steps"], budget["max_test_examples"]) == (1e-3, 8192, 10_000, None)
    assert by_task["fav_category"]["budget"]["batch_size"] == 1024
    userllm = next(t for t in suite.trials if t["method"] == "userllm")
    assert (userllm["params"]["pretrain_lr"], userllm["params"]["pretrain_batch_size"]) == (0.1, 32_768)
    with pytest.raises(ConfigError, match="--preset 'huge': expected one of paper"):
        load_suite(write(tmp_path, raw), preset="huge")


def test_only_keeps_the_named_labels_or_methods(tmp_path):
    from bench.suite import select

    suite = load_suite(write(tmp_path, GOOD))
    assert {t["method"] for t in select(suite, ["popularity"]).trials} == {"popularity"}
    assert len(select(suite, []).trials) == len(suite.trials)
    with pytest.raises(ConfigError, match="--only nope: no such label or method in suite t"):
        select(suite, ["nope"])


def test_yaml_number_quirk_is_a_float(tmp_path):
    suite = load_suite(write(tmp_path, {**GOOD, "budget": {"lr": "1e-3"}}))
    assert suite.trials[0]["budget"]["lr"] == 0.001


BAD = [
    ({**GOOD, "colour": 1}, r"colour: unknown key; expected one of"),
    ({**GOOD, "methods": [{"method": "nope"}]}, r"methods\[0\]\.method: unknown method 'nope'"),
    ({**GOOD, "datasets": ["ml-1b"]}, r"datasets\[0\]: unknown dataset 'ml-1b'"),
    ({**GOOD, "tasks": ["next_movie"]}, r"tasks\[0\]: unknown task 'next_movie'"),
    ({**GOOD, "seq_lens": "50"}, r"seq_lens: got '50' \(str\); expected list"),
    ({**GOOD, "seq_lens": [0]}, r"seq_lens\[0\]: got 0; expected an integer >= 1"),
    ({**GOOD, "budget": {"lr": -1}}, r"yaml: budget: lr must be > 0, got -1"),
    ({**GOOD, "budget": {"lr": "fast"}}, r"budget\.lr: got 'fast' \(str\); expected float"),
    ({**GOOD, "methods": [{"method": "popularity", "budget": {"patience": 1.5}}]},
     r"methods\[0\]\.budget\.patience: got 1\.5; expected int \| None"),
    ({**GOOD, "methods": [{"method": "test_constant", "search": {"space": {"seconds": {"uniform": [0, 1]}},
                                                                 "metric": "ndcg@10"}}]},
     r"methods\[0\]\.search\.metric: got 'ndcg@10'; task next_item reports recall@1, recall@5, recall@10"),
    ({**GOOD, "budget": {"epochs": 3}}, r"budget\.epochs: unknown key"),
    ({**GOOD, "datasets": ["ml-20m"]}, r"datasets\[0\]\.path: dataset ml-20m is not embedded"),
    ({**GOOD, "datasets": [{"name": "ml-20m", "path": "/no/such/folder"}]}, r"datasets\[0\]\.path: /no/such/folder does not exist"),
    ({**GOOD, "plugins": ["no_such_plugin_module"]}, r"plugins: cannot import plugin module 'no_such_plugin_module'"),
    ({**GOOD, "methods": [{"method": "test_constant", "params": {"speed": 1}}]}, r"methods\[0\]\.params\.speed: unknown parameter"),
    ({**GOOD, "methods": [{"method": "test_constant", "params": {"seconds": "slow"}}]}, r"methods\[0\]\.params\.seconds: got 'slow'"),
    ({**GOOD, "methods": [{"method": "test_constant", "params": {"seconds": -1}}]}, r"methods\[0\]\.params: seconds must be >= 0"),
    ({**GOOD, "methods": [{"method": "test_constant", "grid": {"seconds": 1}}]}, r"methods\[0\]\.grid\.seconds: got 1; expected a non-empty list"),
    ({**GOOD, "methods": [{"method": "test_constant", "search": {"space": {"seconds": {"normal": [0, 1]}}}}]},
     r"methods\[0\]\.search\.space\.seconds: got \{'normal'"),
    ({**GOOD, "resources": {"gpu": "many"}}, r"resources\.gpu: got 'many'; expected an integer >= 0 or 'auto'"),
    ({**GOOD, "datasets": [{"name": "amazon-2018", "path": "/", "options": {"state": "VT"}}]}, r"unknown option 'state'"),
    ({k: v for k, v in GOOD.items() if k != "methods"}, r"methods: missing"),
]


@pytest.mark.parametrize(("suite", "message"), BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_bad_suites_fail_with_one_clear_message(tmp_path, suite, message):
    path = write(tmp_path, suite)
    with pytest.raises(ConfigError, match=message) as caught:
        load_suite(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "name: t\ndatasets: [ml-100k\ntasks: [next_item]\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:\d+: YAML syntax error"):
        load_suite(path)


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite(tmp_path / "absent.yaml")


def test_shipped_suites_are_valid(markov_plugin):
    for path in sorted((Path(__file__).parents[1] / "suites").glob("*.yaml")):
        suite = load_suite(path)
        assert suite.trials or suite.searches, path
