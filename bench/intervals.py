"""Confidence intervals and tests for per-example metric values, chosen by what the values are.

- A 0/1 metric (recall@k: a hit or not) gets the exact Clopper-Pearson interval of a proportion, always:
  it never has zero width and it widens monotonically as hits move toward half of n.
- A paired difference of two 0/1 metrics on the same examples gets Newcombe's score interval for paired
  proportions (method 10 of Newcombe 1998, from each side's Wilson interval and their correlation) and
  the exact McNemar test (a two-sided binomial test on the discordant examples).
- Anything continuous (NDCG, MRR, ROUGE, a mean over seeds) gets a percentile bootstrap of the mean; a
  paired continuous difference also gets the Wilcoxon signed-rank test's p-value. Where every value (or
  every difference) is the same the bootstrap cannot resample: the interval is not given (NaN), never a
  zero-width one.
- A configuration run on several seeds gets the mean over seeds with an interval that adds the seed-to-
  seed spread to the test set's sampling (``over_seeds``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is 0 or 1 (a hit rate)."""
    values = np.asarray(values)
    return bool(len(values)) and bool(np.isin(values, (0.0, 1.0)).all())


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact interval of a proportion: 0 of 100 gives [0, 0.036], not [0, 0]."""
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (the parts of Newcombe's paired interval)."""
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(values: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; NaN where every value is the same (nothing to resample)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        return float("nan"), float("nan")
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", random_state=np.random.default_rng(seed), batch=50)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, float]:
    """Mean, interval and count of per-example values: Clopper-Pearson for 0/1 values, else bootstrap."""
    values = np.asarray(values, dtype=np.float64)
    if is_binary(values):
        low, high = clopper_pearson(int(values.sum()), len(values), confidence)
    else:
        low, high = bootstrap_ci(values, confidence=confidence, seed=seed)
    return {"mean": float(np.mean(values)) if len(values) else float("nan"), "ci_low": low, "ci_high": high,
            "n": int(len(values))}


def newcombe_paired(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's (1998, method 10) square-and-add Wilson interval of ``mean(a) - mean(b)`` for paired 0/1
    values, its correlation corrected as Fagerland, Lydersen and Laake (2014) define it."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = len(a)
    both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, confidence)
    l2, u2 = wilson(both + only_b, n, confidence)
    margins = (both + only_a) * (neither + only_b) * (both + only_b) * (neither + only_a)
    agreement = both * neither - only_a * only_b
    if agreement > 0:  # Newcombe's correction of the correlation (as Fagerland et al. 2014 give the interval)
        agreement = max(agreement - n / 2, 0.0)
    phi = agreement / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return max(-1.0, diff - math.sqrt(max(below, 0.0))), min(1.0, diff + math.sqrt(max(above, 0.0)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 values (1 where no example differs)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_difference(values: np.ndarray, reference: np.ndarray, confidence: float = CONFIDENCE,
                      seed: int = 0) -> dict[str, float]:
    """Mean of ``values - reference`` (same examples, same order) with its interval and p-value, chosen as
    the module says; wins and losses count the examples where ``values`` is higher or lower."""
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(f"paired values need the same examples: {values.shape} vs {reference.shape}")
    diff = values - reference
    if is_binary(values) and is_binary(reference):
        (low, high), p, test = newcombe_paired(values, reference, confidence), mcnemar_exact(values, reference), "mcnemar"
    else:
        (low, high), test = bootstrap_ci(diff, confidence=confidence, seed=seed), "wilcoxon"
        p = 1.0 if not diff.any() else float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
    return {"diff": float(diff.mean()), "ci_low": low, "ci_high": high, "p": p, "test": test,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "n": len(diff)}


def over_seeds(means: np.ndarray, lows: np.ndarray, highs: np.ndarray,
               confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean over S seeds (each scored on the same test examples) with an interval that carries both
    uncertainties: the seed-to-seed spread (a t interval of the S means, S - 1 degrees of freedom) and
    the test set's sampling (the seeds' mean per-seed interval half-width), added in quadrature. One
    seed: its own interval."""
    means, lows, highs = (np.asarray(x, dtype=np.float64) for x in (means, lows, highs))
    if len(means) == 1:
        return float(means[0]), float(lows[0]), float(highs[0])
    seeds = stats.t.ppf(1 - (1 - confidence) / 2, len(means) - 1) * means.std(ddof=1) / math.sqrt(len(means))
    half_widths = (highs - lows) / 2
    test = float(np.nanmean(half_widths)) if np.isfinite(half_widths).any() else 0.0
    half = math.sqrt(seeds ** 2 + test ** 2)
    return float(means.mean()), float(means.mean() - half), float(means.mean() + half)
