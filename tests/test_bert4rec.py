"""Bert4Rec through RecBole: trained on the harness's split, scored by the harness, and the harness's
recall@10 equals RecBole's own evaluator on the same test rows."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.data.dataset import Dataset
from bench.errors import ConfigError
from bench.evaluation import evaluate
from bench.registry import build_params, load_methods
from bench.tasks import get_task


@pytest.fixture(scope="module")
def trained(ml100k, tmp_path_factory):
    keep = ml100k.events["user"] < 150  # every ml-100k user has >= 20 events: N=19 gives all a test row
    subset = Dataset("ml-100k-150-users", ml100k.events[keep].reset_index(drop=True), ml100k.items, ml100k.notes)
    task = get_task("next_item")
    ctx = TrialContext(dataset=subset, task=task, protocol=task.protocol(exclude_history=False),
                       split=build_split(subset, 19), budget=Budget(steps=1, batch_size=256, eval_batch_size=256),
                       seed=0, workdir=tmp_path_factory.mktemp("bert4rec"), show_progress=False)
    cls = load_methods()["bert4rec"]
    method = cls(build_params(cls, {"layers": 1, "dim": 16, "heads": 1, "epochs": 2}, "params"))
    method.fit(ctx)
    return method, ctx


def test_harness_recall_equals_recboles_own_evaluator(trained):
    method, ctx = trained
    assert len(ctx.split.test) == 150
    ours, _ = evaluate(ctx.task, ctx.protocol, ctx.dataset, ctx.split.test, method.predict(ctx, ctx.split.test))
    with contextlib.chdir(ctx.workdir):
        theirs = method.trainer.evaluate(method.test_data, load_best_model=False, show_progress=False)
    assert round(ours["recall@10"]["mean"], 4) == round(float(theirs["recall@10"]), 4)


def test_ids_map_back_to_the_whole_catalog(trained):
    method, ctx = trained
    assert len(method.internal_ids) == ctx.dataset.n_items == 1682  # .item file: items nobody here rated too
    assert len(set(method.internal_ids.tolist())) == 1682 and 0 not in method.internal_ids.tolist()  # 0 is [PAD]
    scores = method.predict(ctx, ctx.split.test.subset(slice(0, 3))).scores
    assert scores.shape == (3, 1682) and np.isfinite(scores).all()
    assert method.accounting(ctx)["train_steps"] > 0


def test_bad_bert4rec_params():
    cls = load_methods()["bert4rec"]
    with pytest.raises(ConfigError, match="mask_ratio must be in"):
        build_params(cls, {"mask_ratio": 1.5}, "methods[0].params")
