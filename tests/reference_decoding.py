"""The decoder the harness used before ``bench.models.trie_search``: transformers' ``generate`` beam search (the
prefix computed once per beam) with a per-beam Python trie constraint. Tests check the batched search
returns exactly what this returns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from bench.models.decoding import CandidateTrie, top_candidates


def allowed(trie: CandidateTrie, generated: Sequence[int], banned: frozenset[int] = frozenset()) -> list[int]:
    """Tokens that keep ``generated`` a prefix of a candidate that is not banned ([] for a dead beam)."""
    node = trie.node(generated)
    if node is None or "id" in node:
        return []
    return [token for token, child in node.items() if isinstance(token, int)
            and (len(child["below"]) > len(banned) or not child["below"] <= banned)]


class TrieConstraint(LogitsProcessor):
    def __init__(self, trie: CandidateTrie, prompt_len: int, beams: int, bans: list[frozenset[int]],
                 renormalize: bool) -> None:
        self.trie, self.prompt_len, self.beams, self.bans, self.renormalize = trie, prompt_len, beams, bans, renormalize

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, generated in enumerate(input_ids[:, self.prompt_len:].tolist()):
            tokens = allowed(self.trie, generated, self.bans[row // self.beams])
            if tokens:
                mask[row, tokens] = 0.0
        masked = scores + mask
        if not self.renormalize:
            return masked
        dead = torch.isneginf(masked).all(dim=-1, keepdim=True)
        return torch.where(dead, masked, masked.log_softmax(dim=-1))


@torch.no_grad()
def generate_beam_search(model, tokenizer, encoded, trie: CandidateTrie, k: int, beams: int, banned=None,
                         renormalize: bool = False, **model_kwargs) -> np.ndarray:
    beams = max(beams, k)
    n, prompt_len = encoded["input_ids"].shape
    bans = [frozenset(b) for b in banned] if banned is not None else [frozenset()] * n
    out = model.generate(**encoded, num_beams=beams, num_return_sequences=beams, do_sample=False,
                         length_penalty=0.0, max_new_tokens=int(trie.lengths.max()), early_stopping=True,
                         logits_processor=LogitsProcessorList([TrieConstraint(trie, prompt_len, beams, bans,
                                                                              renormalize)]),
                         output_scores=True, return_dict_in_generate=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=trie.eos, **model_kwargs)
    sequences = out.sequences[:, prompt_len:].view(n, beams, -1).tolist()
    return top_candidates(trie, sequences, out.sequences_scores.view(n, beams).tolist(), k)
