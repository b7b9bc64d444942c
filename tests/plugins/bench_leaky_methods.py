"""Four methods that try to score on labels they must not see (issue #28): each must fail to reach a label
with a clear error, or be flagged by ``bench check-leakage``."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from bench.api import Examples, Method, Predictions, TrialContext, register_method


def _answer(items: np.ndarray) -> Predictions:
    return Predictions(ranked=np.asarray(items)[:, None].repeat(10, axis=1))


@register_method("leak_split_test")
class ReadsSplitTest(Method):
    """Reads the test examples and their labels from the context's split in ``fit``."""

    tasks = ("next_item",)

    def fit(self, ctx: TrialContext) -> None:
        test = ctx.split.test
        self.answers = dict(zip(test.users.tolist(), ctx.dataset.item[test.label_positions].tolist()))

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return _answer([self.answers.get(u, 0) for u in examples.users.tolist()])


@register_method("leak_kept_dataset")
class KeepsDataset(Method):
    """Keeps the dataset's item array from ``fit`` and reads the label position in ``predict``."""

    tasks = ("next_item",)

    def fit(self, ctx: TrialContext) -> None:
        self.items = ctx.dataset.item

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return _answer(self.items[examples.label_positions])


@register_method("leak_validation_dataset")
class ReadsValidationData(Method):
    """Reads the labels through the harness's validation object."""

    tasks = ("next_item",)

    def fit(self, ctx: TrialContext) -> None:
        self.items = ctx.validation.dataset.item

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return _answer(self.items[examples.label_positions])


@register_method("leak_markov_all_events")
class MarkovOverAllEvents(Method):
    """An honest-looking bug: a first-order Markov chain counted over every event of the dataset (test
    transitions included), not over the training windows."""

    tasks = ("next_item",)

    def fit(self, ctx: TrialContext) -> None:
        n, items, users = ctx.dataset.n_items, ctx.dataset.item, ctx.dataset.events["user"].to_numpy()
        same_user = users[1:] == users[:-1]
        self.transitions = sparse.csr_matrix((np.ones(int(same_user.sum())), (items[:-1][same_user], items[1:][same_user])),
                                             shape=(n, n))

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        last = ctx.dataset.item[examples.label_positions - 1]
        return Predictions(scores=np.asarray(self.transitions[last].todense(), dtype=np.float32))
