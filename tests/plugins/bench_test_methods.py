"""Methods for harness tests, registered through a suite's ``plugins:`` list."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.api import Examples, Method, Predictions, TrialContext, register_method


@register_method("test_constant")
class Constant(Method):
    """Ranks candidates by id after sleeping ``seconds`` (and until the file ``until`` exists, if given);
    raises in fit when ``fail`` is set."""

    @dataclass(frozen=True)
    class Params:
        seconds: float = 0.0
        fail: bool = False
        until: str = ""

        def __post_init__(self) -> None:
            if self.seconds < 0:
                raise ValueError(f"seconds must be >= 0, got {self.seconds}")

    def fit(self, ctx: TrialContext) -> None:
        time.sleep(self.params.seconds)
        while self.params.until and not Path(self.params.until).exists():
            time.sleep(0.1)
        if self.params.fail:
            raise RuntimeError("injected failure")

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        n = ctx.task.n_candidates(ctx.dataset)
        return Predictions(scores=np.broadcast_to(-np.arange(n, dtype=np.float32), (len(examples), n)))


@register_method("test_bad_predictions")
class BadPredictions(Method):
    """Predictions the harness must refuse: NaN scores, a scores matrix of the wrong width, ids out of range."""

    @dataclass(frozen=True)
    class Params:
        kind: str = "nan"

    def fit(self, ctx: TrialContext) -> None:
        pass

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        n = ctx.task.n_candidates(ctx.dataset)
        if self.params.kind == "nan":
            return Predictions(scores=np.full((len(examples), n), np.nan))
        if self.params.kind == "width":
            return Predictions(scores=np.zeros((len(examples), n - 1)))
        return Predictions(ranked=np.full((len(examples), 10), n))


@register_method("test_leaky")
class Leaky(Method):
    """Reads the test labels through the dataset: what ``bench check-leakage`` must catch."""

    def fit(self, ctx: TrialContext) -> None:
        pass

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return Predictions(ranked=ctx.dataset.item[examples.label_positions][:, None].repeat(10, axis=1))


@register_method("test_reads_source")
class ReadsSource(Method):
    """Digs past its context: finds the harness's own trial object among the live objects and reads the
    test labels from its labelled dataset. No view can stop that; ``bench check-leakage``'s refit probe must catch it."""

    def fit(self, ctx: TrialContext) -> None:
        import gc

        from bench.trial import PreparedTrial

        trial = next(obj for obj in gc.get_objects() if isinstance(obj, PreparedTrial) and obj.ctx is ctx)
        self.items = trial.labelled.item

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return Predictions(ranked=self.items[examples.label_positions][:, None].repeat(10, axis=1))


@register_method("test_faulty")
class Faulty(Method):
    """Breaks its contract one way (``kind``): predict returns None or a bare array, accounting returns a set,
    or fit never returns."""

    @dataclass(frozen=True)
    class Params:
        kind: str = "none"

    def fit(self, ctx: TrialContext) -> None:
        while self.params.kind == "hang":
            time.sleep(1)

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        n = ctx.task.n_candidates(ctx.dataset)
        if self.params.kind == "none":
            return None
        if self.params.kind == "array":
            return np.zeros((len(examples), n))
        return Predictions(scores=np.zeros((len(examples), n), np.float32))

    def accounting(self, ctx: TrialContext) -> dict:
        return {"train_steps", "params_total"} if self.params.kind == "set" else {}


@register_method("test_memory_hog")
class MemoryHog(Method):
    """Holds ``gb`` more resident memory, 100 MB at a time, in fit: what Ray's memory monitor stops."""

    @dataclass(frozen=True)
    class Params:
        gb: float = 6.0

    def fit(self, ctx: TrialContext) -> None:
        self.blocks = []
        for _ in range(int(self.params.gb * 10)):
            self.blocks.append(np.ones(100_000_000 // 8))
            time.sleep(0.05)

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return Predictions(ranked=np.tile(np.arange(10), (len(examples), 1)))


@register_method("test_history_counter")
class HistoryCounter(Method):
    """A cheat at favourite category: counts categories over every visible event of the user before the
    label, not its window (skipping hidden events, as a careful cheat would)."""

    tasks = ("fav_category",)
    reads = ("categories",)

    def fit(self, ctx: TrialContext) -> None:
        pass

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        dataset, (ptr, ids) = ctx.dataset, ctx.dataset.item_categories
        scores = np.zeros((len(examples), len(dataset.categories)))
        for row, (user, end) in enumerate(zip(examples.users, examples.label_positions)):
            items = dataset.item[dataset.user_ptr[user]:end]
            for item in items[items < dataset.n_items]:
                scores[row, ids[ptr[item]:ptr[item + 1]]] += 1
        return Predictions(scores=scores)


@register_method("test_zero")
class Zero(Method):
    """Scores every candidate 0: ties everywhere."""

    def fit(self, ctx: TrialContext) -> None:
        pass

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return Predictions(scores=np.zeros((len(examples), ctx.task.n_candidates(ctx.dataset))))
