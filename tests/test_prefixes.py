"""Training on every prefix (``protocol.windows: prefixes``): a padded prefix is computed as the prefix
alone, no method reads past its window, and a method or task that cannot take prefixes is refused
before any trial starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from bench.leakage import check_leakage
from bench.models.event_encoders import AutoregressiveEncoder, DualEncoder, EncoderParams
from bench.models.features import EventBatch, FeatureSpace
from bench.suite import load_suite

from conftest import fresh_cache
from helpers import leakage_spec, write_suite

CONFIG = EncoderParams(layers=1, dim=16, heads=2, dropout=0.0).encoder_config()


def padded(items: list[int], width: int) -> EventBatch:
    """``items`` right-padded with its last item to ``width`` slots, its last real slot marked."""
    row = items + [items[-1]] * (width - len(items))
    return EventBatch(torch.tensor([row]), torch.full((1, width), 8), torch.tensor([len(items) - 1]))


def test_a_padded_prefix_gets_the_user_vector_and_the_loss_of_the_prefix_alone(ml100k):
    torch.manual_seed(0)
    space = FeatureSpace.of(ml100k)
    dual = DualEncoder(space, CONFIG).eval()
    prefix = [5, 17, 3]
    alone = EventBatch(torch.tensor([prefix]), torch.full((1, 3), 8))
    assert torch.allclose(dual.user_vector(padded(prefix, 6)), dual.user_vector(alone), atol=1e-6)
    ar = AutoregressiveEncoder(space, CONFIG).eval()
    sequence = prefix + [40]  # the prefix and its label
    assert torch.allclose(ar.loss(padded(sequence, 7)), ar.loss(EventBatch(torch.tensor([sequence]),
                                                                           torch.full((1, 4), 8))), atol=1e-6)


PREFIX_METHODS = [
    ("popularity", {}),
    ("cooccurrence", {}),
    ("dual_encoder", {"layers": 1, "dim": 16, "heads": 2}),
    ("dual_encoder", {"layers": 1, "dim": 16, "heads": 2, "positions": "all"}),
    ("ar_encoder", {"layers": 1, "dim": 16, "heads": 2}),
    ("recbole", {"model": "SASRec", "layers": 1, "dim": 16, "heads": 1}),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return fresh_cache(tmp_path_factory.mktemp("prefix-cache"))


@pytest.mark.parametrize(("method", "params"), PREFIX_METHODS, ids=[f"{m}-{len(p)}" for m, p in PREFIX_METHODS])
def test_methods_trained_on_prefixes_reach_no_label(method, params, tmp_path, cache):
    spec = leakage_spec(method, "next_item", params)
    spec["protocol"]["windows"] = "prefixes"
    result = check_leakage(spec, tmp_path, cache)
    assert result.error is None and result.examples == 12 and not result.leaks, result


def test_cooccurrence_counts_a_short_prefix_without_reading_the_user_before_it():
    from baselines.cooccurrence import Cooccurrence
    from bench.context import Budget, TrialContext
    from bench.data import build_split
    from bench.tasks import get_task

    from conftest import make_dataset

    # user a ends with x; user b starts y -> z: b's first label z after a one-event prefix (y) must not
    # count a's x as its second-to-last event
    data = make_dataset([("a", "w", 0), ("a", "x", 1), ("a", "w", 2), ("a", "x", 3), ("a", "w", 4),
                         ("b", "y", 0), ("b", "z", 1), ("b", "y", 2), ("b", "z", 3), ("b", "y", 4)],
                        {k: ["c"] for k in "wxyz"})
    task = get_task("next_item")
    split = build_split(data, 3, windows="prefixes")
    ctx = TrialContext(dataset=data, task=task, protocol=task.protocol(), train=split.train,
                       budget=Budget(steps=1), seed=0, show_progress=False)
    method = Cooccurrence(Cooccurrence.Params(span=3))
    method.fit(ctx)
    x, z = (int(np.flatnonzero(data.items["key"].to_numpy() == k)[0]) for k in "xz")
    assert method.counts[x, z] == 0  # x (user a) is never counted before z (user b)


@pytest.mark.parametrize(("entry", "tasks", "message"), [
    ({"method": "bert4rec", "params": {"layers": 1}}, ["next_item"],
     r"methods\[0\]\.protocol\.windows: bert4rec trains on windows of exactly N events only"),
    ({"method": "popularity"}, ["fav_category"], r"prefixes are for next_item; task fav_category"),
    ({"method": "text_prompt"}, ["next_item"], r"text_prompt trains on windows of exactly N events only"),
])
def test_prefixes_are_refused_where_a_method_or_task_cannot_take_them(tmp_path, entry, tasks, message):
    raw = {"name": "p", "datasets": ["ml-100k"], "tasks": tasks, "seq_lens": [10], "budget": {"steps": 1},
           "methods": [{**entry, "protocol": {"windows": "prefixes"}}]}
    with pytest.raises(ConfigError, match=message):
        load_suite(write_suite(tmp_path, raw))
