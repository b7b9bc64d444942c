"""Per-example metrics and their registry (their intervals: ``bench.intervals``). Methods never call these: the
harness does.

A metric is registered under the name a task's protocol gives (``Protocol.metric``), with what it
scores (a ranking of candidate ids, or generated texts), whether higher is better, and the names of
the values it reports (``recall@1``, ``recall@5``, ... for a ranking metric cut at each k), in the
spirit of lm-evaluation-harness's ``register_metric``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.named import Registry


@dataclass(frozen=True)
class Metric:
    """A registered metric: ``compute(predicted, labels, ks)`` gives per-example values by name, from a
    ranking [n, depth] of candidate ids (``scores: "ranking"``) or from texts (``scores: "texts"``)."""

    name: str
    scores: Literal["ranking", "texts"]
    higher_is_better: bool
    compute: Callable[..., dict[str, np.ndarray]]
    per_k: bool = False  # one value per cut-off k: "name@k"

    def names(self, ks: Sequence[int] = ()) -> list[str]:
        """The names of the values this metric reports under cut-offs ``ks``."""
        return [f"{self.name}@{k}" for k in ks] if self.per_k else [self.name]


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, scores: Literal["ranking", "texts"], higher_is_better: bool = True,
                    per_k: bool = False) -> Callable[[Callable], Callable]:
    """Register ``compute`` as the metric ``name`` (a protocol's ``metric``)."""
    def wrap(compute: Callable) -> Callable:
        METRICS.add(name, Metric(name, scores, higher_is_better, compute, per_k))
        return compute
    return wrap


def get_metric(name: str) -> Metric:
    return METRICS.lookup(name)


def first_hit(top: np.ndarray, labels: np.ndarray, depth: int) -> np.ndarray:
    """0-based rank of each example's one relevant label in its ranking [n, >= depth] (``depth`` where absent)."""
    if top.shape[1] < depth:
        raise ValueError(f"ranking depth {top.shape[1]} < max k {depth}")
    return np.where(top == labels[:, None], np.arange(top.shape[1]), top.shape[1]).min(axis=1)


@register_metric("recall", scores="ranking", per_k=True)
def recall_at_k(top: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-example recall@k (one relevant label each, so hit@k) from ranked ids [n, >= max(ks)]."""
    rank = first_hit(top, labels, max(ks))
    return {f"recall@{k}": (rank < k).astype(np.float64) for k in ks}


@register_metric("ndcg", scores="ranking", per_k=True)
def ndcg_at_k(top: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-example NDCG@k with one relevant label: 1 / log2(rank + 2) where it is in the top k, else 0
    (its ideal DCG is 1), as RecBole and the sequential-recommendation literature compute it."""
    rank = first_hit(top, labels, max(ks))
    gain = 1.0 / np.log2(rank + 2.0)
    return {f"ndcg@{k}": np.where(rank < k, gain, 0.0) for k in ks}


@register_metric("mrr", scores="ranking", per_k=True)
def mrr_at_k(top: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-example reciprocal rank cut at k: 1 / (rank + 1) where the label is in the top k, else 0."""
    rank = first_hit(top, labels, max(ks))
    return {f"mrr@{k}": np.where(rank < k, 1.0 / (rank + 1.0), 0.0) for k in ks}


def rouge_lsum(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-example ROUGE-Lsum F-measure, in percent (as the paper reports it), with Porter stemming."""
    from rouge_score import rouge_scorer  # nltk and scipy.stats: 1.5 s an import, for text tasks only

    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    return np.array([100.0 * scorer.score(ref, pred)["rougeLsum"].fmeasure
                     for pred, ref in zip(predictions, references, strict=True)])


@register_metric("rouge_lsum", scores="texts")
def _rouge_lsum(predictions: Sequence[str], references: Sequence[str], ks: Sequence[int] = ()) -> dict[str, np.ndarray]:
    return {"rouge_lsum": rouge_lsum(predictions, references)}
