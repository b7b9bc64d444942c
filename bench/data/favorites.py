"""Favourite-category labels: the most frequent category in a range of events (each of an item's
categories counts); ties go to the category seen most recently, then to the lower category id. The
range is the user's whole history before the label (the paper's definition, ``history_favorites``) or
the input window of N events (``window_favorites``).

Two exact implementations of that one rule:
- ``favorite_categories``: any windows, one sort of a packed key over their events (N x categories
  per event work per window);
- ``range_favorite_categories``: ranges as start and end offsets, from per-category running counts
  and last-seen positions over blocks of the event arrays, so overlapping ranges share the work
  (events x categories in all: 15M MovieLens-20M training windows in seconds, not minutes).
``window_favorites`` picks the second for dense windows over few categories (MovieLens' 20 genres).
"""

from __future__ import annotations

import numpy as np

from bench.data.dataset import Dataset
from bench.data.windows import Examples

CHUNK = 65_536  # windows per call of the sort-based labeller
BLOCK_CELLS = 1 << 22  # categories x events per block of the range labeller (16 MB per int32 array)
SLIDING_MAX_CATEGORIES = 128  # above this the sort-based one does less work


def window_favorites(dataset: Dataset, examples: Examples) -> np.ndarray:
    """The favourite category of each example's input window, int32 [len(examples)]: sliding where the
    windows cover the events densely (training windows) and categories are few, else by sorting."""
    dense = len(examples) * examples.seq_len >= len(dataset.item)
    if dense and len(dataset.categories) <= SLIDING_MAX_CATEGORIES:
        return sliding_favorite_categories(dataset, examples.starts, examples.seq_len)
    out = np.empty(len(examples), dtype=np.int32)
    for lo in range(0, len(examples), CHUNK):
        chunk = slice(lo, lo + CHUNK)
        out[chunk] = favorite_categories(dataset, examples.positions(chunk))
    return out


def favorite_categories(dataset: Dataset, positions: np.ndarray) -> np.ndarray:
    """Most frequent category id per row of event positions [b, N].

    Ties go to the category seen most recently; a tie that remains (two categories of the same
    event) goes to the lower category id. One sort of a packed int64 key, no Python loop.
    """
    b, n = positions.shape
    n_cat, span = len(dataset.categories), n + 1
    ptr, cat_ids = dataset.item_categories
    items = dataset.item[positions].ravel()
    per_event = np.diff(ptr)[items]
    event = np.repeat(np.arange(b * n, dtype=np.int64), per_event)
    first = np.repeat(ptr[items] - np.cumsum(per_event) + per_event, per_event)
    category = cat_ids[first + np.arange(len(event))].astype(np.int64)

    key = np.sort(((event // n) * n_cat + category) * span + event % n)
    group = key // span
    ends = np.flatnonzero(np.r_[group[1:] != group[:-1], True])
    score = np.diff(np.r_[-1, ends]) * span + key[ends] % span  # count first, then latest position
    window, category = group[ends] // n_cat, group[ends] % n_cat
    window_starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    best = np.maximum.reduceat(score, window_starts)
    is_best = score == np.repeat(best, np.diff(np.r_[window_starts, len(window)]))
    winners = np.flatnonzero(is_best)
    first_winner = winners[np.r_[True, window[winners][1:] != window[winners][:-1]]]
    return category[first_winner].astype(np.int32)


def history_favorites(dataset: Dataset, examples: Examples) -> np.ndarray:
    """The favourite category of everything each example's user did before its label (the paper's "the
    one with the highest frequency in the user's history"), by the same rule as ``favorite_categories``."""
    first = dataset.user_ptr[examples.users]
    return range_favorite_categories(dataset, first, examples.label_positions)


def sliding_favorite_categories(dataset: Dataset, starts: np.ndarray, n: int) -> np.ndarray:
    """Favourite category of the windows [start, start + n), exactly as ``favorite_categories``."""
    return range_favorite_categories(dataset, starts, starts + n)


def range_favorite_categories(dataset: Dataset, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Favourite category of the event ranges [start, end), exactly as ``favorite_categories``: per block
    of events, running per-category counts and last-seen positions (categories x events, each row
    contiguous); a range's counts are the difference of two columns, its latest sighting one column, so
    overlapping ranges share the work."""
    n_cat = len(dataset.categories)
    span = np.int64(int((ends - starts).max(initial=0)) + 1)
    block = max(256, BLOCK_CELLS // max(1, n_cat))
    ptr, cat_ids = dataset.item_categories
    # how often an item lists a category; a last, empty column for the hidden events of a view, which a
    # block may span between two users' ranges but no range counts
    per_item = np.zeros((n_cat, dataset.n_items + 1), dtype=np.uint8)
    np.add.at(per_item, (cat_ids, np.repeat(np.arange(dataset.n_items), np.diff(ptr))), 1)
    out = np.empty(len(starts), dtype=np.int32)
    order = np.argsort(starts, kind="stable")
    sorted_starts, sorted_ends = starts[order], ends[order]
    total = len(dataset.item)
    for block_lo in range(0, total, block):
        lo_i, hi_i = np.searchsorted(sorted_starts, [block_lo, block_lo + block])
        if lo_i == hi_i:
            continue
        a, b = block_lo, int(sorted_ends[lo_i:hi_i].max())
        present = per_item[:, dataset.item[a:b]]  # [n_cat, b - a]
        running = np.zeros((n_cat, b - a + 1), dtype=np.int32)
        np.cumsum(present, axis=1, dtype=np.int32, out=running[:, 1:])
        seen = np.where(present > 0, np.arange(b - a, dtype=np.int32), np.int32(-1))
        np.maximum.accumulate(seen, axis=1, out=seen)
        local, local_end = sorted_starts[lo_i:hi_i] - a, sorted_ends[lo_i:hi_i] - a
        in_range = running[:, local_end] - running[:, local]
        latest = (seen[:, local_end - 1] - local).astype(np.int64)
        score = np.where(in_range > 0, in_range * span + latest, -1)
        out[order[lo_i:hi_i]] = score.argmax(axis=0)  # the first maximum: the lower category id
    return out
