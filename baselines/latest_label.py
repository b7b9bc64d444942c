"""Latest training label: each user's label is the label of their latest training window (then, for a
user with none, and below it, the labels' popularity). The reference row for per-user memorisation:
where a task's label changes little from one window to the next (favourite category: 96.5% of ml-100k's
test labels at N = 50 equal the latest training window's), a method can score high by remembering users,
not by reading their window; this row says how high."""

from __future__ import annotations

import numpy as np

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.registry import Method, register_method


@register_method("latest_label")
class LatestLabel(Method):
    tasks = ("next_item", "fav_category")
    reads = ()
    supervision = "user's labels"

    def fit(self, ctx: TrialContext) -> None:
        labels = ctx.labels(ctx.train)
        n_candidates = ctx.task.n_candidates(ctx.dataset)
        self.popularity = np.bincount(labels, minlength=n_candidates) / max(1, len(labels))
        self.latest = np.full(ctx.dataset.n_users, -1, dtype=np.int64)
        order = np.argsort(ctx.train.label_positions, kind="stable")  # the latest window of a user comes last
        self.latest[ctx.train.users[order]] = labels[order]

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        scores = np.tile(self.popularity, (len(examples), 1))
        latest = self.latest[examples.users]
        known = latest >= 0
        scores[np.flatnonzero(known), latest[known]] = 2.0  # above every popularity share (at most 1)
        return Predictions(scores=scores)

    def accounting(self, ctx: TrialContext) -> dict:
        return {"params_total": int(len(self.popularity) + len(self.latest)), "params_trainable": 0, "train_steps": 0}
