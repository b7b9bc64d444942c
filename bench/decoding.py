"""LLM answers as catalog ids: beam search constrained to a prefix trie of candidate names (item
titles or category names), so every answer is a real candidate and the top-k are the k best beams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions

DEAD_BEAM = -1e8


class CandidateTrie:
    """Prefix trie over the token ids of ``" " + name + eos`` for every candidate name. Each node keeps
    the candidates below it, so a branch whose every candidate is banned is never entered."""

    def __init__(self, names: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> None:
        if any(not name.strip() for name in names):
            empty = [i for i, name in enumerate(names) if not name.strip()]
            raise ValueError(f"candidate names must be non-empty; ids {empty[:5]} are empty")
        self.eos = tokenizer.eos_token_id
        self.root: dict = {"below": set()}
        encoded = tokenizer([" " + name for name in names], add_special_tokens=False)["input_ids"]
        for candidate, ids in enumerate(encoded):
            node = self.root
            node["below"].add(candidate)
            for token in [*ids, self.eos]:
                node = node.setdefault(token, {"below": set()})
                node["below"].add(candidate)
            node["id"] = candidate
        self.lengths = np.array([len(ids) + 1 for ids in encoded])

    def node(self, generated: Sequence[int]) -> dict | None:
        node = self.root
        for token in generated:
            node = node.get(token)
            if node is None:
                return None
        return node

    def allowed(self, generated: Sequence[int], banned: frozenset[int] = frozenset()) -> list[int]:
        """Tokens that keep ``generated`` a prefix of a candidate that is not banned; [] where none can
        (a dead beam)."""
        node = self.node(generated)
        if node is None or "id" in node:
            return []
        return [token for token, child in node.items() if isinstance(token, int)
                and (len(child["below"]) > len(banned) or not child["below"] <= banned)]

    def candidate(self, generated: Sequence[int]) -> int | None:
        node = self.node(generated)
        return None if node is None else node.get("id")


def candidate_trie(ctx: TrialContext, tokenizer: PreTrainedTokenizerBase) -> CandidateTrie | None:
    """The trie of the task's candidates: item titles (next_item), category names (fav_category)."""
    if ctx.task.name == "review_gen":
        return None
    names = ctx.dataset.titles if ctx.task.name == "next_item" else ctx.dataset.categories
    return CandidateTrie(names, tokenizer)


class TrieConstraint(LogitsProcessor):
    """Masks every token that would leave the trie; a beam with no allowed token gets -inf and dies
    (transformers' own prefix_allowed_tokens_fn refuses an empty list). With ``renormalize`` each step's
    log-probabilities are renormalized over the allowed tokens, so a title's score is the product of its
    choices at the trie's branch points only (a locally normalized distribution over the catalog)."""

    def __init__(self, trie: CandidateTrie, prompt_len: int, beams: int, bans: list[frozenset[int]],
                 renormalize: bool = False) -> None:
        self.trie, self.prompt_len, self.beams, self.bans = trie, prompt_len, beams, bans
        self.renormalize = renormalize

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, generated in enumerate(input_ids[:, self.prompt_len:].tolist()):
            allowed = self.trie.allowed(generated, self.bans[row // self.beams])
            if allowed:
                mask[row, allowed] = 0.0
        masked = scores + mask
        if not self.renormalize:
            return masked
        dead = torch.isneginf(masked).all(dim=-1, keepdim=True)
        return torch.where(dead, masked, masked.log_softmax(dim=-1))


@torch.no_grad()
def constrained_beam_search(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                            encoded: dict[str, torch.Tensor], trie: CandidateTrie, k: int, beams: int,
                            banned: Sequence[Sequence[int]] | None = None, renormalize: bool = False,
                            **model_kwargs) -> np.ndarray:
    """Top-k candidate ids per prompt [n, k] (-1 where fewer distinct candidates were found).

    ``encoded`` holds left-padded ``input_ids`` and ``attention_mask`` (``bench.lm_inputs.encode_prompts``);
    ``model_kwargs`` go to the model's forward (e.g. USER-LLM's user states). Beams are scored by summed
    log-probability (``length_penalty=0``); beams below -1e8 are dropped, duplicates removed; ``beams``
    >= k so that k distinct candidates usually survive; ``renormalize``: see ``TrieConstraint``."""
    beams = max(beams, k)
    n, prompt_len = encoded["input_ids"].shape
    bans = [frozenset(b) for b in banned] if banned is not None else [frozenset()] * n

    constraint = TrieConstraint(trie, prompt_len, beams, bans, renormalize)
    out = model.generate(**encoded, num_beams=beams, num_return_sequences=beams, do_sample=False,
                         length_penalty=0.0, max_new_tokens=int(trie.lengths.max()), early_stopping=True,
                         logits_processor=LogitsProcessorList([constraint]),
                         output_scores=True, return_dict_in_generate=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=trie.eos, **model_kwargs)
    sequences = out.sequences[:, prompt_len:].view(n, beams, -1).tolist()
    scores = out.sequences_scores.view(n, beams).tolist()
    top = np.full((n, k), -1, dtype=np.int64)
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
def generate_texts(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, encoded: dict[str, torch.Tensor],
                   max_new_tokens: int, **model_kwargs) -> list[str]:
    """Free greedy generation (review_gen) from left-padded ``encoded`` prompts."""
    out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **model_kwargs)
    return [text.strip() for text in tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]


def decode_answers(ctx: TrialContext, examples: Examples, index: np.ndarray, model: torch.nn.Module,
                   tokenizer: PreTrainedTokenizerBase, trie: CandidateTrie | None, encoded: dict[str, torch.Tensor],
                   beams: int, max_new_tokens: int, renormalize: bool = False,
                   **model_kwargs) -> np.ndarray | list[str]:
    """The task's answers for ``examples[index]``: top-k ids by constrained beam search (items of the
    input window banned when the protocol excludes history), or generated texts for review_gen."""
    if ctx.task.name == "review_gen":
        return generate_texts(model, tokenizer, encoded, max_new_tokens, **model_kwargs)
    k = max(ctx.protocol.ks) if ctx.protocol.ks else 1
    banned = ctx.dataset.item[examples.positions(index)].tolist() if ctx.protocol.exclude_history else None
    return constrained_beam_search(model, tokenizer, encoded, trie, k, beams, banned, renormalize, **model_kwargs)


def gather_predictions(ctx: TrialContext, answers: list[np.ndarray | list[str]]) -> Predictions:
    """Per-batch answers of ``decode_answers`` as one ``Predictions``."""
    if ctx.task.name == "review_gen":
        return Predictions(texts=[text for batch in answers for text in batch])
    k = max(ctx.protocol.ks) if ctx.protocol.ks else 1
    return Predictions(ranked=np.concatenate(answers) if answers else np.zeros((0, k), np.int64))
