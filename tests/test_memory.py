"""Evaluation batch sizes chosen from memory (budget.eval_batch_size null)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench import memory
from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.models.decoding import DECODE_MOST, decode_batch_size, decode_bytes
from bench.models.llm import load_llm
from bench.tasks import get_task

from conftest import split_of
from helpers import LLM_CACHE
from helpers import fitted_text_prompt as fitted
from helpers import text_prompt_ctx as make_ctx


def test_host_memory_free_is_positive_and_at_most_the_machine():
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < memory.free_bytes("cpu") <= total


def test_batch_size_is_a_quarter_of_free_memory_between_one_and_the_cap(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 4_000)
    assert memory.batch_size_for(10, "cpu", most=1_000) == 100
    assert memory.batch_size_for(10, "cpu", most=64) == 64
    assert memory.batch_size_for(10_000, "cpu", most=64) == 1
    with pytest.raises(ValueError, match="example_bytes must be > 0"):
        memory.batch_size_for(0, "cpu", most=64)


def test_an_explicit_eval_batch_size_wins(ml100k):
    task = get_task("next_item")
    ctx = TrialContext(dataset=ml100k, task=task, protocol=task.protocol(), train=build_split(ml100k, 5).train,
                       budget=Budget(eval_batch_size=3), seed=0)
    assert ctx.eval_batch_size(1e12) == 3
    assert ctx.eval_batch_size(1.0, most=7) == 3
    auto = replace(ctx, budget=Budget())
    assert auto.eval_batch_size(1.0, most=7) == 7
    assert [len(b) for b in auto.eval_batches(10, 4)] == [4, 4, 2]


def test_decoding_memory_grows_with_prompt_length_and_beams():
    lm, _ = load_llm("tiny-random", LLM_CACHE, "cpu", "float32")
    cost = [decode_bytes(lm, tokens, 4) for tokens in (100, 200, 300)]
    assert cost[2] - cost[1] > cost[1] - cost[0] > 0  # the prefill's attention weights grow with tokens squared
    assert cost[0] > decode_bytes(lm, 100, 2) > 0


def test_longer_prompts_give_smaller_decode_batches(ml100k, monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 2**30)
    method, ctx = fitted(ml100k, "next_item")
    auto = replace(ctx, budget=replace(ctx.budget, eval_batch_size=None))
    valid = split_of(ctx).valid

    def sized(text: str) -> int:
        prompts = lambda dataset, examples, index: [text] * len(index)  # noqa: E731
        return decode_batch_size(auto, method.model, method.llm.tokenizer, method.llm.trie, prompts, valid, 8, 48)

    short, long = sized("Next?"), sized("Next? " * 2000)
    assert DECODE_MOST >= short > long >= 1


@pytest.mark.parametrize("task", ["next_item", "fav_category"])
def test_answers_do_not_depend_on_the_eval_batch_size(ml100k, task):
    method, ctx = fitted(ml100k, task)
    valid = split_of(ctx).valid.subset(slice(0, 12))
    small = method.predict(ctx, valid).ranked  # eval_batch_size 2
    auto = method.predict(replace(ctx, budget=replace(ctx.budget, eval_batch_size=None)), valid).ranked
    assert np.array_equal(small, auto)
    assert make_ctx(ml100k, task).budget.eval_batch_size == 2


def test_resident_memory_stays_flat_while_training(ml100k):
    """The harness's allocator policy (bench.memory): a DualEnc next-item loop freeing a 21 MB logits
    tensor every step grew ~1 GB every 50 steps under glibc's defaults; now it must stay flat."""
    from baselines.dual_encoder import DualEncoderBaseline

    memory.pin_mmap_threshold()
    marks: dict[int, float] = {}

    def report(metrics: dict) -> None:
        if metrics.get("train_step"):
            marks[metrics["train_step"]] = int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6

    task = get_task("next_item")
    ctx = TrialContext(dataset=ml100k, task=task, protocol=task.protocol(), train=build_split(ml100k, 50).train,
                       budget=Budget(steps=250, batch_size=64), seed=0, show_progress=False, report=report)
    DualEncoderBaseline(DualEncoderBaseline.Params(layers=1, dim=16, heads=2, positions="all")).fit(ctx)
    assert sorted(marks) == [1, 51, 101, 151, 201, 250]
    assert marks[250] - marks[51] < 60, marks  # MB over 200 steps; glibc's defaults: ~4,000
