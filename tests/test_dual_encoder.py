"""Dual Encoder baseline and the shared encoders, tiny configs on real ml-100k windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.errors import ConfigError
from bench.evaluation import evaluate
from bench.models.event_encoders import AutoregressiveEncoder, DualEncoder, EncoderConfig, LabelSoftmax
from bench.models.features import FeatureSpace, event_batch
from bench.registry import build_params, load_methods
from bench.tasks import get_task

from conftest import split_of

TINY = {"layers": 1, "dim": 32, "heads": 2, "dropout": 0.0}


def context(dataset, task: str, steps: int = 60, seq_len: int = 20) -> TrialContext:
    task_obj = get_task(task)
    return TrialContext(dataset=dataset, task=task_obj, protocol=task_obj.protocol(), train=build_split(dataset, seq_len).train,
                        budget=Budget(steps=steps, batch_size=64, lr=3e-3, eval_batch_size=256), seed=0,
                        show_progress=False)


def test_dual_encoder_learns_favourite_category(ml100k):
    cls = load_methods()["dual_encoder"]
    method = cls(build_params(cls, dict(TINY), "params"))
    ctx = context(ml100k, "fav_category", steps=250)
    method.fit(ctx)
    metrics, _ = evaluate(ctx.scoring, ml100k, split_of(ctx).test, method.predict(ctx, split_of(ctx).test))
    assert method.run.losses[-1] < method.run.losses[0]
    assert metrics["recall@1"]["mean"] > 0.6  # popularity scores ~0.47 here
    assert method.accounting(ctx)["params_trainable"] > 0


def test_sampled_softmax_trains(ml100k):
    cls = load_methods()["dual_encoder"]
    method = cls(build_params(cls, {**TINY, "softmax": "sampled", "negatives": 128}, "params"))
    ctx = context(ml100k, "next_item", steps=20)
    method.fit(ctx)
    assert np.isfinite(method.run.losses).all()


def brute_force_sampled_loss(user, label_vector, labels, negatives, log_q) -> float:
    """Per example: its own label against every candidate (the batch's labels, then the negatives) that
    is not another copy of its label, each logit corrected by -log q."""
    candidates = labels.tolist() + negatives.tolist()
    losses = []
    for i, label in enumerate(labels.tolist()):
        logits = [float(user[i] @ label_vector(c)) - float(log_q[c])
                  for j, c in enumerate(candidates) if j == i or c != label]
        own = float(user[i] @ label_vector(label)) - float(log_q[label])
        losses.append(math.log(sum(math.exp(x) for x in logits)) - own)
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def label_softmax(ml100k):
    torch.manual_seed(0)
    model = DualEncoder(FeatureSpace.of(ml100k), EncoderConfig(**TINY)).eval()
    split = build_split(ml100k, 10)
    labels = torch.from_numpy(ml100k.item[split.train.label_positions].astype(np.int64))
    return model, split, labels, LabelSoftmax(labels, ml100k.n_items, "sampled")


def test_sampled_softmax_loss_equals_a_brute_force_reference(ml100k, label_softmax):
    model, split, labels, objective = label_softmax
    index = np.array([0, 1, 2, 3, 40, 41])
    batch = event_batch(ml100k, split.train.positions(index))
    target = labels[index].clone()
    target[3] = target[0]  # a label twice in the batch: neither copy is the other's negative
    negatives = torch.cat([target[:2], torch.tensor([7, 7, 900])])  # labels among the negatives too
    with torch.no_grad():
        ours = float(model.loss(batch, target, log_q=objective.log_q, negatives=negatives))
        user = model.user_vector(batch)

        def label_vector(c: int) -> torch.Tensor:
            return model.label_mlp(model.label_embedding.weight[c])

        reference = brute_force_sampled_loss(user, label_vector, target, negatives, objective.log_q)
    assert ours == pytest.approx(reference, rel=1e-5)


def test_logq_corrected_sampled_softmax_estimates_the_full_softmax(ml100k, label_softmax):
    """With K negatives drawn by label frequency q, logsumexp over them of (s - log q) estimates
    log(K * sum over all items of exp(s)); the positive's logit is corrected too, so the sampled loss
    minus log K and minus the labels' mean log q is close to the full loss (uncorrected: far off)."""
    model, split, labels, objective = label_softmax
    index = np.arange(16)
    batch = event_batch(ml100k, split.train.positions(index))
    target = labels[index]
    generator = torch.Generator().manual_seed(0)
    k = 50_000
    negatives = torch.multinomial(objective.frequency, k, replacement=True, generator=generator)
    with torch.no_grad():
        full = float(model.loss(batch, target))
        sampled = (float(model.loss(batch, target, log_q=objective.log_q, negatives=negatives)) - math.log(k)
                   - float(objective.log_q[target].mean()))
        uncorrected = float(model.loss(batch, target, log_q=torch.zeros_like(objective.log_q),
                                       negatives=negatives)) - math.log(k)
    assert abs(sampled - full) < 0.1 < abs(uncorrected - full)


def test_bad_encoder_params_are_one_clear_error():
    cls = load_methods()["dual_encoder"]
    with pytest.raises(ConfigError, match="dim divisible by heads"):
        build_params(cls, {"dim": 30, "heads": 4}, "methods[0].params")
    with pytest.raises(ConfigError, match="softmax: got 'huge'"):
        build_params(cls, {"softmax": "huge"}, "methods[0].params")


def test_autoregressive_encoder_is_causal_and_ties_heads(ml100k):
    space = FeatureSpace.of(ml100k)
    model = AutoregressiveEncoder(space, EncoderConfig(**TINY)).eval()
    positions = build_split(ml100k, 10).train.positions(np.arange(4))
    batch = event_batch(ml100k, positions)
    out = model(batch)
    changed = event_batch(ml100k, positions)
    changed.items[:, -1] = (changed.items[:, -1] + 1) % space.n_items
    assert torch.allclose(model(changed)[:, :-1], out[:, :-1], atol=1e-5)  # the past ignores the future
    logits = model.feature_logits(out)
    assert logits["item"].shape[-1] == space.n_items and logits["category"].shape[-1] == space.n_categories
    assert torch.isfinite(model.loss(batch))
    # tied: the item logits' output matrix is the input item embedding, row for row
    item_sized = [name for name, p in model.named_parameters() if p.shape[0] == space.n_items]
    assert item_sized == ["tower.embed.item.weight"]
    with torch.no_grad():
        model.tower.embed.item.weight[7] += 1.0
        moved = (model.feature_logits(out)["item"] - logits["item"]).abs().amax(dim=(0, 1))
    assert moved.nonzero().flatten().tolist() == [7]


def test_dual_encoder_gives_one_output_per_event_and_scores_from_the_last(ml100k):
    model = DualEncoder(FeatureSpace.of(ml100k), EncoderConfig(**TINY)).eval()
    batch = event_batch(ml100k, build_split(ml100k, 10).test.positions(np.arange(2)))
    outputs = model(batch)
    assert outputs.shape == (2, 10, 32)
    assert torch.allclose(model.user_vector(batch), model.user_head(outputs[:, -1]))
