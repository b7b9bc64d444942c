"""LLM answers as catalog ids: beam search constrained to a prefix trie of candidate names (item
titles or category names), so every answer is a real candidate and the top-k are the k best beams."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bench.context import TrialContext
from bench.data.dataset import Dataset
from bench.data.windows import Examples
from bench.evaluation import Predictions, excluded
from bench.models.trie_search import TrieTables, trie_beam_search

DEAD_BEAM = -1e8
DECODE_MOST = 64  # prompts decoded at once: past 32 a batch is no faster per prompt on 2 CPU cores (docs/findings.md)


class CandidateTrie:
    """Prefix trie over the token ids of ``" " + name + eos`` for every candidate name: as nested dicts
    (``node``: the candidates below each node, ``candidate``: the id a finished sequence names) and as
    tensors for the batched search (``tables``)."""

    def __init__(self, names: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> None:
        if any(not name.strip() for name in names):
            empty = [i for i, name in enumerate(names) if not name.strip()]
            raise ValueError(f"candidate names must be non-empty; ids {empty[:5]} are empty")
        self.eos = tokenizer.eos_token_id
        self.root: dict = {"below": set()}
        encoded = tokenizer([" " + name for name in names], add_special_tokens=False)["input_ids"]
        self.sequences = [[*ids, self.eos] for ids in encoded]
        for candidate, tokens in enumerate(self.sequences):
            node = self.root
            node["below"].add(candidate)
            for token in tokens:
                node = node.setdefault(token, {"below": set()})
                node["below"].add(candidate)
            node["id"] = candidate
        self.lengths = np.array([len(tokens) for tokens in self.sequences])
        self.tables = TrieTables.from_sequences(self.sequences, vocab=max(map(max, self.sequences)) + 1)

    def node(self, generated: Sequence[int]) -> dict | None:
        node = self.root
        for token in generated:
            node = node.get(token)
            if node is None:
                return None
        return node

    def candidate(self, generated: Sequence[int]) -> int | None:
        node = self.node(generated)
        return None if node is None else node.get("id")


def candidate_trie(ctx: TrialContext, tokenizer: PreTrainedTokenizerBase) -> CandidateTrie | None:
    """The trie of the task's candidate names (item titles, category names); None where it generates text."""
    if ctx.task.generates_text:
        return None
    return CandidateTrie(ctx.task.candidate_names(ctx.dataset), tokenizer)


@torch.no_grad()
def constrained_beam_search(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                            encoded: dict[str, torch.Tensor], trie: CandidateTrie, k: int, beams: int,
                            banned: Sequence[Sequence[int]] | None = None, renormalize: bool = False,
                            **model_kwargs) -> np.ndarray:
    """Top-k candidate ids per prompt [n, k] (-1 where fewer distinct candidates were found).

    ``encoded`` holds left-padded ``input_ids`` and ``attention_mask`` (``bench.models.lm_inputs.encode_prompts``);
    ``model_kwargs`` go to the model's forward (e.g. USER-LLM's user states). Beams are scored by summed
    log-probability (length penalty 0) by ``bench.models.trie_search``; beams below -1e8 (dead: no allowed
    token, or none finished) are dropped, duplicates removed; ``beams`` >= k so that k distinct candidates
    usually survive; ``renormalize``: each step's log-probabilities renormalized over the trie's allowed
    tokens, so a title's score is the product of its choices at the trie's branch points only."""
    beams = max(beams, k)
    sequences, scores = trie_beam_search(model, encoded, trie.tables, trie.eos, beams, int(trie.lengths.max()),
                                         banned, renormalize, **model_kwargs)
    return top_candidates(trie, sequences.tolist(), scores.tolist(), k)


def top_candidates(trie: CandidateTrie, sequences: list[list[list[int]]], scores: list[list[float]],
                   k: int) -> np.ndarray:
    """[n, k] ids of the best distinct candidates named by each prompt's scored beams (-1 padded)."""
    top = np.full((len(sequences), k), -1, dtype=np.int64)
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
    """Free greedy generation (text tasks) from left-padded ``encoded`` prompts."""
    out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **model_kwargs)
    return [text.strip() for text in tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:],
                                                            skip_special_tokens=True)]


def decode_bytes(model: torch.nn.Module, tokens: int, beams: int) -> float:
    """Memory one prompt of ``tokens`` (prompt and answer) needs while decoded with ``beams`` beams: its
    key/value cache once per beam (twice: a step's concatenation copies it), the prefill's activations
    and attention weights, and each beam's log-probabilities over the vocabulary."""
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    itemsize = next(model.parameters()).element_size()
    cache = 2 * config.num_hidden_layers * getattr(config, "num_key_value_heads", heads) * head_dim * itemsize
    ffn = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
    prefill = tokens * (6 * config.hidden_size + 3 * ffn) * 4 + heads * tokens**2 * 4
    return 2 * beams * tokens * cache + prefill + 4 * beams * config.vocab_size * 4


def decode_batch_size(ctx: TrialContext, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      trie: CandidateTrie | None, prompts: Callable[[Dataset, Examples, np.ndarray], list[str]],
                      examples: Examples, beams: int, max_new_tokens: int, slots: int = 0) -> int:
    """Prompts ``decode_answers`` takes at once: ``budget.eval_batch_size``, or as many as fit in memory
    (at most ``DECODE_MOST``), sized by the longest of the first ``DECODE_MOST`` of ``examples``' prompts."""
    sample = prompts(ctx.dataset, examples, np.arange(min(len(examples), DECODE_MOST)))
    longest = max(map(len, tokenizer(sample)["input_ids"])) + slots if sample else 1
    if trie is None:  # free text: greedy, up to max_new_tokens
        return ctx.eval_batch_size(decode_bytes(model, longest + max_new_tokens, 1), most=DECODE_MOST)
    return ctx.eval_batch_size(decode_bytes(model, longest + int(trie.lengths.max()), beams), most=DECODE_MOST)


def decode_answers(ctx: TrialContext, examples: Examples, index: np.ndarray, model: torch.nn.Module,
                   tokenizer: PreTrainedTokenizerBase, trie: CandidateTrie | None, encoded: dict[str, torch.Tensor],
                   beams: int, max_new_tokens: int, renormalize: bool = False,
                   **model_kwargs) -> np.ndarray | list[str]:
    """The task's answers for ``examples[index]``: top-k ids by constrained beam search (the items
    the protocol excludes from the ranking banned), or generated texts where the task asks for text."""
    if ctx.task.generates_text:
        return generate_texts(model, tokenizer, encoded, max_new_tokens, **model_kwargs)
    k = max(ctx.protocol.ks) if ctx.protocol.ks else 1
    banned = None
    if ctx.protocol.exclude_history != "none":
        rows, items = excluded(ctx.dataset, examples.subset(index), ctx.protocol.exclude_history)
        banned = [part.tolist() for part in np.split(items, np.searchsorted(rows, np.arange(1, len(index))))]
    return constrained_beam_search(model, tokenizer, encoded, trie, k, beams, banned, renormalize, **model_kwargs)


def gather_predictions(ctx: TrialContext, answers: list[np.ndarray | list[str]]) -> Predictions:
    """Per-batch answers of ``decode_answers`` as one ``Predictions``."""
    if ctx.task.generates_text:
        return Predictions(texts=[text for batch in answers for text in batch])
    k = max(ctx.protocol.ks) if ctx.protocol.ks else 1
    return Predictions(ranked=np.concatenate(answers) if answers else np.zeros((0, k), np.int64))
