"""Dual Encoder baseline and the shared encoders, tiny configs on real ml-100k windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.encoders import AutoregressiveEncoder, DualEncoder, EncoderConfig
from bench.errors import ConfigError
from bench.evaluation import evaluate
from bench.features import FeatureSpace, event_batch
from bench.registry import build_params, load_methods
from bench.tasks import get_task

TINY = {"layers": 1, "dim": 32, "heads": 2, "dropout": 0.0}


def context(dataset, task: str, steps: int = 60, seq_len: int = 20) -> TrialContext:
    task_obj = get_task(task)
    return TrialContext(dataset=dataset, task=task_obj, protocol=task_obj.protocol(), split=build_split(dataset, seq_len),
                        budget=Budget(steps=steps, batch_size=64, lr=3e-3, eval_batch_size=256), seed=0,
                        show_progress=False)


def test_dual_encoder_learns_favourite_category(ml100k):
    cls = load_methods()["dual_encoder"]
    method = cls(build_params(cls, dict(TINY), "params"))
    ctx = context(ml100k, "fav_category", steps=250)
    method.fit(ctx)
    metrics, _ = evaluate(ctx.task, ctx.protocol, ml100k, ctx.split.test, method.predict(ctx, ctx.split.test))
    assert method.run.losses[-1] < method.run.losses[0]
    assert metrics["recall@1"]["mean"] > 0.6  # popularity scores ~0.47 here
    assert method.accounting(ctx)["params_trainable"] > 0


def test_sampled_softmax_trains(ml100k):
    cls = load_methods()["dual_encoder"]
    method = cls(build_params(cls, {**TINY, "softmax": "sampled", "negatives": 128}, "params"))
    ctx = context(ml100k, "next_item", steps=20)
    method.fit(ctx)
    assert np.isfinite(method.run.losses).all()


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


def test_dual_encoder_gives_one_output_per_event_and_scores_from_the_last(ml100k):
    model = DualEncoder(FeatureSpace.of(ml100k), EncoderConfig(**TINY)).eval()
    batch = event_batch(ml100k, build_split(ml100k, 10).test.positions(np.arange(2)))
    outputs = model(batch)
    assert outputs.shape == (2, 10, 32)
    assert torch.allclose(model.user_vector(batch), model.user_head(outputs[:, -1]))
