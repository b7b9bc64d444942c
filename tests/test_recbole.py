"""RecBole sequential models (SASRec, GRU4Rec, BERT4Rec, SASRecF) through one adapter: RecBole's models and
losses trained by the harness's loop on exactly the harness's training windows, in the same budget
currency as every other method; the harness's recall@10 equals RecBole's own evaluator on the same test
rows; BERT4Rec reads all N input events."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.data.dataset import Dataset
from bench.errors import ConfigError
from bench.evaluation import evaluate
from bench.registry import build_params, declared_inputs, load_methods
from bench.tasks import get_task
from bench.validation import Validation

from conftest import split_of

SMALL = {"layers": 1, "dim": 16, "heads": 1}
MODELS = [("bert4rec", {}), ("recbole", {"model": "SASRec"}), ("recbole", {"model": "GRU4Rec"})]


@pytest.fixture(scope="module")
def users150(ml100k) -> Dataset:
    keep = ml100k.events["user"] < 150  # every ml-100k user has >= 20 events: N=19 gives all a test row
    return Dataset("ml-100k-150-users", ml100k.events[keep].reset_index(drop=True), ml100k.items, ml100k.notes)


def fit(dataset: Dataset, workdir, method: str, params: dict, seq_len: int = 19, budget: Budget | None = None):
    task = get_task("next_item")
    protocol = task.protocol(exclude_history=False)
    split = build_split(dataset, seq_len)
    budget = budget or Budget(steps=200, batch_size=128, lr=5e-3, eval_every=50, eval_batch_size=256)
    ctx = TrialContext(dataset=dataset, task=task, protocol=protocol, train=split.train, budget=budget, seed=0,
                       workdir=workdir, show_progress=False,
                       validation=Validation.of(method, task.under(protocol), dataset, split.valid))
    cls = load_methods()[method]
    model = cls(build_params(cls, {**SMALL, **params}, "params"))
    model.fit(ctx)
    return model, ctx


@pytest.fixture(scope="module", params=MODELS, ids=["BERT4Rec", "SASRec", "GRU4Rec"])
def trained(request, users150, tmp_path_factory):
    method, params = request.param
    return fit(users150, tmp_path_factory.mktemp(method), method, params)


def recbole_test_recall(method, ctx) -> float:
    """RecBole's own full-sort evaluator on its test rows (the harness's test windows)."""
    from recbole.data import create_dataset
    from recbole.data.utils import create_samplers, get_dataloader
    from recbole.trainer import Trainer

    with contextlib.chdir(ctx.workdir):
        dataset = create_dataset(method.config)
        built = dataset.build()
        samplers = create_samplers(method.config, dataset, built)
        test_data = get_dataloader(method.config, "test")(method.config, built[2], samplers[2], shuffle=False)
        theirs = Trainer(method.config, method.model).evaluate(test_data, load_best_model=False, show_progress=False)
    return float(theirs["recall@10"])


@pytest.mark.parametrize("index", [1, 2], ids=["SASRec", "GRU4Rec"])
def test_harness_recall_equals_recboles_own_evaluator(users150, tmp_path, index):
    method, ctx = fit(users150, tmp_path, *MODELS[index])
    assert len(split_of(ctx).test) == 150
    ours, _ = evaluate(ctx.scoring, ctx.dataset, split_of(ctx).test, method.predict(ctx, split_of(ctx).test))
    assert round(ours["recall@10"]["mean"], 4) == round(recbole_test_recall(method, ctx), 4)


def test_it_learns_from_the_harness_windows(trained):
    method, ctx = trained
    ours, _ = evaluate(ctx.scoring, ctx.dataset, split_of(ctx).test, method.predict(ctx, split_of(ctx).test))
    # a random ranking expects 10/1682 = 0.006 (1 of 150 users); popularity gets 0.033 here. A broken id
    # mapping or a model that ignores its input scores at random
    assert ours["recall@10"]["mean"] >= 0.02
    batch = method.training_batch(ctx, np.arange(4), torch.from_numpy(ctx.labels(ctx.train)), ctx.torch_generator())
    back = {int(internal): ours for ours, internal in enumerate(method.internal_ids.tolist())}
    window = ctx.dataset.item[ctx.train.positions(np.arange(4))]
    sequence = batch["item_id_list"].apply_(lambda i: back.get(i, -1)).numpy()
    if method.masked:  # the window, then its label, as one sequence (masked by RecBole's transform)
        assert sequence.shape == (4, ctx.seq_len + 1) and (sequence[:, -1] == ctx.labels(ctx.train)[:4]).all()
    else:
        assert (sequence == window).all()
        assert [back[int(i)] for i in batch["item_id"]] == ctx.labels(ctx.train)[:4].tolist()


def test_recbole_trains_in_the_same_currency_as_the_dual_encoder(users150, tmp_path):
    """steps 30 of 64 with a check every 10: 1,920 examples, checks at steps 10, 20 and 30, for both."""
    budget = Budget(steps=30, batch_size=64, eval_every=10, eval_batch_size=256)
    runs = {}
    for method, params in (("recbole", {"model": "SASRec"}), ("dual_encoder", {"layers": 1, "dim": 16, "heads": 1})):
        model, ctx = fit(users150, tmp_path / method, method, params, budget=budget)
        facts = model.accounting(ctx)
        runs[method] = (facts["train_examples"], facts["train_steps"], facts["train_flops_measured"] > 0,
                        [(p["step"], p["examples_seen"]) for p in ctx.validation.points])
    assert runs["recbole"] == runs["dual_encoder"] == (1920, 30, True, [(10, 640), (20, 1280), (30, 1920)])


def test_bert4rec_reads_all_n_input_events(trained, users150):
    method, ctx = trained
    if not method.masked:
        pytest.skip("BERT4Rec only")
    examples = split_of(ctx).test.subset(slice(0, 8))
    batch = method.prediction_batch(ctx, examples, np.arange(8))
    sequence = method.model.reconstruct_test_data(batch["item_id_list"], batch["item_length"])
    window = method.internal_ids[torch.from_numpy(ctx.dataset.item[examples.positions()].astype(np.int64))]
    assert sequence.shape == (8, ctx.seq_len + 1)
    assert torch.equal(sequence[:, :-1], window) and (sequence[:, -1] == method.model.mask_token).all()
    # and the first event moves its scores (RecBole's own reconstruction dropped it)
    before = method.predict(ctx, examples).scores
    changed = ctx.dataset.item.copy()
    changed[examples.starts] = (changed[examples.starts] + 1) % ctx.dataset.n_items
    moved = Dataset.__new__(Dataset)
    moved.__dict__.update(ctx.dataset.__dict__)
    moved.__dict__["item"] = changed
    after = method.predict(ctx.__class__(**{**ctx.__dict__, "dataset": moved}), examples).scores
    assert not np.allclose(before, after)


def test_ids_map_back_to_the_whole_catalog(trained):
    method, ctx = trained
    assert len(method.internal_ids) == ctx.dataset.n_items == 1682  # .item file: items nobody here rated too
    assert len(set(method.internal_ids.tolist())) == 1682 and 0 not in method.internal_ids.tolist()  # 0 is [PAD]
    scores = method.predict(ctx, split_of(ctx).test.subset(slice(0, 3))).scores
    assert scores.shape == (3, 1682) and np.isfinite(scores).all()


def test_sasrecf_reads_categories(users150, tmp_path):
    method, ctx = fit(users150, tmp_path, "recbole", {"model": "SASRecF"},
                      budget=Budget(steps=4, batch_size=64, eval_batch_size=256))
    assert declared_inputs(type(method), method.params)["reads"] == ["item ids", "categories"]
    layer = method.model.feature_embed_layer
    assert layer.token_seq_field_names["item"] == ["category"] and layer.token_seq_field_dims["item"] == [20]
    assert method.accounting(ctx)["train_steps"] == 4


def test_recbole_leaves_autograd_anomaly_detection_off(trained):
    """Importing RecBole's models turns it on process-wide (sine.py); it slowed every later backward ~2x."""
    assert not torch.is_anomaly_enabled()


def test_checking_recbole_params_leaves_autograd_anomaly_detection_off():
    """Checking a model name finds its module, which imports RecBole's models package (sine.py turns
    anomaly detection on); a suite loaded in-process then trained every later method with it (a fresh
    process: the package's import runs once)."""
    code = ("import torch; from bench.registry import build_params, load_methods; "
            "build_params(load_methods()['recbole'], {'model': 'SASRec'}, 'params'); print(torch.is_anomaly_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"


def test_bad_recbole_params():
    cls = load_methods()["bert4rec"]
    with pytest.raises(ConfigError, match="mask_ratio must be in"):
        build_params(cls, {"mask_ratio": 1.5}, "methods[0].params")
    with pytest.raises(ConfigError, match="'Transformer4Rec' is not a RecBole sequential recommender"):
        build_params(load_methods()["recbole"], {"model": "Transformer4Rec"}, "methods[0].params")
    with pytest.raises(ConfigError, match="epochs"):  # RecBole trains in steps like every method
        build_params(load_methods()["recbole"], {"epochs": 3}, "methods[0].params")
