"""Item co-occurrence: a heuristic floor above popularity. Each training window's label is counted after
each of the window's last ``span`` items, weighted 1/distance; a user's next items are scored by the same
weighted vote of their own last ``span`` items (ties broken by popularity). No training loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.registry import Method, register_method

TIE_BREAK = 1e-6


@register_method("cooccurrence")
class Cooccurrence(Method):
    tasks = ("next_item",)
    reads = ("item ids",)
    supervision = "all positions"
    windows = ("exact", "prefixes")

    @dataclass(frozen=True)
    class Params:
        span: int = 5  # how many of the most recent events vote

        def __post_init__(self) -> None:
            if self.span < 1:
                raise ValueError(f"span must be >= 1, got {self.span}")

    def _votes(self, ctx: TrialContext, examples: Examples) -> sp.csr_matrix:
        """[n_examples, n_items] weights 1/distance of each example's last ``span`` items (of a window
        shorter than ``span``, its events only)."""
        span = min(self.params.span, ctx.seq_len)
        distance = np.arange(1, span + 1)
        back = examples.label_positions[:, None] - distance
        inside = back >= examples.starts[:, None]  # a prefix shorter than span votes with its own events only
        rows = np.repeat(np.arange(len(examples)), span)
        items = ctx.dataset.item[np.maximum(back, examples.starts[:, None])]
        matrix = sp.csr_matrix((np.where(inside, 1.0 / distance, 0.0).ravel(), (rows, items.ravel())),
                               shape=(len(examples), ctx.dataset.n_items))
        matrix.eliminate_zeros()
        return matrix

    def fit(self, ctx: TrialContext) -> None:
        train = ctx.train
        labels = ctx.labels(train)
        votes = self._votes(ctx, train)
        outcome = sp.csr_matrix((np.ones(len(train)), (np.arange(len(train)), labels)),
                                shape=(len(train), ctx.dataset.n_items))
        self.counts = (votes.T @ outcome).tocsr()  # [previous item, next item]
        popularity = np.bincount(labels, minlength=ctx.dataset.n_items)
        self.prior = TIE_BREAK * popularity / max(1, popularity.max())

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        scores = (self._votes(ctx, examples) @ self.counts).toarray() + self.prior
        return Predictions(scores=scores)

    def accounting(self, ctx: TrialContext) -> dict:
        return {"params_total": int(self.counts.nnz), "params_trainable": 0, "train_steps": 1}
