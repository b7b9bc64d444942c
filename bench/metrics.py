"""Per-example metrics and their confidence intervals. Methods never call these: the harness does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer
from scipy import stats


def recall_at_k(top: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-example recall@k (one relevant label each, so hit@k) from ranked ids [n, >= max(ks)]."""
    if top.shape[1] < max(ks):
        raise ValueError(f"ranking depth {top.shape[1]} < max k {max(ks)}")
    first_hit = np.where(top == labels[:, None], np.arange(top.shape[1]), top.shape[1]).min(axis=1)
    return {f"recall@{k}": (first_hit < k).astype(np.float64) for k in ks}


def rouge_lsum(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-example ROUGE-Lsum F-measure, in percent (as the paper reports it), with Porter stemming."""
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    return np.array([100.0 * scorer.score(ref, pred)["rougeLsum"].fmeasure
                     for pred, ref in zip(predictions, references, strict=True)])


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-example values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean()) if len(values) else float("nan")
        return mean, mean
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", random_state=np.random.default_rng(seed), batch=50)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean, CI bounds and count of a per-example metric."""
    low, high = bootstrap_ci(values, confidence=confidence, seed=seed)
    return {"mean": float(np.mean(values)), "ci_low": low, "ci_high": high, "n": int(len(values))}
