"""What an LLM knows of a dataset's catalog before it sees any user.

Two probes, no user history in any prompt:

- **genre**: "Title: <title>\\nGenre:" followed by each category name; the LLM's answer is the category
  whose tokens it finds likeliest (summed log-probabilities), raw and calibrated (each category's
  likelihood after a content-free title, "N/A", subtracted: Zhao et al. 2021's contextual calibration).
  A hit is an answer among the item's categories. The reference is the genre prior: always the catalog's
  most common category, on the same items (paired).
- **popularity**: "Which of these two titles is more popular?\\nA: <title>\\nB: <title>\\nAnswer:" for
  pairs whose rating counts in the dataset differ at least ``POPULARITY_RATIO``-fold; each pair is asked
  in both orders and the letters' log-probabilities summed, so a bias towards "A" cancels. The
  reference is chance (0.5).

A result far above its reference says the LLM recognises the titles: a TextPrompt or USER-LLM score on
this catalog can draw on that prior knowledge as well as on the user's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from bench.data.dataset import Dataset
from bench.intervals import clopper_pearson, paired_difference

POPULARITY_RATIO = 2.0  # a pair is asked only where one title has at least this many times the other's ratings
NULL_TITLE = "N/A"  # the content-free title of the calibration prompt


@dataclass(frozen=True)
class ProbeRow:
    """One probe's result: the LLM's hits and the reference's (a paired reference, or a constant)."""

    probe: str
    llm_hits: np.ndarray  # bool [n]
    reference: str
    reference_hits: np.ndarray | None  # bool [n] (paired) or None (chance)
    chance: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        n, hits = len(self.llm_hits), int(self.llm_hits.sum())
        low, high = clopper_pearson(hits, n)
        row: dict[str, Any] = {"probe": self.probe, "n": n, "accuracy": hits / n, "ci_low": low, "ci_high": high,
                               "reference": self.reference}
        if self.reference_hits is not None:
            paired = paired_difference(self.llm_hits.astype(float), self.reference_hits.astype(float))
            row.update(reference_accuracy=float(self.reference_hits.mean()), diff=paired["diff"],
                       diff_ci_low=paired["ci_low"], diff_ci_high=paired["ci_high"], p=paired["p"])
        else:
            row.update(reference_accuracy=self.chance, diff=hits / n - self.chance, diff_ci_low=low - self.chance,
                       diff_ci_high=high - self.chance, p=float(stats.binomtest(hits, n, self.chance).pvalue))
        return row


@torch.inference_mode()
def continuation_logprobs(model: torch.nn.Module, tokenizer: Any, prompts: list[str], continuations: list[str],
                          batch_size: int = 64) -> np.ndarray:
    """Summed log-probability of each continuation's tokens after its prompt, float64 [n]. Sequences are
    left-padded (positions counted from each one's first real token), so every continuation ends the
    batch and the LM head runs on the last few positions only."""
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    continuation_ids = tokenizer(continuations, add_special_tokens=False)["input_ids"]
    sequences = [p + c for p, c in zip(prompt_ids, continuation_ids, strict=True)]
    order = np.argsort([len(s) for s in sequences], kind="stable")  # similar lengths share a batch
    out = np.zeros(len(sequences))
    for lo in range(0, len(order), batch_size):
        rows = order[lo:lo + batch_size]
        width = max(len(sequences[i]) for i in rows)
        tail = max(len(continuation_ids[i]) for i in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, width - len(sequences[i]):] = torch.tensor(sequences[i])
            mask[r, width - len(sequences[i]):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=tail + 1).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [b, tail]: predictions of the last tail tokens
        targets = ids[:, width - tail:]
        picked = logprobs.gather(2, targets[:, :, None])[:, :, 0]
        own = torch.arange(tail)[None, :] >= tail - torch.tensor([len(continuation_ids[i]) for i in rows])[:, None]
        out[rows] = (picked * own).sum(1).double().numpy()
    return out


def genre_probes(model: torch.nn.Module, tokenizer: Any, dataset: Dataset, items: np.ndarray) -> list[ProbeRow]:
    """The genre probe, raw and calibrated, on catalog ``items``."""
    categories = list(dataset.categories)
    titles = dataset.items["title"].to_numpy()[items]
    prompts = [f"Title: {title}\nGenre:" for title in titles for _ in categories]
    scores = continuation_logprobs(model, tokenizer, prompts, [f" {c}" for c in categories] * len(items))
    scores = scores.reshape(len(items), len(categories))
    null = continuation_logprobs(model, tokenizer, [f"Title: {NULL_TITLE}\nGenre:"] * len(categories),
                                 [f" {c}" for c in categories])
    ptr, ids = dataset.item_categories
    has = np.zeros((dataset.n_items, len(categories)), dtype=bool)
    has[np.repeat(np.arange(dataset.n_items), np.diff(ptr)), ids] = True
    prior = int(has.sum(axis=0).argmax())
    truth = has[items]
    prior_hits = truth[:, prior]
    reference = f"genre prior (always {categories[prior]})"
    return [ProbeRow("genre of a title", truth[np.arange(len(items)), scores.argmax(axis=1)], reference, prior_hits),
            ProbeRow("genre of a title, calibrated", truth[np.arange(len(items)), (scores - null).argmax(axis=1)],
                     reference, prior_hits)]


def popularity_probe(model: torch.nn.Module, tokenizer: Any, dataset: Dataset, pairs: np.ndarray) -> ProbeRow:
    """The popularity probe on item ``pairs`` (int [p, 2], the first the more rated)."""
    titles = dataset.items["title"].to_numpy()
    question = "Which of these two titles is more popular?\nA: {}\nB: {}\nAnswer:"
    first_a = [question.format(titles[a], titles[b]) for a, b in pairs]
    first_b = [question.format(titles[b], titles[a]) for a, b in pairs]
    letters = [" A", " B"]
    score = lambda prompts: continuation_logprobs(model, tokenizer, [p for p in prompts for _ in letters],  # noqa: E731
                                                  letters * len(prompts)).reshape(-1, 2)
    a_first, b_first = score(first_a), score(first_b)
    # the more rated title's letter against the other's, in both orders
    margin = (a_first[:, 0] - a_first[:, 1]) + (b_first[:, 1] - b_first[:, 0])
    return ProbeRow("the more popular of two titles", margin > 0, "chance", None)


def sample_pairs(dataset: Dataset, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` pairs of distinct rated items whose rating counts differ ``POPULARITY_RATIO``-fold, the
    more rated first, int64 [count, 2]."""
    ratings = np.bincount(dataset.item, minlength=dataset.n_items)
    rated = np.flatnonzero(ratings > 0)
    draws = rng.choice(rated, size=(20 * count, 2))
    a, b = draws[:, 0], draws[:, 1]
    high, low = np.maximum(ratings[a], ratings[b]), np.minimum(ratings[a], ratings[b])
    keep = (a != b) & (high >= POPULARITY_RATIO * low)
    more = np.where(ratings[a] >= ratings[b], a, b)[keep][:count]
    less = np.where(ratings[a] >= ratings[b], b, a)[keep][:count]
    return np.stack([more, less], axis=1)


def probe_knowledge(dataset: Dataset, model: torch.nn.Module, tokenizer: Any, items: int, pairs: int,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Every probe's row on ``items`` catalog items and ``pairs`` title pairs drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    known = np.flatnonzero(np.diff(dataset.item_categories[0]) > 0)
    chosen = np.sort(rng.choice(known, size=min(items, len(known)), replace=False))
    rows = [*genre_probes(model, tokenizer, dataset, chosen), popularity_probe(model, tokenizer, dataset,
                                                                              sample_pairs(dataset, pairs, rng))]
    return [row.to_dict() for row in rows]
