"""Token batches for causal LMs: prompts left-padded for generation, prompt + answer left-padded for
training with labels on the answer only, and the answer loss with the LM head over the answers alone. ``slots`` reserves that many leading positions per row for
embeddings a method writes in itself (USER-LLM's soft prompt); they hold the pad id as token.

The tokenizer encodes a whole batch in one call; its ragged rows are placed into the padded batch by
one scatter per segment (no Python loop over examples or tokens)."""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bench.models.features import to_device
from bench.models.training import SummedLoss


class _Ragged:
    """A batch of token rows of different lengths, flat."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
        self.tokens = torch.from_numpy(np.fromiter(chain.from_iterable(rows), np.int64, int(self.lengths.sum())))

    def place(self, out: torch.Tensor, offsets: torch.Tensor) -> None:
        """Write row i's tokens into ``out[i]`` from column ``offsets[i]`` on."""
        rows = torch.repeat_interleave(torch.arange(len(self.lengths)), self.lengths)
        starts = torch.cumsum(self.lengths, 0) - self.lengths
        out[rows, offsets[rows] + torch.arange(len(self.tokens)) - starts[rows]] = self.tokens


def _tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], special: bool = True) -> _Ragged:
    return _Ragged(tokenizer(texts, add_special_tokens=special)["input_ids"])


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], device: str = "cpu",
                   slots: int = 0) -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids`` and ``attention_mask`` for generation."""
    prompt = _tokens(tokenizer, prompts)
    total = slots + prompt.lengths
    width = int(total.max())
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    prompt.place(input_ids, width - prompt.lengths)
    mask = (torch.arange(width) >= width - total[:, None]).long()
    return {"input_ids": to_device(input_ids, device), "attention_mask": to_device(mask, device)}


def lm_batch(tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str], device: str = "cpu",
             slots: int = 0) -> dict[str, torch.Tensor]:
    """Prompt + " answer" + eos, left-padded so that every row's answer ends in the last column (the LM
    head then runs over the answers' columns only, see ``answer_loss``); labels only on the answer and its
    eos (masked by length, not by pad id, because pad = eos in many chat models); position ids count each
    row's tokens from 0, as they would without padding."""
    prompt, answer = _tokens(tokenizer, prompts), _tokens(tokenizer, [" " + a for a in answers], special=False)
    total = slots + prompt.lengths + answer.lengths + 1
    width = int(total.max())
    start = width - total
    answer_start = start + slots + prompt.lengths
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    prompt.place(input_ids, start + slots)
    answer.place(input_ids, answer_start)
    input_ids[:, -1] = tokenizer.eos_token_id
    columns = torch.arange(width)
    labels = torch.where(columns >= answer_start[:, None], input_ids, -100)
    return {"input_ids": to_device(input_ids, device),
            "attention_mask": to_device((columns >= start[:, None]).long(), device),
            "position_ids": to_device((columns - start[:, None]).clamp(min=0), device),
            "labels": to_device(labels, device)}


def answer_loss(lm: torch.nn.Module, batch: dict[str, torch.Tensor]) -> SummedLoss:
    """Cross-entropy of ``lm`` on the labelled tokens of ``batch`` (``lm_batch``, plus whatever else the
    model's forward takes), summed, with their count. The LM head runs only over the last columns, those
    that predict an answer token (HF's ``logits_to_keep``), not over every prompt position: at N = 200 a
    TextPrompt row has ~2,500 prompt tokens and the head a 49,152-word vocabulary."""
    labels = batch["labels"]
    labelled = (labels != -100).any(0)
    keep = labels.shape[1] - int(labelled.int().argmax()) + 1  # the column before the first label on
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    logits = lm(**inputs, logits_to_keep=keep, use_cache=False).logits[:, :-1]
    targets = labels[:, labels.shape[1] - keep + 1:]
    total = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                              reduction="sum")
    return SummedLoss(total, int((targets != -100).sum()))
