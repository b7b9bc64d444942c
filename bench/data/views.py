"""What a method may see of a dataset: each user's events before a cut, every later event hidden. The
cuts come from the split (``Split.fit_end``, ``Split.test_end``): under leave-one-out a user's last two
events, or last one; under a temporal split every event at or after the global cut.

A view keeps every row, so an example (an offset into the event arrays) means the same in every view.
A hidden event's item is ``dataset.n_items`` (one past the catalog: any lookup by it fails loudly
instead of reading a label), its rating and timestamp are -1 and its review is empty. The harness hands
``fit`` and the validation checks the view that hides each user's validation and test label events;
test predictions get the view that hides each user's test label event, and, for a task whose label counts
the user's whole history (favourite category), every event before the test input window too
(``window_only``): there the input window is all a prediction reads of a user. Next item keeps the
earlier events visible: the history exclusion removes them from the ranking, and a method that returns
a ranked list needs them to avoid wasting its places. A task whose inputs include the
label event's item by design (review_gen: "write the review of <item>, rated <r>") keeps that event's
item and rating visible and hides its review.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples


def hidden_item(dataset: Dataset) -> int:
    """The item id a hidden event holds."""
    return dataset.n_items


def visible_view(dataset: Dataset, ends: np.ndarray, label_item_visible: bool = False) -> Dataset:
    """``dataset`` with each user's events from position ``ends[user]`` on hidden (``Split.fit_end`` for
    the fit view, ``Split.test_end`` for the test view). With ``label_item_visible`` the first hidden
    event of each user (the label of the examples this view serves) keeps its item and rating; only its
    review is hidden."""
    ptr = dataset.user_ptr
    start = np.repeat(np.asarray(ends, dtype=np.int64), np.diff(ptr))
    position = np.arange(ptr[-1], dtype=np.int64)
    hidden = position >= start
    keep_item = hidden & (position == start) if label_item_visible else np.zeros_like(hidden)
    return _hidden(dataset, hidden, keep_item)


def window_only(view: Dataset, examples: Examples) -> Dataset:
    """``view`` with every event of an example's user before its input window hidden too: what a method
    sees when it predicts ``examples`` (one per user), its window and nothing before it. A method that
    remembers a user's training windows from ``fit`` still can; the ``latest_label`` row shows how far
    that goes."""
    before = before_windows(view, examples)
    return _hidden(view, before, np.zeros_like(before))


def before_windows(dataset: Dataset, examples: Examples) -> np.ndarray:
    """Mask of the events of each example's user before its input window, bool [events]."""
    marks = np.zeros(len(dataset.events) + 1, dtype=np.int64)
    np.add.at(marks, dataset.user_ptr[examples.users], 1)
    np.add.at(marks, examples.starts, -1)
    return np.cumsum(marks)[:-1] > 0


def _hidden(dataset: Dataset, hidden: np.ndarray, keep_item: np.ndarray) -> Dataset:
    """``dataset`` with the events of mask ``hidden`` hidden (those of ``keep_item`` keep item and rating)."""
    events = dataset.events.copy()
    events["item"] = np.where(hidden & ~keep_item, hidden_item(dataset), events["item"].to_numpy()).astype(np.int32)
    events["rating"] = np.where(hidden & ~keep_item, np.float32(-1), events["rating"].to_numpy()).astype(np.float32)
    events["timestamp"] = np.where(hidden & ~keep_item, -1, events["timestamp"].to_numpy())
    if "review" in events.columns:
        events["review"] = np.where(hidden, "", events["review"].to_numpy()).astype(object)
    view = replace(dataset, events=events)
    view.__dict__["categories"] = dataset.categories  # the catalog is shared: no need to rebuild it
    return view
