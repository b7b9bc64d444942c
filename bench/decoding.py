"""LLM answers as catalog ids: beam search constrained to a prefix trie of candidate names (item
titles or category names), so every answer is a real candidate and the top-k are the k best beams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase

DEAD_BEAM = -1e8


class CandidateTrie:
    """Prefix trie over the token ids of ``" " + name + eos`` for every candidate name."""

    def __init__(self, names: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> None:
        if any(not name.strip() for name in names):
            empty = [i for i, name in enumerate(names) if not name.strip()]
            raise ValueError(f"candidate names must be non-empty; ids {empty[:5]} are empty")
        self.eos = tokenizer.eos_token_id
        self.root: dict = {}
        encoded = tokenizer([" " + name for name in names], add_special_tokens=False)["input_ids"]
        for candidate, ids in enumerate(encoded):
            node = self.root
            for token in ids:
                node = node.setdefault(token, {})
            node.setdefault(self.eos, {})["id"] = candidate
        self.lengths = np.array([len(ids) + 1 for ids in encoded])

    def node(self, generated: Sequence[int]) -> dict | None:
        node = self.root
        for token in generated:
            node = node.get(token)
            if node is None:
                return None
        return node

    def allowed(self, generated: Sequence[int], banned: frozenset[int] = frozenset()) -> list[int]:
        """Tokens that keep ``generated`` a prefix of an allowed candidate; [] where none can (a dead beam)."""
        node = self.node(generated)
        if node is None or "id" in node:
            return []
        return [t for t, child in node.items() if t != "id" and not (t == self.eos and child.get("id") in banned)]

    def candidate(self, generated: Sequence[int]) -> int | None:
        node = self.node(generated)
        return None if node is None else node.get("id")


class TrieConstraint(LogitsProcessor):
    """Masks every token that would leave the trie; a beam with no allowed token gets -inf and dies
    (transformers' own prefix_allowed_tokens_fn refuses an empty list)."""

    def __init__(self, trie: CandidateTrie, prompt_len: int, beams: int, bans: list[frozenset[int]]) -> None:
        self.trie, self.prompt_len, self.beams, self.bans = trie, prompt_len, beams, bans

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, generated in enumerate(input_ids[:, self.prompt_len:].tolist()):
            allowed = self.trie.allowed(generated, self.bans[row // self.beams])
            if allowed:
                mask[row, allowed] = 0.0
        return scores + mask


@torch.no_grad()
def constrained_beam_search(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                            trie: CandidateTrie, k: int, beams: int, banned: Sequence[Sequence[int]] | None = None,
                            device: str = "cpu", **generate_kwargs) -> np.ndarray:
    """Top-k candidate ids per prompt [n, k] (-1 where fewer distinct candidates were found).

    Beams are scored by summed log-probability (``length_penalty=0``); beams below -1e8 are dropped,
    duplicates removed; ``beams`` >= k so that k distinct candidates usually survive."""
    beams = max(beams, k)
    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    prompt_len = encoded["input_ids"].shape[1]
    bans = [frozenset(b) for b in banned] if banned is not None else [frozenset()] * len(prompts)

    out = model.generate(**encoded, num_beams=beams, num_return_sequences=beams, do_sample=False,
                         length_penalty=0.0, max_new_tokens=int(trie.lengths.max()), early_stopping=True,
                         logits_processor=LogitsProcessorList([TrieConstraint(trie, prompt_len, beams, bans)]),
                         output_scores=True, return_dict_in_generate=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=trie.eos, **generate_kwargs)
    sequences = out.sequences[:, prompt_len:].view(len(prompts), beams, -1).tolist()
    scores = out.sequences_scores.view(len(prompts), beams).tolist()
    top = np.full((len(prompts), k), -1, dtype=np.int64)
    for row, (row_sequences, row_scores) in enumerate(zip(sequences, scores)):
        found: list[int] = []
        for sequence, score in sorted(zip(row_sequences, row_scores), key=lambda pair: -pair[1]):
            if score < DEAD_BEAM:
                continue
            candidate = trie.candidate(sequence[:sequence.index(trie.eos) + 1] if trie.eos in sequence else sequence)
            if candidate is not None and candidate not in found:
                found.append(candidate)
            if len(found) == k:
                break
        top[row, :len(found)] = found
    return top


@torch.no_grad()
def generate_texts(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                   max_new_tokens: int, device: str = "cpu") -> list[str]:
    """Free greedy generation (review_gen), batched with left padding."""
    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return [text.strip() for text in tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]
