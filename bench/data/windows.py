"""Examples as in the paper (section 4.1): per user, the last event is the test label, the one before
it the validation label, and every earlier window of exactly N events is a training example.

An example is the absolute offset of its window's first event in the dataset's flat event arrays;
its input is events [start, start + N) and its label is event start + N. Nothing is copied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Dataset

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Examples:
    """Windows of ``seq_len`` events, as offsets into the dataset's event arrays."""

    split: str
    seq_len: int
    starts: np.ndarray  # int64 [n]: first input event of each window
    users: np.ndarray  # int32 [n]

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def label_positions(self) -> np.ndarray:
        return self.starts + self.seq_len

    def positions(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Event positions of the inputs, int64 [b, seq_len], for the selected examples."""
        starts = self.starts if index is None else self.starts[index]
        return starts[:, None] + np.arange(self.seq_len, dtype=np.int64)

    def subset(self, index: np.ndarray | slice) -> Examples:
        return Examples(self.split, self.seq_len, self.starts[index], self.users[index])

    def fingerprint(self) -> str:
        """Short hash of which windows these are, so records scored on the same examples can be paired."""
        digest = hashlib.sha1(np.int64(self.seq_len).tobytes() + self.starts.astype(np.int64).tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """The train, valid and test examples for one history length."""

    seq_len: int
    train: Examples
    valid: Examples
    test: Examples

    def __getitem__(self, name: str) -> Examples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def build_split(dataset: Dataset, seq_len: int) -> Split:
    """All examples of history length ``seq_len``; users with too few events give none of a kind."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    ptr = dataset.user_ptr
    first, lengths = ptr[:-1], np.diff(ptr)
    users = np.arange(len(lengths), dtype=np.int32)

    def last_window(offset_from_end: int) -> Examples:
        keep = lengths >= seq_len + offset_from_end
        starts = first[keep] + lengths[keep] - offset_from_end - seq_len
        return Examples("test" if offset_from_end == 1 else "valid", seq_len, starts, users[keep])

    per_user = np.maximum(lengths - seq_len - 2, 0)  # labels strictly before the validation event
    total = int(per_user.sum())
    owners = np.repeat(users, per_user)
    rank_in_user = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    train = Examples("train", seq_len, first[owners] + rank_in_user, owners)
    return Split(seq_len, train=train, valid=last_window(2), test=last_window(1))
