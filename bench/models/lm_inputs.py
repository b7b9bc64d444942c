"""Token batches for causal LMs: prompts left-padded for generation, prompt + answer right-padded for
training with labels on the answer only. ``slots`` reserves that many leading positions per row for
embeddings a method writes in itself (USER-LLM's soft prompt); they hold the pad id as token."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from bench.models.features import to_device


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, prompts: list[str], slots: int) -> list[list[int]]:
    ids = tokenizer(prompts)["input_ids"]
    return [[tokenizer.pad_token_id] * slots + row for row in ids]


def _pack(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return input_ids, mask


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], device: str = "cpu",
                   slots: int = 0) -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids`` and ``attention_mask`` for generation."""
    input_ids, mask = _pack(_prompt_ids(tokenizer, prompts, slots), tokenizer.pad_token_id, left=True)
    return {"input_ids": to_device(input_ids, device), "attention_mask": to_device(mask, device)}


def lm_batch(tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str], device: str = "cpu",
             slots: int = 0) -> dict[str, torch.Tensor]:
    """Prompt + " answer" + eos, right-padded; labels only on the answer (masked by length, not by pad
    id, because pad = eos in many chat models)."""
    prompt_ids = _prompt_ids(tokenizer, prompts, slots)
    answer_ids = tokenizer([" " + a for a in answers], add_special_tokens=False)["input_ids"]
    rows = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompt_ids, answer_ids)]
    input_ids, mask = _pack(rows, tokenizer.pad_token_id, left=False)
    labels = torch.full_like(input_ids, -100)
    for i, (row, prompt) in enumerate(zip(rows, prompt_ids)):
        labels[i, len(prompt):len(row)] = torch.tensor(row[len(prompt):])
    return {"input_ids": to_device(input_ids, device), "attention_mask": to_device(mask, device),
            "labels": to_device(labels, device)}
