"""``bench check-leakage``: methods may see test examples only through ``predict``'s inputs. The check fits
a method once, then predicts the test examples twice: on the true data, and on a copy of the dataset in
which every test label event's item (next_item, fav_category) or review text (review_gen, whose inputs
include the next item by design) is replaced by a random one. Any changed prediction is a leak."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import Dataset
from bench.evaluation import Predictions
from bench.trial import prepare_trial

CORRUPT_REVIEW = "zzz leakage probe"


@dataclass
class LeakageResult:
    """What the check found for one trial: how many test examples changed, and the first of them."""

    method: str
    examples: int
    changed: int
    first: dict[str, Any] | None

    @property
    def leaks(self) -> bool:
        return self.changed > 0


def corrupted(dataset: Dataset, label_positions: np.ndarray, task: str, seed: int) -> Dataset:
    """A copy of ``dataset`` whose events at ``label_positions`` hold another random item (or review text)."""
    events = dataset.events.copy()
    rng = np.random.default_rng(seed)
    if task == "review_gen":
        events.loc[label_positions, "review"] = CORRUPT_REVIEW
    else:
        true = events["item"].to_numpy()[label_positions]
        shift = rng.integers(1, dataset.n_items, len(label_positions))
        events.loc[label_positions, "item"] = ((true + shift) % dataset.n_items).astype(np.int32)
    return Dataset(dataset.name, events, dataset.items, dataset.notes)


def _rows(predictions: Predictions) -> list[Any]:
    if predictions.texts is not None:
        return list(predictions.texts)
    return list(np.asarray(predictions.scores if predictions.scores is not None else predictions.ranked))


def check_leakage(spec: dict[str, Any], workdir: Path, shared_cache: Path) -> LeakageResult:
    """Fit the trial ``spec``, predict its test examples on true and on corrupted label events, compare."""
    trial = prepare_trial(spec, workdir, shared_cache)
    trial.method.fit(trial.ctx)
    test = trial.test
    honest = _rows(trial.predict(test))
    probe = dataclasses.replace(trial.ctx, dataset=corrupted(trial.ctx.dataset, test.label_positions,
                                                             spec["task"], spec["seed"]))
    probed = _rows(trial.method.predict(probe, test))
    changed = [i for i, (a, b) in enumerate(zip(honest, probed, strict=True)) if not np.array_equal(a, b)]
    first = None
    if changed:
        i = changed[0]
        first = {"example": i, "user": int(test.users[i]), "label_position": int(test.label_positions[i])}
    return LeakageResult(spec["method"], len(test), len(changed), first)
