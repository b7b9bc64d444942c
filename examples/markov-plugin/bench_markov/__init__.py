"""A third-party method for userllm-bench, discovered through the ``userllm_bench.methods`` entry point.

First-order Markov chain: score each item by how often it followed the window's last item in the
training labels, smoothed toward popularity. The harness does the split, exclusion and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from bench.api import Examples, Method, Predictions, TrialContext


class MarkovChain(Method):
    tasks = ("next_item",)
    reads = ("item ids",)
    supervision = "last"  # the label after each training window's last event

    @dataclass(frozen=True)
    class Params:
        smoothing: float = 0.1  # weight of the popularity prior

        def __post_init__(self) -> None:
            if self.smoothing < 0:
                raise ValueError(f"smoothing must be >= 0, got {self.smoothing}")

    def fit(self, ctx: TrialContext) -> None:
        train = ctx.train
        n = ctx.dataset.n_items
        last = ctx.dataset.item[train.label_positions - 1]
        label = ctx.dataset.item[train.label_positions]
        self.transitions = sparse.csr_matrix((np.ones(len(train), np.float32), (last, label)), shape=(n, n))
        self.popularity = np.bincount(label, minlength=n).astype(np.float32) / max(1, len(train))

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        last = ctx.dataset.item[examples.label_positions - 1]
        rows = np.asarray(self.transitions[last].todense())
        totals = rows.sum(axis=1, keepdims=True)
        scores = rows / np.maximum(totals, 1) + self.params.smoothing * self.popularity
        return Predictions(scores=scores)

    def accounting(self, ctx: TrialContext) -> dict:
        return {"params_total": int(self.transitions.nnz + len(self.popularity)), "params_trainable": 0,
                "train_steps": 1}
