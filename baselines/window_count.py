"""Window count: the favourite-category counting rule applied to the input window, with no training.
The reference row beside fav_category's learned methods: under the window label (``protocol.favorite:
window``) it is the ceiling (1.0 by construction); under the paper's history label it says how much of
the label the window alone gives away."""

from __future__ import annotations

import numpy as np

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.registry import Method, register_method


@register_method("window_count")
class WindowCount(Method):
    tasks = ("fav_category",)
    reads = ("categories",)

    def fit(self, ctx: TrialContext) -> None:
        ptr, ids = ctx.dataset.item_categories
        self.ptr, self.ids = ptr, ids

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        """Per category: its count in the window plus a fraction < 1 that grows with its latest sighting and
        a smaller one that falls with its id, so the ranking is the counting rule's (count, then most recent,
        then lower id) with no tie left to the harness."""
        n_cat, n = len(ctx.dataset.categories), examples.seq_len
        items = ctx.dataset.item[examples.positions()]  # [b, n]
        per_event = np.diff(self.ptr)[items]
        rows = np.repeat(np.repeat(np.arange(len(examples)), n), per_event.ravel())
        where = np.repeat(np.tile(np.arange(n), len(examples)), per_event.ravel())
        first = np.repeat(self.ptr[items.ravel()], per_event.ravel())
        category = self.ids[first + np.arange(len(first)) - np.repeat(np.cumsum(per_event.ravel()) - per_event.ravel(),
                                                                       per_event.ravel())]
        counts = np.zeros((len(examples), n_cat))
        latest = np.full((len(examples), n_cat), -1.0)
        np.add.at(counts, (rows, category), 1.0)
        np.maximum.at(latest, (rows, category), where)
        lower_id = (n_cat - np.arange(n_cat)) / ((n_cat + 1) * (n + 1))
        return Predictions(scores=counts + (latest + 1) / (n + 1) + lower_id)

    def accounting(self, ctx: TrialContext) -> dict:
        return {"params_total": 0, "params_trainable": 0, "train_steps": 0}
