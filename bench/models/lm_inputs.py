"""Token batches for causal LMs: prompts left-padded for generation, prompt + answer right-padded for
training with labels on the answer only. ``slots`` reserves that many leading positions per row for
embeddings a method writes in itself (USER-LLM's soft prompt); they hold the pad id as token.

The tokenizer encodes a whole batch in one call; its ragged rows are placed into the padded batch by
one scatter per segment (no Python loop over examples or tokens)."""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bench.models.features import to_device


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
    """Prompt + " answer" + eos, right-padded; labels only on the answer and its eos (masked by length,
    not by pad id, because pad = eos in many chat models)."""
    prompt, answer = _tokens(tokenizer, prompts), _tokens(tokenizer, [" " + a for a in answers], special=False)
    answer_start = slots + prompt.lengths
    total = answer_start + answer.lengths + 1
    width = int(total.max())
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    prompt.place(input_ids, torch.full_like(prompt.lengths, slots))
    answer.place(input_ids, answer_start)
    input_ids[torch.arange(len(prompts)), total - 1] = tokenizer.eos_token_id
    columns = torch.arange(width)
    mask = columns < total[:, None]
    labels = torch.where((columns >= answer_start[:, None]) & mask, input_ids, -100)
    return {"input_ids": to_device(input_ids, device), "attention_mask": to_device(mask.long(), device),
            "labels": to_device(labels, device)}
