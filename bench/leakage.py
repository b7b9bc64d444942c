"""``bench check-leakage``: a second line of defence behind the views (``bench.data.views``), which already
keep every label out of a method's reach. The check fits a method and predicts the test examples; then
it replaces every test label event's item (next_item, fav_category) or review text (review_gen) by a
random one in the source data, fits the method again from scratch and predicts again. A deterministic
method that cannot see the test labels gives the same predictions; any change is a leak (a method that
reads the data some other way than through its context, say). For a task that predicts from the window
(favourite category), it then predicts once more with the first fit kept, from data whose events before
each test input window hold other random items: a method whose predictions change read past its window. A method that fails is reported too."""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import Dataset
from bench.data.views import before_windows, visible_view, window_only
from bench.data.windows import Examples
from bench.evaluation import Predictions, score_examples
from bench.spec import TrialSpec
from bench.tasks import Task
from bench.trial import prepare_trial


@dataclass
class LeakageResult:
    """What the check found for one trial: how many test examples changed, the first of them, or the
    error the method raised."""

    method: str
    examples: int
    changed: int
    first: dict[str, Any] | None
    error: str | None = None
    past_window: int = 0  # test predictions that changed with the events before their windows replaced

    @property
    def leaks(self) -> bool:
        return self.changed > 0 or self.past_window > 0


def corrupted(dataset: Dataset, label_positions: np.ndarray, task: Task, seed: int) -> Dataset:
    """A copy of ``dataset`` whose label events at ``label_positions`` are corrupted as ``task`` says
    (another random item, or another review text)."""
    return Dataset(dataset.name, task.corrupted_events(dataset, label_positions, seed), dataset.items, dataset.notes)


def corrupted_before_windows(dataset: Dataset, examples: Examples, seed: int) -> Dataset:
    """A copy of ``dataset`` whose events before each of ``examples``' input windows (of its user) hold
    another random item."""
    positions = np.flatnonzero(before_windows(dataset, examples))
    events = dataset.events.copy()
    shift = np.random.default_rng(seed).integers(1, dataset.n_items, len(positions))
    events.loc[positions, "item"] = ((events["item"].to_numpy()[positions] + shift) % dataset.n_items).astype(np.int32)
    return Dataset(dataset.name, events, dataset.items, dataset.notes)


def _rows(predictions: Any) -> list[Any]:
    if not isinstance(predictions, Predictions):
        raise TypeError(f"predict returned {type(predictions).__name__}; expected bench.evaluation.Predictions")
    if predictions.texts is not None:
        return list(predictions.texts)
    return list(np.asarray(predictions.scores if predictions.scores is not None else predictions.ranked))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def check_leakage(spec: TrialSpec | Mapping[str, Any], workdir: Path, shared_cache: Path) -> LeakageResult:
    """Fit the trial ``spec`` and predict its test examples, then again on data whose test label events
    were replaced; compare the predictions."""
    spec = TrialSpec.of(spec)
    trial = prepare_trial(spec, workdir, shared_cache)
    test = trial.test
    try:
        trial.method.fit(trial.ctx)
        predictions = trial.predict_test(test)
        score_examples(trial.ctx.scoring, trial.labelled, test, predictions)  # scorable at all?
        honest = _rows(predictions)
        past_rows = honest
        if trial.ctx.task.predicts_from_window:
            past = corrupted_before_windows(trial.labelled, trial.split.test, spec.seed + 1)
            view = window_only(visible_view(past, trial.split.test_end, trial.ctx.task.label_event_is_input), trial.split.test)
            past_rows = _rows(trial.method.predict(dataclasses.replace(trial.test_ctx, dataset=view), test))
        source = corrupted(trial.labelled, trial.split.test.label_positions, trial.ctx.task, spec.seed)
        probe = prepare_trial(spec, workdir, shared_cache, dataset=source)
        probe.method.fit(probe.ctx)
        probed = _rows(probe.predict_test(test))
    except Exception as exc:  # the method's own failure: reported, not a traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return LeakageResult(spec.method, len(test), 0, None,
                             f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
    changed = [i for i, (a, b) in enumerate(zip(honest, probed, strict=True)) if not _same(a, b)]
    past_window = sum(not _same(a, b) for a, b in zip(honest, past_rows, strict=True))
    first = None
    if changed:
        i = changed[0]
        first = {"example": i, "user": int(test.users[i]), "label_position": int(test.label_positions[i])}
    return LeakageResult(spec.method, len(test), len(changed), first, past_window=past_window)
