"""Popularity: rank items (or categories) by how often they occur in the training windows' labels.
The floor every learned method must beat."""

from __future__ import annotations

import numpy as np

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.registry import Method, register_method


@register_method("popularity")
class Popularity(Method):
    tasks = ("next_item", "fav_category")
    supervision = "labels"
    windows = ("exact", "prefixes")  # reads the training labels only

    def fit(self, ctx: TrialContext) -> None:
        labels = ctx.labels(ctx.train)
        counts = np.bincount(labels, minlength=ctx.task.n_candidates(ctx.dataset)).astype(np.float64)
        self.scores = counts / max(1, counts.sum())

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return Predictions(scores=np.broadcast_to(self.scores, (len(examples), len(self.scores))))

    def accounting(self, ctx: TrialContext) -> dict:
        return {"params_total": len(self.scores), "params_trainable": 0, "train_steps": 1}
