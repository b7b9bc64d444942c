"""Isolation by construction: what a method is handed holds no label it is scored on. The views hide
each user's validation and test label events from ``fit`` and the test label events from test
predictions; four methods that try to read labels each fail with a clear error or are flagged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.data import build_split
from bench.data.views import hidden_item, visible_view
from bench.leakage import check_leakage
from bench.trial import execute_trial, prepare_trial

from helpers import leakage_spec

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
PLUGINS = ("bench_leaky_methods",)


def test_the_fit_view_hides_validation_and_test_labels_and_keeps_offsets(ml100k):
    split = build_split(ml100k, 10)
    fit = visible_view(ml100k, split.fit_end)
    test = visible_view(ml100k, split.test_end)
    assert len(fit.item) == len(ml100k.item) and np.array_equal(fit.user_ptr, ml100k.user_ptr)
    for view in (fit, test):
        assert (view.item[split.test.label_positions] == hidden_item(ml100k)).all()
    assert (fit.item[split.valid.label_positions] == hidden_item(ml100k)).all()
    assert np.array_equal(test.item[split.valid.label_positions], ml100k.item[split.valid.label_positions])
    hidden = fit.item == hidden_item(ml100k)
    assert hidden.sum() == 2 * ml100k.n_users  # nothing else hidden
    for examples in (split.train, split.valid):  # every input of fit's and validation's windows is visible
        assert np.array_equal(fit.item[examples.positions()], ml100k.item[examples.positions()])
    assert np.array_equal(test.item[split.test.positions()], ml100k.item[split.test.positions()])
    assert (fit.rating[hidden] == -1).all() and (fit.events["timestamp"].to_numpy()[hidden] == -1).all()


def test_review_gen_keeps_the_label_events_item_and_hides_its_review(review_sources):
    from bench.data import load_dataset

    data = load_dataset("amazon-2018", review_sources, category="Tiny")
    split = build_split(data, 2)
    view = visible_view(data, split.test_end, label_item_visible=True)
    labels = split.test.label_positions
    assert np.array_equal(view.item[labels], data.item[labels]) and (view.events["review"].to_numpy()[labels] == "").all()


def test_the_context_holds_no_split_and_no_labelled_dataset(tmp_path):
    trial = prepare_trial(leakage_spec("popularity", "next_item", {}), tmp_path, tmp_path)
    reachable = vars(trial.ctx) | vars(trial.ctx.validation)
    assert "split" not in reachable and not any(v is trial.labelled or v is trial.test_view for v in reachable.values())
    assert (trial.ctx.dataset.item[trial.split.test.label_positions] == hidden_item(trial.labelled)).all()
    assert (trial.test_ctx.dataset.item[trial.split.test.label_positions] == hidden_item(trial.labelled)).all()
    with pytest.raises(PermissionError, match="training labels only"):
        trial.ctx.labels(trial.split.test)


@pytest.mark.parametrize(("method", "error"), [
    ("leak_split_test", "AttributeError: 'TrialContext' object has no attribute 'split'"),
    ("leak_kept_dataset", "the item of a hidden event: the method read an event its context hides"),
    ("leak_validation_dataset", "AttributeError: 'Validation' object has no attribute 'dataset'"),
    ("leak_markov_all_events", "index 1682 exceeds matrix dimension 1682"),
])
def test_each_leaky_method_fails_with_a_clear_error(method, error, tmp_path):
    record = execute_trial(leakage_spec(method, "next_item", {}, PLUGINS), tmp_path, tmp_path, show_progress=False)
    assert record["status"] == "failed"
    assert error in f"{record['error']['type']}: {record['error']['message']}"
    result = check_leakage(leakage_spec(method, "next_item", {}, PLUGINS), tmp_path, tmp_path)
    assert result.error is not None or result.leaks, result
