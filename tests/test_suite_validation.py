"""Suites: grid expansion, stable hashes, and one clear error per kind of bad input."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.cli import main
from bench.errors import ConfigError
from bench.suite import check_histories, load_suite
from bench.tasks import get_task

from helpers import SUITE_GOOD as GOOD
from helpers import write_suite as write

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent / "plugins"))

def test_grid_expansion_and_stable_hashes(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert len(suite.trials) == 2 * 2 * 2 * 2 + 2 * 2 * 2  # grid x tasks x lens x seeds + popularity
    again = load_suite(write(tmp_path, GOOD))
    assert [t.trial_id for t in suite.trials] == [t.trial_id for t in again.trials]
    assert len({t.trial_id for t in suite.trials}) == len(suite.trials)


def test_overrides(tmp_path):
    suite = load_suite(write(tmp_path, GOOD), sets=["budget.steps=7", "methods.0.grid.seconds=[0]"], budget_scale=2)
    assert {t.budget.steps for t in suite.trials} == {14}
    assert len(suite.trials) == 8 + 8


def test_paper_preset_gives_each_trial_the_papers_budget(tmp_path):
    raw = {**GOOD, "budget": {"steps": 5, "max_test_examples": 40},
           "methods": [{"method": "popularity"}, {"method": "userllm", "params": {"llm": "tiny-random", "xattn_every": 1}}]}
    suite = load_suite(write(tmp_path, raw), preset="paper")
    by_task = {t.task: t for t in suite.trials if t.method == "popularity"}
    budget = by_task["next_item"].budget
    assert (budget.lr, budget.batch_size, budget.steps, budget.max_test_examples) == (1e-3, 8192, 10_000, None)
    assert by_task["fav_category"].budget.batch_size == 1024
    userllm = next(t for t in suite.trials if t.method == "userllm")
    assert userllm.params["pretrain"] == {"steps": 10_000, "batch_size": 32_768, "lr": 0.1, "weight_decay": 0.1}
    with pytest.raises(ConfigError, match="--preset 'huge': expected one of paper"):
        load_suite(write(tmp_path, raw), preset="huge")


def test_only_keeps_the_named_labels_or_methods(tmp_path):
    from bench.suite import select

    suite = load_suite(write(tmp_path, GOOD))
    assert {t.method for t in select(suite, ["popularity"]).trials} == {"popularity"}
    assert len(select(suite, []).trials) == len(suite.trials)
    with pytest.raises(ConfigError, match="--only nope: no such label or method in suite t"):
        select(suite, ["nope"])


def test_yaml_number_quirk_is_a_float(tmp_path):
    suite = load_suite(write(tmp_path, {**GOOD, "budget": {"lr": "1e-3"}}))
    assert suite.trials[0].budget.lr == 0.001


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
                                                                 "metric": "auc"}}]},
     r"methods\[0\]\.search\.metric: got 'auc'; task next_item reports recall@1, recall@5, recall@10, ndcg@1"),
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
    ({**GOOD, "resources": {"gpu": "many"}}, r"resources\.gpu: got 'many'; expected 'auto', an integer >= 0 or a fraction"),
    ({**GOOD, "resources": {"gpu": 1.5}}, r"resources\.gpu: got 1\.5; expected 'auto', an integer >= 0 or a fraction"),
    ({**GOOD, "resources": {"cpu": 0.5}}, r"resources\.cpu: got 0\.5 \(float\); expected int"),
    ({**GOOD, "tasks": ["review_gen"], "methods": [{"method": "popularity"}]},
     r"methods: no trial to run: popularity does not do review_gen \(it does next_item, fav_category\)"),
    ({**GOOD, "datasets": [{"name": "amazon-2018", "path": "/", "options": {"state": "VT"}}]}, r"unknown option 'state'"),
    ({k: v for k, v in GOOD.items() if k != "methods"}, r"methods: missing"),
    ({**GOOD, "protocol": {"split": "random"}}, r"protocol\.split: got 'random'; expected one of leave_one_out, temporal"),
    ({**GOOD, "methods": [{"method": "popularity", "protocol": {"split": "future"}}]},
     r"methods\[0\]\.protocol\.split: got 'future'; expected one of leave_one_out, temporal"),
    ({**GOOD, "methods": [{"method": "popularity", "protocol": {"ks": [1]}}]},
     r"methods\[0\]\.protocol\.ks: unknown key; expected one of split"),
]


@pytest.mark.parametrize(("suite", "message"), BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_bad_suites_fail_with_one_clear_message(tmp_path, suite, message):
    path = write(tmp_path, suite)
    with pytest.raises(ConfigError, match=message) as caught:
        load_suite(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_a_method_entry_sets_its_own_split_and_only_its_trials_change(tmp_path):
    one = {**GOOD, "tasks": ["next_item"], "seq_lens": [10], "seeds": [0]}
    raw = {**one, "methods": [{"method": "popularity"}, {"method": "popularity", "label": "Popularity (temporal)",
                                                         "protocol": {"split": "temporal"}}]}
    plain, temporal = load_suite(write(tmp_path, raw)).trials
    assert plain.protocol.split == "leave_one_out" and temporal.protocol.split == "temporal"
    assert plain.trial_id == load_suite(write(tmp_path, {**one, "methods": [{"method": "popularity"}]})).trials[0].trial_id
    assert temporal.to_json()["protocol"]["split"] == "temporal" and "split" not in plain.to_json()["protocol"]


def test_a_fraction_of_a_gpu_is_a_resource(tmp_path):
    assert load_suite(write(tmp_path, {**GOOD, "resources": {"gpu": 0.25}})).resources["gpu"] == 0.25


BAD_FILES = [
    (b"\x89PNG\r\n\x1a\n\x00\xcc\xff", r"not UTF-8 text \(byte 0x89 at offset 0\); expected a YAML suite file"),
    (b"name: t\x07\n", r"not a YAML text file \(character #x0007 at offset 7: special characters are not allowed\)"),
    (b"", r"empty; expected a suite mapping with datasets, tasks and methods"),
    (b"- a\n- b\n", r"expected a YAML mapping at the top level, got list"),
    (b"name: t\nname: u\n", r":2:1: YAML error: found the key 'name' twice"),
    (b"name: !!python/object:os.system {}\n", r":1:7: YAML error: could not determine a constructor for the tag "
                                             r"'tag:yaml.org,2002:python/object:os.system'; only YAML's standard tags"),
    (b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
        f"{x}: &{x} [{', '.join([f'*{prev}'] * 10)}]\n".encode() for prev, x in zip("abcde", "bcdef")),
     r"more than 100,000 values once its aliases are expanded"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES, ids=["binary", "control", "empty", "list", "duplicate",
                                                                  "tag", "alias-bomb"])
def test_bad_suite_files_fail_with_one_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_suite(path)
    assert str(caught.value).startswith(f"{path}") and "\n" not in str(caught.value)


def test_a_folder_is_not_a_suite_file(tmp_path):
    with pytest.raises(ConfigError, match=rf"{tmp_path}: is a folder; expected a suite file"):
        load_suite(tmp_path)


def test_aliases_are_copies_so_a_set_edits_one_place(tmp_path):
    text = yaml.safe_dump({k: v for k, v in GOOD.items() if k != "methods"}) + (
        "methods:\n  - {method: test_constant, label: A, params: &shared {seconds: 0.0}}\n"
        "  - {method: test_constant, label: B, params: *shared}\n")
    suite = load_suite(write(tmp_path, text), sets=["methods.0.params.seconds=2.0"])
    assert {t.label: t.params["seconds"] for t in suite.trials} == {"A": 2.0, "B": 0.0}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sets": ["budget.steps=[1"]}, r"--set 'budget.steps=\[1': the value is not YAML"),
    ({"sets": ["methods.5.params.x=1"]}, r"methods.5.params.x does not name a place"),
    ({"budget_scale": 0.0}, r"--budget 0.0: expected a factor > 0"),
    ({"budget_scale": float("nan")}, r"--budget nan: expected a factor > 0"),
])
def test_bad_overrides_fail_with_one_clear_message(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_suite(write(tmp_path, GOOD), **kwargs)


def test_a_history_length_beyond_every_user_fails_before_any_trial(tmp_path, ml100k):
    suite = load_suite(write(tmp_path, {**GOOD, "seq_lens": [20, 900]}))
    longest = int(np.diff(ml100k.user_ptr).max())
    with pytest.raises(ConfigError, match=rf"seq_lens: N=900 leaves no training example on ml-100k: its longest user "
                                          rf"history has {longest} events .* expected N <= {longest - 3}"):
        check_histories(suite)
    check_histories(load_suite(write(tmp_path, {**GOOD, "seq_lens": [longest - 3]})))


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "name: t\ndatasets: [ml-100k\ntasks: [next_item]\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:\d+: YAML syntax error"):
        load_suite(path)


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite(tmp_path / "absent.yaml")


def test_shipped_suites_are_valid(markov_plugin):
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        suite = load_suite(path)
        assert suite.trials or suite.searches, path


@pytest.mark.parametrize(("args", "message"), [
    (["--address", "127.0.0.1:9"], r"--address 127.0.0.1:9: no Ray cluster answers there \(Connection refused\)"),
    (["--cache", "/proc/no-such-cache"], r"--cache /proc/no-such-cache: cannot write there"),
])
def test_bad_run_options_exit_2_with_one_line_before_ray_starts(tmp_path, capsys, args, message):
    import ray

    path = write(tmp_path, {**GOOD, "methods": [{"method": "popularity"}]})
    assert main(["run", str(path), "--results", str(tmp_path / "results"), *args]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: {message}.*\n", err) and not ray.is_initialized()


def test_a_binary_suite_file_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_bytes(bytes(range(256)))
    assert main(["run", str(path)]) == 2
    assert re.fullmatch(rf"error: {path}: not UTF-8 text \(byte 0x80 at offset 128\); expected a YAML suite file\n",
                        capsys.readouterr().err)


def test_the_example_suite_in_the_docs_is_valid(tmp_path):
    """docs/suites.md shows every key in one suite; it must load as written (its plugin module and its
    Amazon folder are placeholders, so those two lines go)."""
    text = (ROOT / "docs" / "suites.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    kept = [line for line in example.splitlines() if not line.startswith("plugins:") and "amazon-2018" not in line]
    assert len(kept) == len(example.splitlines()) - 2
    path = tmp_path / "example.yaml"
    path.write_text("\n".join(kept))
    suite = load_suite(path)
    dual = [t for t in suite.trials if t.method == "dual_encoder"]
    assert len(dual) == 6 and len(suite.searches) == 6  # 2 grid points x 3 seeds; 2 tasks x 3 seeds
    assert {t.budget.steps for t in dual} == {800}
    userllm = [t for t in suite.trials if t.method == "userllm"]  # 2 encoder kinds x 2 tasks x 3 seeds
    assert len(userllm) == 12 and {t.params["encoder"]["kind"] for t in userllm} == {"ar", "de"}
    assert {(t.params["encoder"]["layers"], t.params["pretrain"]["steps"]) for t in userllm} == {(2, 300)}


def test_two_labels_with_one_configuration_are_refused_naming_both(tmp_path):
    path = write(tmp_path, {**GOOD, "methods": [{"method": "popularity", "label": "Pop A"},
                                                {"method": "popularity", "label": "Pop B"}]})
    with pytest.raises(ConfigError, match="methods labelled 'Pop A' and 'Pop B' have one configuration"):
        load_suite(path)


def test_a_suite_names_its_primary_metric_per_task(tmp_path):
    plain = load_suite(write(tmp_path, GOOD))
    raw = {**GOOD, "protocol": {"primary": {"next_item": "ndcg@10"}}}
    suite = load_suite(write(tmp_path, raw))
    by_task = {(t.task, t.seq_len, t.seed, t.method, str(t.params)): t for t in suite.trials}
    for spec in plain.trials:
        named = by_task[(spec.task, spec.seq_len, spec.seed, spec.method, str(spec.params))]
        task = get_task(spec.task)
        expected = "ndcg@10" if spec.task == "next_item" else "recall@1"
        assert task.primary_metric(named.protocol) == expected and task.primary_metric(spec.protocol) != "ndcg@10"
        # a different selection is a different trial; suites that name none keep their ids (tests/test_spec.py)
        assert (named.trial_id == spec.trial_id) == (spec.task != "next_item")
    for primary, message in [({"next_item": "ndcg@20"}, "protocol.primary.next_item: got 'ndcg@20'; task next_item "
                                                        "reports recall@1, recall@5, recall@10, ndcg@1"),
                             ({"next_items": "ndcg@10"}, "protocol.primary.next_items: unknown task 'next_items'")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_suite(write(tmp_path, {**GOOD, "protocol": {"primary": primary}}))


def test_a_grid_over_budget_fields_makes_one_trial_per_budget(tmp_path):
    suite = {**GOOD, "tasks": ["next_item"], "seq_lens": [10], "seeds": [0],
             "methods": [{"method": "test_constant", "grid": {"budget.flops": [1.0e+12, 4.0e+12]},
                          "budget": {"steps": 7}}]}
    trials = load_suite(write(tmp_path, suite)).trials
    assert sorted(t.budget.flops for t in trials) == [1e12, 4e12] and {t.budget.steps for t in trials} == {7}
    assert len({t.trial_id for t in trials}) == 2 and all("flops" not in t.params for t in trials)
    suite["methods"][0]["grid"] = {"budget.flop": [1.0e+12]}
    with pytest.raises(ConfigError, match=r"methods\[0\].grid.budget.*flop"):
        load_suite(write(tmp_path, suite))


def test_the_paper_preset_makes_a_budget_grid_one_trial():
    suite = load_suite(ROOT / "suites" / "compute_matched.yaml", preset="paper")
    ids = [spec.trial_id for spec in suite.trials]
    assert len(ids) == len(set(ids)) and {spec.budget.flops for spec in suite.trials} == {None}
    assert sum(spec.label == "USER-LLM" for spec in suite.trials) == 2  # one per task, not one per budget
    assert any("USER-LLM: the paper preset sets table 9's budget" in note for note in suite.skipped)
