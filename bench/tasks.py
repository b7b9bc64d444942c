"""The three tasks of the paper, each with all it knows: what the label of an example is, what a
ranking ranges over (its candidates and their names), the question an LLM is asked and the answer it
should write, how the leakage probe corrupts a label, and how predictions are scored (its protocol,
whose metric comes from ``bench.metrics``' registry).

Each task declares its evaluation protocol, which is recorded with every result, so that two numbers
are only ever compared when they were computed the same way. Methods and the harness read a task
through this interface and never branch on its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bench.data.dataset import Dataset
from bench.data.favorites import history_favorites, window_favorites
from bench.data.registry import DATASETS
from bench.data.windows import SPLIT_KINDS, WINDOW_KINDS, Examples
from bench.errors import ConfigError
from bench.metrics import get_metric
from bench.named import Registry

EXCLUDE = ("history", "window", "none")
FAVORITE_SCOPES = ("history", "window")


@dataclass(frozen=True)
class Protocol:
    """How a task's predictions are turned into metrics."""

    metric: str  # the metric a check selects on by default ("recall": ranked ids, "rouge_lsum": text; its k: the task)
    ks: tuple[int, ...] = ()
    candidates: str = ""  # "catalog" (every item) | "categories" | "" for text
    # items removed from a ranking before cutting at k: "history" (everything the user did before the
    # label, as RecBole's full-sort evaluator does), "window" (the input window's items) or "none"
    exclude_history: str = "none"
    favorite: str = ""  # fav_category: the favourite over the user's "history" up to the label, or the "window"
    primary: str = ""  # the metric validation checks and summaries rank by ("": the task's default)
    split: str = "leave_one_out"  # how examples are cut from the timeline (``bench.data.windows.SPLIT_KINDS``)
    windows: str = "exact"  # training windows: exactly N events, or every prefix (``WINDOW_KINDS``)

    def __post_init__(self) -> None:
        exclude = {True: "history", False: "none"}.get(self.exclude_history, self.exclude_history)
        object.__setattr__(self, "exclude_history", exclude)  # records before 2026-12 held a bool
        if exclude not in EXCLUDE:
            raise ConfigError(f"protocol.exclude_history: got {exclude!r}; expected one of {', '.join(EXCLUDE)}")
        if self.favorite and self.favorite not in FAVORITE_SCOPES:
            raise ConfigError(f"protocol.favorite: got {self.favorite!r}; expected one of {', '.join(FAVORITE_SCOPES)}")
        if self.split not in SPLIT_KINDS:
            raise ConfigError(f"protocol.split: got {self.split!r}; expected one of {', '.join(SPLIT_KINDS)}")
        if self.windows not in WINDOW_KINDS:
            raise ConfigError(f"protocol.windows: got {self.windows!r}; expected one of {', '.join(WINDOW_KINDS)}")

        get_metric(self.metric)

    def to_dict(self) -> dict:
        """The protocol as records keep it (``primary``, ``split`` and ``windows`` only where a suite set
        them, so the trial ids of suites that do not are those from before they existed)."""
        out = asdict(self)
        for key, default in (("primary", ""), ("split", "leave_one_out"), ("windows", "exact")):
            if out[key] == default:
                del out[key]
        return out


def rating_texts(dataset: Dataset, positions: np.ndarray) -> np.ndarray:
    """The ratings of the events at ``positions`` as text ("4", "4.5"), shaped like ``positions``."""
    values, inverse = np.unique(dataset.rating[positions], return_inverse=True)
    return np.array([f"{value:g}" for value in values], dtype=object)[inverse].reshape(positions.shape)


class Task(ABC):
    """A prediction task over windows of events."""

    name: str
    description: str
    question: str  # what an LLM is asked after the user's history (its answer follows)
    metrics: tuple[str, ...]  # registered metrics (bench.metrics) the task reports, each at every k of a ranking
    label_event_is_input: bool = False  # the label event's item and rating are part of the input (review_gen)
    predicts_from_window: bool = False  # test predictions see the input window and nothing before it (a label
    # counted over the whole history, which a method could otherwise count itself)
    feature: str | None = None  # the event feature a label id indexes ("item", "category"); None: text labels

    @abstractmethod
    def protocol(self, **overrides) -> Protocol:
        """The task's protocol, with suite overrides (e.g. ks, exclude_history) applied."""

    @abstractmethod
    def labels(self, dataset: Dataset, examples: Examples, protocol: Protocol | None = None) -> np.ndarray:
        """One label per example: an item id, a category id, or the reference text (under ``protocol``,
        where the task has options; None: the task's default protocol)."""

    @property
    def generates_text(self) -> bool:
        """Whether predictions are texts (scored against references) rather than rankings of ids."""
        return self.feature is None

    def n_candidates(self, dataset: Dataset) -> int:
        """How many ids a ranking for this task ranges over (0 for text tasks)."""
        return 0

    def candidate_names(self, dataset: Dataset) -> list[str]:
        """The name of every candidate id, as an LLM writes it (empty for text tasks)."""
        return []

    def questions(self, dataset: Dataset, label_positions: np.ndarray, item_text: np.ndarray) -> np.ndarray:
        """The question for each label event [b] (object array of str); ``item_text``: each item as text."""
        return np.full(len(label_positions), self.question, dtype=object)

    def answer_texts(self, dataset: Dataset, labels: np.ndarray) -> list[str]:
        """The answer an LLM should write for each label: a candidate's name, or the reference text."""
        names = np.asarray(self.candidate_names(dataset), dtype=object)
        return names[labels].tolist()

    def corrupted_events(self, dataset: Dataset, label_positions: np.ndarray, seed: int) -> pd.DataFrame:
        """The dataset's events with every label event at ``label_positions`` holding another random item
        (the leakage probe: a method that cannot see labels predicts the same)."""
        events = dataset.events.copy()
        true = events["item"].to_numpy()[label_positions]
        shift = np.random.default_rng(seed).integers(1, dataset.n_items, len(label_positions))
        events.loc[label_positions, "item"] = ((true + shift) % dataset.n_items).astype(np.int32)
        return events

    def metric_names(self, protocol: Protocol) -> list[str]:
        """Every value this task reports under ``protocol`` (what validation and a search may select on)."""
        return [name for metric in self.metrics for name in get_metric(metric).names(protocol.ks)]

    def primary_metric(self, protocol: Protocol) -> str:
        """The metric validation checks compare and summaries sort by: the protocol's ``primary`` where a
        suite names one, else the task's default."""
        return protocol.primary or self.default_primary(protocol)

    def default_primary(self, protocol: Protocol) -> str:
        """The protocol's metric (``Protocol.metric``) at k = 10, else at the largest k (a metric without
        cut-offs as it is: rouge_lsum)."""
        ks = (10 if 10 in protocol.ks else max(protocol.ks),) if protocol.ks else ()
        return get_metric(protocol.metric).names(ks)[0]

    def under(self, protocol: Protocol) -> Scoring:
        """This task under ``protocol``: the one value scoring takes."""
        return Scoring(self, protocol)

    def usable(self, dataset: Dataset, examples: Examples) -> np.ndarray:
        """Mask of the examples this task can score (all, unless a label is missing)."""
        return np.ones(len(examples), dtype=bool)

    def check(self, dataset: Dataset) -> None:
        """Raise ConfigError when the dataset cannot support this task."""


class NextItem(Task):
    name = "next_item"
    description = "predict the next item; recall@k over a full ranking of the catalog"
    question = "Which item will the user interact with next? Answer with its title.\nAnswer:"
    feature = "item"
    metrics = ("recall", "ndcg", "mrr")

    def protocol(self, ks: tuple[int, ...] = (1, 5, 10), exclude_history: str | bool = "history") -> Protocol:
        return Protocol("recall", tuple(ks), "catalog", exclude_history)

    def labels(self, dataset: Dataset, examples: Examples, protocol: Protocol | None = None) -> np.ndarray:
        return dataset.item[examples.label_positions]

    def n_candidates(self, dataset: Dataset) -> int:
        return dataset.n_items

    def candidate_names(self, dataset: Dataset) -> list[str]:
        return dataset.titles

    def answer_texts(self, dataset: Dataset, labels: np.ndarray) -> list[str]:
        return dataset.items["title"].to_numpy()[labels].tolist()


class FavoriteCategory(Task):
    name = "fav_category"
    predicts_from_window = True
    description = ("predict the most frequent category in the user's history up to the label (the paper's "
                   "wording; ties: the most recently seen); recall@k")
    question = "Which category appears most often in the user's history?\nAnswer:"
    feature = "category"
    metrics = ("recall",)

    def protocol(self, ks: tuple[int, ...] = (1, 5, 10), favorite: str = "history") -> Protocol:
        return Protocol("recall", tuple(ks), "categories", "none", favorite)

    def labels(self, dataset: Dataset, examples: Examples, protocol: Protocol | None = None) -> np.ndarray:
        if protocol is not None and protocol.favorite == "window":
            return window_favorites(dataset, examples)
        return history_favorites(dataset, examples)

    def n_candidates(self, dataset: Dataset) -> int:
        return len(dataset.categories)

    def candidate_names(self, dataset: Dataset) -> list[str]:
        return list(dataset.categories)

    def default_primary(self, protocol: Protocol) -> str:
        """The protocol's metric at k = 1 (or the smallest k): a user has one favourite among a few categories."""
        return get_metric(protocol.metric).names((1 if 1 in protocol.ks else min(protocol.ks),))[0]


class ReviewGeneration(Task):
    name = "review_gen"
    description = "write the user's review of the next item (given its title, category and rating); ROUGE-Lsum"
    question = "Write the user's review of {item}, which they rated {rating}.\nReview:"
    metrics = ("rouge_lsum",)
    label_event_is_input = True
    corruption = "zzz leakage probe"  # every test review's text in the leakage probe

    def protocol(self) -> Protocol:
        return Protocol("rouge_lsum")

    def labels(self, dataset: Dataset, examples: Examples, protocol: Protocol | None = None) -> np.ndarray:
        return dataset.events["review"].to_numpy()[examples.label_positions]

    def questions(self, dataset: Dataset, label_positions: np.ndarray, item_text: np.ndarray) -> np.ndarray:
        """The question names the reviewed item and the user's rating of it."""
        before, after = self.question.split("{item}")
        rating, end = after.split("{rating}")
        return (before + item_text[dataset.item[label_positions]] + rating
                + rating_texts(dataset, label_positions) + end)

    def answer_texts(self, dataset: Dataset, labels: np.ndarray) -> list[str]:
        return [str(text) for text in labels]

    def corrupted_events(self, dataset: Dataset, label_positions: np.ndarray, seed: int) -> pd.DataFrame:
        """The events with every label event's review replaced by one fixed text."""
        events = dataset.events.copy()
        events.loc[label_positions, "review"] = self.corruption
        return events

    def usable(self, dataset: Dataset, examples: Examples) -> np.ndarray:
        """Examples whose reference review is not empty (an empty reference has no ROUGE)."""
        return (pd.Series(self.labels(dataset, examples), dtype=object).fillna("").astype(str)
                .str.strip().str.len() > 0).to_numpy()

    def check(self, dataset: Dataset) -> None:
        if not dataset.has_reviews:
            raise ConfigError(f"task review_gen needs review text; dataset {dataset.name} has none "
                              f"(use {' or '.join(s.name for s in DATASETS.values() if s.reviews)})")


@dataclass(frozen=True)
class Scoring:
    """A task under its protocol: what turns a method's predictions into metrics (labels, the metrics and
    their cut-offs, the history exclusion, the primary metric). The two always travel together."""

    task: Task
    protocol: Protocol

    def labels(self, dataset: Dataset, examples: Examples) -> np.ndarray:
        """One label per example under the protocol."""
        return self.task.labels(dataset, examples, self.protocol)

    def metric_names(self) -> list[str]:
        """Every value scored (``recall@10``, ``ndcg@10``, ...)."""
        return self.task.metric_names(self.protocol)

    def primary_metric(self) -> str:
        """The metric validation checks compare and summaries sort by."""
        return self.task.primary_metric(self.protocol)


TASKS: Registry[Task] = Registry("task", ((task.name, task) for task in (NextItem(), FavoriteCategory(), ReviewGeneration())))


def get_task(name: str, where: str = "") -> Task:
    """The task called ``name`` (an error naming ``where`` and the tasks otherwise)."""
    return TASKS.lookup(name, where)
