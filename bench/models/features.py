"""Event features of windows as tensors: item, category bag, rating bucket. Built per batch from the
dataset's flat arrays, so a window is never materialised outside the batch that uses it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.data.dataset import Dataset

RATING_BUCKETS = 11  # ratings 0..5 in steps of 0.5


@dataclass(frozen=True)
class FeatureSpace:
    """Vocabulary sizes and the padded item -> categories table of a dataset."""

    n_items: int
    n_categories: int
    item_categories: torch.Tensor  # long [n_items, max_categories], padded with n_categories
    primary_category: torch.Tensor  # long [n_items]

    @classmethod
    def of(cls, dataset: Dataset) -> FeatureSpace:
        ptr, ids = dataset.item_categories
        lengths = np.diff(ptr)
        table = np.full((dataset.n_items, int(lengths.max())), len(dataset.categories), dtype=np.int64)
        rows = np.repeat(np.arange(dataset.n_items), lengths)
        cols = np.arange(len(ids)) - np.repeat(ptr[:-1], lengths)
        table[rows, cols] = ids
        return cls(dataset.n_items, len(dataset.categories), torch.from_numpy(table),
                   torch.from_numpy(dataset.item_primary_category.astype(np.int64)))


@dataclass
class EventBatch:
    """Features of a batch of event sequences, each [b, n]; ``last``: each row's last real slot where
    some rows are right-padded prefixes (None: slot n - 1 for every row)."""

    items: torch.Tensor
    ratings: torch.Tensor
    last: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> EventBatch:
        last = None if self.last is None else to_device(self.last, device)
        return EventBatch(to_device(self.items, device), to_device(self.ratings, device), last)

    def last_outputs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each row's output at its last real slot, [b, dim] from per-slot ``hidden`` [b, n, dim]."""
        if self.last is None:
            return hidden[:, -1]
        return hidden[torch.arange(len(hidden), device=hidden.device), self.last]


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; a host batch bound for CUDA goes through pinned memory without blocking
    (every batch is a fresh tensor, so the copy never races a later write to it)."""
    if torch.device(device).type != "cuda" or tensor.is_cuda:
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def event_batch(dataset: Dataset, positions: np.ndarray, padding: np.ndarray | None = None) -> EventBatch:
    """Features of the events at ``positions`` (int64 [b, n]); ``padding`` (bool [b, n], from
    ``Examples.padding``) marks the right-padded slots of prefixes."""
    items = torch.from_numpy(dataset.item[positions].astype(np.int64))
    buckets = np.clip(np.rint(dataset.rating[positions] * 2), 0, RATING_BUCKETS - 1).astype(np.int64)
    last = None
    if padding is not None and padding.any():
        last = torch.from_numpy((~padding).sum(1).astype(np.int64) - 1)
    return EventBatch(items, torch.from_numpy(buckets), last)
