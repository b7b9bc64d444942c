"""Labels, metrics and the shared ranking protocol against hand-computed values."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from bench.data import build_split
from bench.errors import ConfigError
from bench.evaluation import Predictions, evaluate, ranking
from bench.intervals import bootstrap_ci
from bench.metrics import get_metric, mrr_at_k, ndcg_at_k, recall_at_k, rouge_lsum
from bench.tasks import TASKS, Protocol, get_task

from conftest import make_dataset


def _one_user(items: list[str], catalog: dict[str, list[str]], n: int | None = None):
    data = make_dataset([("u", item, t) for t, item in enumerate(items)], catalog)
    return data, build_split(data, n or len(items) - 1).test


def test_fav_category_most_frequent():
    data, test = _one_user(["a", "b", "c", "z"], {"a": ["x"], "b": ["y", "x"], "c": ["y"], "z": ["w"]})
    # x: 2 (last at 1), y: 2 (last at 2) -> tie broken by recency: y
    label = get_task("fav_category").labels(data, test)
    assert data.categories[label[0]] == "y"


def test_fav_category_count_beats_recency():
    data, test = _one_user(["a", "a", "b", "z"], {"a": ["x"], "b": ["y"], "z": ["w"]})
    assert data.categories[get_task("fav_category").labels(data, test)[0]] == "x"


def test_fav_category_same_event_tie_goes_to_lower_id():
    data, test = _one_user(["b", "z"], {"b": ["y", "x"], "z": ["w"]})
    assert data.categories[get_task("fav_category").labels(data, test)[0]] == "x"


@pytest.mark.parametrize("scope", ["history", "window"])
@pytest.mark.parametrize("part", ["train", "test"])
def test_fav_category_matches_reference_on_real_data(ml100k, scope, part):
    """The paper's label counts the user's whole history before the label; the window label, N events."""
    task = get_task("fav_category")
    examples = build_split(ml100k, 30)[part]
    labels = task.labels(ml100k, examples, task.protocol(favorite=scope))
    ptr, ids = ml100k.item_categories
    rng = np.random.default_rng(1)
    for row in rng.choice(len(examples), 200, replace=False):
        first = ml100k.user_ptr[examples.users[row]] if scope == "history" else examples.starts[row]
        counts, last = {}, {}
        for step, item in enumerate(ml100k.item[first:examples.label_positions[row]]):
            for cat in ids[ptr[item]:ptr[item + 1]]:
                counts[cat] = counts.get(cat, 0) + 1
                last[cat] = step
        expected = max(sorted(counts), key=lambda c: (counts[c], last[c]))
        assert labels[row] == expected


def test_the_default_favourite_is_the_papers_history_label(ml100k):
    task = get_task("fav_category")
    test = build_split(ml100k, 20).test
    history, window = task.labels(ml100k, test), task.labels(ml100k, test, task.protocol(favorite="window"))
    assert np.array_equal(history, task.labels(ml100k, test, task.protocol()))
    assert 0.5 < (history == window).mean() < 1.0  # related, not the same label


@pytest.mark.parametrize(("items", "catalog", "expected"), [
    (["a", "b", "c", "z"], {"a": ["x"], "b": ["y", "x"], "c": ["y"], "z": ["w"]}, "y"),  # tie: recency
    (["a", "a", "b", "z"], {"a": ["x"], "b": ["y"], "z": ["w"]}, "x"),  # count beats recency
    (["b", "z"], {"b": ["y", "x"], "z": ["w"]}, "x"),  # same event: the lower id
    (["a", "b", "z"], {"a": ["x", "x"], "b": ["y"], "z": ["w"]}, "x"),  # listed twice: counts twice
])
def test_both_favourite_labellers_follow_the_rule(items, catalog, expected):
    from bench.data.favorites import favorite_categories, sliding_favorite_categories

    data, test = _one_user(items, catalog)
    n = test.seq_len
    assert data.categories[favorite_categories(data, test.positions())[0]] == expected
    assert data.categories[sliding_favorite_categories(data, test.starts, n)[0]] == expected


@pytest.mark.parametrize("seq_len", [1, 5, 50])
def test_sliding_favourites_equal_the_sort_based_ones_on_every_ml100k_window(ml100k, seq_len):
    from bench.data import favorites

    split = build_split(ml100k, seq_len)
    shuffled = np.random.default_rng(0).permutation(len(split.train))
    for examples in (split.train, split.valid, split.test, split.train.subset(shuffled)):
        sliding = favorites.sliding_favorite_categories(ml100k, examples.starts, seq_len)
        sort_based = np.concatenate([favorites.favorite_categories(ml100k, examples.positions(slice(lo, lo + 4096)))
                                     for lo in range(0, len(examples), 4096)])
        assert np.array_equal(sliding, sort_based), examples.split


def test_review_gen_needs_reviews(ml100k):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="review_gen needs review text; dataset ml-100k"):
        get_task("review_gen").check(ml100k)


def test_recall_at_k_hand_computed():
    top = np.array([[3, 1, 2], [0, 4, 5], [7, 8, 9]])
    hits = recall_at_k(top, np.array([1, 5, 6]), ks=(1, 2, 3))
    assert hits["recall@1"].tolist() == [0, 0, 0]
    assert hits["recall@2"].tolist() == [1, 0, 0]
    assert hits["recall@3"].tolist() == [1, 1, 0]


def test_ndcg_and_mrr_hand_computed():
    top = np.array([[3, 1, 2, 0], [0, 2, 1, 3], [2, 3, 0, 1], [1, 2, 3, 0]])  # labels at ranks 1, 0, 3, absent
    labels = np.array([1, 0, 1, 7])
    ndcg, mrr = ndcg_at_k(top, labels, (1, 2, 4)), mrr_at_k(top, labels, (1, 2, 4))
    np.testing.assert_allclose(ndcg["ndcg@1"], [0, 1, 0, 0])
    np.testing.assert_allclose(ndcg["ndcg@2"], [1 / np.log2(3), 1, 0, 0])
    np.testing.assert_allclose(ndcg["ndcg@4"], [1 / np.log2(3), 1, 1 / np.log2(5), 0])
    np.testing.assert_allclose(mrr["mrr@2"], [0.5, 1, 0, 0])
    np.testing.assert_allclose(mrr["mrr@4"], [0.5, 1, 0.25, 0])


def test_next_item_reports_recall_ndcg_and_mrr_from_one_ranking_with_cis(ml100k):
    task = get_task("next_item")
    test = build_split(ml100k, 20).test.subset(slice(0, 200))
    scores = np.random.default_rng(0).random((len(test), ml100k.n_items))
    summary, per_example = evaluate(task.under(task.protocol()), ml100k, test, Predictions(scores=scores))
    assert list(per_example) == task.metric_names(task.protocol())
    for k in (1, 5, 10):  # ndcg and mrr lie between recall/k-ish bounds and are 0 exactly where recall is
        hit = per_example[f"recall@{k}"] > 0
        assert ((per_example[f"ndcg@{k}"] > 0) == hit).all() and ((per_example[f"mrr@{k}"] > 0) == hit).all()
        assert (per_example[f"mrr@{k}"] <= per_example[f"ndcg@{k}"] + 1e-12).all()
        stats = summary[f"ndcg@{k}"]
        assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"] and stats["n"] == len(test)


def test_rouge_lsum_hand_computed():
    # LCS("the cat sat", "the cat sat on the mat") = 3: P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3
    assert rouge_lsum(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx([200 / 3])
    assert rouge_lsum(["dogs run"], ["the cat sat"]) == pytest.approx([0.0])


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = np.r_[np.ones(30), np.zeros(70)]
    low, high = bootstrap_ci(values, seed=3)
    assert low < 0.3 < high and (low, high) == bootstrap_ci(values, seed=3)
    assert 0.18 < low < 0.26 and 0.34 < high < 0.42  # normal approx: 0.3 +- 1.96 * 0.046


def test_history_exclusion_is_identical_for_scores_and_ranked_lists():
    data, test = _one_user(["a", "b", "c", "d"], {k: ["x"] for k in "abcde"})
    protocol = get_task("next_item").protocol()
    assert data.n_items == 4  # e is never interacted with
    scores = np.array([[5.0, 4.0, 3.0, 2.0]])  # a, b, c history; d label
    by_scores = ranking(data, test, Predictions(scores=scores), protocol, 3, 4)
    by_list = ranking(data, test, Predictions(ranked=np.array([[0, 1, 2, 3]])), protocol, 3, 4)
    assert by_scores.tolist() == by_list.tolist() == [[3, -1, -1]]
    metrics, _ = evaluate(get_task("next_item").under(protocol), data, test, Predictions(scores=scores))
    assert metrics["recall@1"]["mean"] == 1.0
    kept = ranking(data, test, Predictions(scores=scores), get_task("next_item").protocol(exclude_history="none"), 3, 4)
    assert kept.tolist() == [[0, 1, 2]]


def test_history_exclusion_drops_everything_before_the_label_window_only_the_window():
    """a b c d e f: with N=2 the test window is (d, e) and its label f; a, b, c came before the window."""
    data, test = _one_user(["a", "b", "c", "d", "e", "f"], {k: ["x"] for k in "abcdef"}, n=2)
    task, scores = get_task("next_item"), np.array([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    for scope, expected in (("history", [5, -1, -1]), ("window", [0, 1, 2]), ("none", [0, 1, 2])):
        protocol = task.protocol(exclude_history=scope)
        by_scores = ranking(data, test, Predictions(scores=scores), protocol, 3, 6)
        by_list = ranking(data, test, Predictions(ranked=np.array([[0, 1, 2, 3, 4, 5]])), protocol, 3, 6)
        assert by_scores.tolist() == by_list.tolist() == [expected], scope
    assert task.protocol(exclude_history=True).exclude_history == "history"  # records before 2026-12
    assert task.protocol(exclude_history=False).exclude_history == "none"


@pytest.mark.parametrize(("predictions", "message"), [
    (Predictions(scores=np.full((1, 4), np.nan)), r"method m on test examples 0-0: scores hold NaN in 1 of 1 rows"),
    (Predictions(scores=np.zeros((1, 5))), r"scores has shape \(1, 5\); expected \(1, 4\)"),
    (Predictions(ranked=np.array([[0, 4, 1]])), r"ranked holds ids outside \[0, 4\) \(and -1 for none\): \[4\]"),
    (Predictions(ranked=np.array([[0, -2, 1]])), r"ranked holds ids outside"),
    (Predictions(texts=["a title"]), r"needs ranked ids or scores, got texts"),
])
def test_predictions_the_harness_cannot_score_are_errors_naming_the_method(predictions, message):
    from bench.evaluation import PredictionError, predict_and_score

    data, test = _one_user(["a", "b", "c", "d"], {k: ["x"] for k in "abcd"})
    task = get_task("next_item")
    with pytest.raises(PredictionError, match=message):
        predict_and_score(lambda examples: predictions, "m", task.under(task.protocol()), data, test)


def test_review_gen_cannot_score_an_empty_reference_and_the_harness_drops_it():
    from bench.data.dataset import Dataset
    from bench.trial import scorable

    data = make_dataset([("u", k, t) for t, k in enumerate("abcd")] + [("v", k, t) for t, k in enumerate("abcd")],
                        {k: ["x"] for k in "abcd"})
    reviews = ["", "", "", "   "] + ["", "ok", "nice", "great"]
    data = Dataset("reviews", data.events.assign(review=reviews), data.items, data.notes)
    task = get_task("review_gen")
    split, dropped = scorable(task.under(task.protocol()), data, build_split(data, 1))
    assert dropped == {name: {"empty_reference": 1} for name in ("train", "valid", "test")}  # u's are empty or blank
    assert [task.labels(data, split[name]).tolist() for name in ("train", "valid", "test")] == \
        [["ok"], ["nice"], ["great"]]


def test_window_count_is_the_window_labels_ceiling_and_below_it_on_the_papers_label(ml100k):
    from baselines.window_count import WindowCount
    from bench.context import Budget, TrialContext

    task, split = get_task("fav_category"), build_split(ml100k, 20)
    scores = {}
    for scope in ("window", "history"):
        protocol = task.protocol(favorite=scope)
        ctx = TrialContext(dataset=ml100k, task=task, protocol=protocol, train=split.train, budget=Budget(), seed=0)
        method = WindowCount(None)
        method.fit(ctx)
        metrics, _ = evaluate(task.under(protocol), ml100k, split.test, method.predict(ctx, split.test))
        scores[scope] = metrics["recall@1"]["mean"]
    assert scores["window"] == 1.0 and 0.3 < scores["history"] < 1.0, scores


def test_the_metric_registry_names_each_protocols_values_and_refuses_unknown_metrics():
    assert get_metric("recall").names((1, 5)) == ["recall@1", "recall@5"] and get_metric("recall").higher_is_better
    next_item = get_task("next_item")
    assert next_item.metric_names(next_item.protocol(ks=(1, 10))) == ["recall@1", "recall@10", "ndcg@1", "ndcg@10",
                                                                     "mrr@1", "mrr@10"]
    assert get_task("fav_category").metric_names(get_task("fav_category").protocol(ks=(1,))) == ["recall@1"]
    assert get_task("review_gen").metric_names(get_task("review_gen").protocol()) == ["rouge_lsum"]
    with pytest.raises(ConfigError, match="unknown metric .bleu.; expected one of recall, ndcg, mrr, rouge_lsum"):
        Protocol("bleu")


def test_each_task_names_its_candidates_question_and_answers():
    data, test = _one_user(["a", "b", "c"], {"a": ["x"], "b": ["y"], "c": ["x", "y"]})
    next_item, favourite, review = (get_task(name) for name in ("next_item", "fav_category", "review_gen"))
    assert (next_item.feature, favourite.feature, review.feature) == ("item", "category", None)
    assert next_item.candidate_names(data) == ["Title a", "Title b", "Title c"]
    assert favourite.candidate_names(data) == ["x", "y"] and review.candidate_names(data) == []
    assert next_item.answer_texts(data, np.array([2, 0])) == ["Title c", "Title a"]
    assert favourite.answer_texts(data, np.array([1])) == ["y"]
    assert [t.generates_text for t in (next_item, favourite, review)] == [False, False, True]
    item_text = np.array(["A", "B", "C"], dtype=object)
    assert review.questions(data, test.label_positions, item_text).tolist() == [
        "Write the user's review of C, which they rated 3.\nReview:"]
    assert next_item.questions(data, test.label_positions, item_text).tolist() == [next_item.question]


def test_the_leakage_probe_corrupts_what_each_task_labels():
    events = [("u", item, t) for t, item in enumerate("abcdab")] + [("v", item, t) for t, item in enumerate("cdab")]
    data = make_dataset(events, {k: ["x"] for k in "abcd"})
    labels = np.flatnonzero(data.events["item"].to_numpy() >= 0)[[3, 8]]
    items = get_task("next_item").corrupted_events(data, labels, seed=0)
    changed = np.flatnonzero(items["item"].to_numpy() != data.events["item"].to_numpy())
    assert changed.tolist() == labels.tolist()  # every label event gets another item, nothing else changes
    data.events["review"] = "kept"
    reviews = get_task("review_gen").corrupted_events(data, labels, seed=0)
    assert (reviews["review"].to_numpy()[labels] == "zzz leakage probe").all()
    assert (np.delete(reviews["review"].to_numpy(), labels) == "kept").all()


def test_no_method_or_model_module_branches_on_a_task_name():
    """What a task means lives in bench/tasks.py: no comparison with, or table keyed by, a task's name
    in the methods, the model code or the leakage check (a method's ``tasks = (...)`` declaration is not
    a branch)."""
    root = Path(__file__).resolve().parents[1]
    paths = [*root.glob("baselines/*.py"), *root.glob("userllm/*.py"), *root.glob("bench/models/*.py"),
             root / "bench" / "leakage.py"]
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Compare):
                names = [node.left, *node.comparators]
            elif isinstance(node, ast.Dict):
                names = [key for key in node.keys if key is not None]
            found += [f"{path.name}:{n.lineno}" for n in names if isinstance(n, ast.Constant) and n.value in TASKS]
    assert not found
