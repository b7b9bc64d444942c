"""Prompts and token batches for the LLM methods: what the batched builders write, checked against
the obvious one-example-at-a-time construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.data import build_split
from bench.models.llm import load_tokenizer
from bench.models.lm_inputs import encode_prompts, lm_batch
from bench.models.prompts import PromptWriter
from bench.tasks import get_task

from conftest import make_dataset


def one_prompt(dataset, examples, index: int, task: str, events: int) -> str:
    """The prompt of one example, written out event by event (the reference)."""
    label = int(examples.label_positions[index])
    lines = []
    for position in range(label - events, label):
        item = dataset.item[position]
        lines.append(f"{dataset.items['title'].iat[item]} ({', '.join(dataset.items['categories'].iat[item])}) "
                     f"rated {dataset.rating[position]:g}")
    body = "User history, oldest first:\n" + "\n".join(lines) + "\n" if lines else ""
    if task == "next_item":
        return body + "Which item will the user interact with next? Answer with its title.\nAnswer:"
    item = dataset.item[label]
    return (body + f"Write the user's review of {dataset.items['title'].iat[item]} "
            f"({', '.join(dataset.items['categories'].iat[item])}), which they rated {dataset.rating[label]:g}."
            "\nReview:")


@pytest.mark.parametrize("task", ["next_item", "review_gen"])
@pytest.mark.parametrize("events", [0, 1, 7])
def test_batched_prompts_equal_the_example_by_example_ones(ml100k, task, events):
    split = build_split(ml100k, 7)
    index = np.random.default_rng(0).choice(len(split.train), 50, replace=False)
    prompts = PromptWriter(ml100k, get_task(task), events)(ml100k, split.train, index)
    assert prompts == [one_prompt(ml100k, split.train, int(i), task, events) for i in index]


def test_prompts_write_half_ratings_and_the_most_recent_events():
    events = [("u", f"i{k}", k, rating) for k, rating in enumerate([1.0, 2.5, 4.0, 3.5, 5.0])]
    dataset = make_dataset(events, {f"i{k}": ["Drama", "War"] for k in range(5)})
    split = build_split(dataset, 2)
    next_item = get_task("next_item")
    (prompt,) = PromptWriter(dataset, next_item, 2)(dataset, split.test, np.array([0]))
    assert prompt.startswith("User history, oldest first:\nTitle i2 (Drama, War) rated 4\n"
                             "Title i3 (Drama, War) rated 3.5\nWhich item")
    assert next_item.answer_texts(dataset, dataset.item[split.test.label_positions]) == ["Title i4"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random", Path.home() / ".cache" / "userllm-bench")


PROMPTS = ["Q: a\nAnswer:", "Q: a much longer question here\nAnswer:", "Which?"]
ANSWERS = ["x", "y z and more words", "Heat (1995)"]


@pytest.mark.parametrize("slots", [0, 3])
def test_training_batch_is_prompt_then_answer_then_eos_left_padded(tokenizer, slots):
    batch = lm_batch(tokenizer, PROMPTS, ANSWERS, slots=slots)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    width = batch["input_ids"].shape[1]
    for row, (prompt, answer) in enumerate(zip(PROMPTS, ANSWERS)):
        head = [pad] * slots + tokenizer(prompt)["input_ids"]
        tail = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [eos]
        n, padding = len(head) + len(tail), width - len(head) - len(tail)
        assert batch["input_ids"][row, padding:].tolist() == head + tail  # every answer ends in the last column
        assert (batch["input_ids"][row, :padding] == pad).all()
        assert batch["attention_mask"][row].tolist() == [0] * padding + [1] * n
        assert batch["labels"][row].tolist() == [-100] * (padding + len(head)) + tail
        assert batch["position_ids"][row, padding:].tolist() == list(range(n))  # as without padding


@pytest.mark.parametrize("slots", [0, 4])
def test_generation_prompts_are_left_padded_with_slots_before_the_text(tokenizer, slots):
    encoded = encode_prompts(tokenizer, PROMPTS, slots=slots)
    width = encoded["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        ids = [tokenizer.pad_token_id] * slots + tokenizer(prompt)["input_ids"]
        assert encoded["input_ids"][row, width - len(ids):].tolist() == ids
        assert encoded["attention_mask"][row].tolist() == [0] * (width - len(ids)) + [1] * len(ids)
    assert encoded["attention_mask"].sum(1).max() == width  # the longest row has no padding
