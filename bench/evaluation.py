"""Turn a method's predictions into metrics, with the task's protocol, identically for every method."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples
from bench.intervals import mean_interval
from bench.metrics import get_metric
from bench.tasks import Protocol, Scoring

PREDICT_CHUNK = 512


class PredictionError(ValueError):
    """A method returned predictions the harness cannot score (wrong shape, NaN, ids out of range)."""


@dataclass
class Predictions:
    """What a method returns for a list of examples: exactly one of the three fields.

    scores: float [n, n_candidates], higher is better (the harness ranks them);
    ranked: int [n, depth], candidate ids best first, -1 where a method has fewer;
    texts: one generated string per example.
    """

    scores: np.ndarray | None = None
    ranked: np.ndarray | None = None
    texts: list[str] | None = None

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.scores, self.ranked, self.texts)]
        if sum(given) != 1:
            raise ValueError("Predictions needs exactly one of scores, ranked or texts")


def excluded(dataset: Dataset, examples: Examples, scope: str) -> tuple[np.ndarray, np.ndarray]:
    """The (example row, item) pairs a ranking drops under ``protocol.exclude_history == scope``: every
    event of the user before the label ("history"), the input window's ("window"), or none."""
    if scope == "none":
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if scope == "window":
        positions = examples.positions()
        return np.repeat(np.arange(len(examples)), examples.seq_len), dataset.item[positions].ravel().astype(np.int64)
    first, ends = dataset.user_ptr[examples.users], examples.label_positions
    lengths = ends - first
    rows = np.repeat(np.arange(len(examples)), lengths)
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths - first, lengths)
    return rows, dataset.item[positions].astype(np.int64)


def excluded_labels(scoring: Scoring, dataset: Dataset, examples: Examples) -> np.ndarray:
    """Mask of the examples whose label the protocol's exclusion would remove from their own ranking (a
    repeat of an item the user had before): certain misses for every method, so the harness drops them
    from validation and test and counts them. Empty unless the task ranks items."""
    scope = scoring.protocol.exclude_history
    if scoring.task.feature != "item" or scope == "none":
        return np.zeros(len(examples), dtype=bool)
    rows, items = excluded(dataset, examples, scope)
    mask = np.zeros(len(examples), dtype=bool)
    mask[rows[items == dataset.item[examples.label_positions][rows]]] = True
    return mask


def tie_breaks(label_positions: np.ndarray, n_candidates: int) -> np.ndarray:
    """uint64 [n, n_candidates]: the order in which equal scores rank, a fixed pseudo-random permutation of
    the candidates per example (splitmix64 of the label event's position and the candidate id). It is the
    same for every method and every run, so equal scores favour no item: a constant scorer gets the recall
    of a random order, and two methods with the same scores get the same ranking."""
    with np.errstate(over="ignore"):
        x = (label_positions.astype(np.uint64)[:, None] * np.uint64(n_candidates)
             + np.arange(n_candidates, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def ranking(dataset: Dataset, examples: Examples, predictions: Predictions, protocol: Protocol,
            depth: int, n_candidates: int) -> np.ndarray:
    """Top-``depth`` candidate ids [n, depth] (-1 padded), after the protocol's history exclusion. Scores
    are ranked in float64, highest first, equal scores in the order of ``tie_breaks``."""
    n = len(examples)
    rows, items = excluded(dataset, examples, protocol.exclude_history)
    if predictions.scores is not None:
        scores = np.array(predictions.scores, dtype=np.float64, copy=True)
        if scores.ndim != 2 or scores.shape != (n, n_candidates):
            raise PredictionError(f"scores has shape {scores.shape}; expected ({n}, {n_candidates}): "
                                  f"one row per example, one column per candidate")
        if np.isnan(scores).any():
            rows = np.flatnonzero(np.isnan(scores).any(axis=1))
            raise PredictionError(f"scores hold NaN in {len(rows)} of {n} rows (first: row {rows[0]})")
        scores[rows, items] = -np.inf
        top = np.lexsort((tie_breaks(examples.label_positions, n_candidates), -scores), axis=1)[:, :depth]
        return _pad(np.where(np.take_along_axis(scores, top, axis=1) > -np.inf, top, -1), depth)
    ranked = np.asarray(predictions.ranked, dtype=np.int64)
    if ranked.ndim != 2 or ranked.shape[0] != n:
        raise PredictionError(f"ranked has shape {ranked.shape}; expected ({n}, depth)")
    bad = (ranked < -1) | (ranked >= n_candidates)
    if bad.any():
        hidden = (ranked == dataset.n_items).any() and protocol.candidates == "catalog"
        raise PredictionError(f"ranked holds ids outside [0, {n_candidates}) (and -1 for none): "
                              f"{ranked[bad][:5].tolist()}"
                              + (f"; {dataset.n_items} is the item of a hidden event: the method read an event "
                                 "its context hides (a label)" if hidden else ""))
    if len(rows):
        seen = np.isin(np.arange(n)[:, None] * n_candidates + ranked, rows * n_candidates + items)
        ranked = np.where(seen & (ranked >= 0), -1, ranked)
    keep = np.argsort(ranked < 0, axis=1, kind="stable")  # valid ids first, order kept
    return _pad(np.take_along_axis(ranked, keep, axis=1)[:, :depth], depth)


def _pad(top: np.ndarray, depth: int) -> np.ndarray:
    """Right-pad a ranking with -1 up to ``depth`` columns."""
    return np.pad(top, ((0, 0), (0, depth - top.shape[1])), constant_values=-1)


def evaluate(scoring: Scoring, dataset: Dataset, examples: Examples, predictions: Predictions,
             seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics (mean with its interval) and the per-example values behind them."""
    per_example = score_examples(scoring, dataset, examples, predictions)
    return summarize_all(per_example, seed), per_example


def score_examples(scoring: Scoring, dataset: Dataset, examples: Examples,
                   predictions: Predictions) -> dict[str, np.ndarray]:
    """Per-example metric values for one batch of predictions."""
    task, protocol = scoring.task, scoring.protocol
    if not isinstance(predictions, Predictions):
        raise PredictionError(f"predict returned {type(predictions).__name__}; expected "
                              "bench.evaluation.Predictions(scores=..., ranked=... or texts=...)")
    labels = scoring.labels(dataset, examples)
    metrics = [get_metric(name) for name in task.metrics]
    if task.generates_text:
        if predictions.texts is None:
            raise PredictionError(f"task {task.name} needs generated texts")
        if len(predictions.texts) != len(examples):
            raise PredictionError(f"{len(predictions.texts)} texts for {len(examples)} examples")
        return {name: values for metric in metrics
                for name, values in metric.compute(predictions.texts, list(labels), protocol.ks).items()}
    if predictions.texts is not None:
        raise PredictionError(f"task {task.name} needs ranked ids or scores, got texts")
    top = ranking(dataset, examples, predictions, protocol, max(protocol.ks), task.n_candidates(dataset))
    return {name: values for metric in metrics for name, values in metric.compute(top, labels, protocol.ks).items()}


def predict_and_score(predict: Callable[[Examples], Predictions], method: str, scoring: Scoring, dataset: Dataset,
                      examples: Examples) -> tuple[dict[str, np.ndarray], float]:
    """Predict in chunks and score each chunk at once (bounded memory); the per-example values and the
    seconds it took. Predictions the harness cannot score are a PredictionError naming ``method``."""
    chunks: list[dict[str, np.ndarray]] = []
    started = time.perf_counter()
    for lo in range(0, len(examples), PREDICT_CHUNK):
        part = examples.subset(slice(lo, lo + PREDICT_CHUNK))
        try:
            chunks.append(score_examples(scoring, dataset, part, predict(part)))
        except PredictionError as exc:
            raise PredictionError(f"method {method} on {examples.split} examples {lo}-{lo + len(part) - 1}: "
                                  f"{exc}") from None
    seconds = time.perf_counter() - started
    names = chunks[0].keys() if chunks else []
    return {name: np.concatenate([c[name] for c in chunks]) for name in names}, seconds


def summarize_all(per_example: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean, interval and count of each metric (``bench.intervals``: exact for 0/1 values)."""
    return {name: mean_interval(values, seed=seed) for name, values in per_example.items()}
