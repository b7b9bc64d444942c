"""Examples as in the paper (section 4.1): per user, the last event is the test label, the one before
it the validation label, and every earlier window of exactly N events is a training example
(``leave_one_out``). Under ``temporal`` two global cuts take their place (``TEMPORAL_CUTS``): each user's
first event at or after the test cut is its test label, its first at or after the validation cut (and
before the test cut) its validation label, and only events before the validation cut are training labels
or fit inputs, for every user alike.

An example is the absolute offset of its window's first event in the dataset's flat event arrays;
its input is events [start, start + N) and its label is event start + N. Nothing is copied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Dataset

SPLITS = ("train", "valid", "test")
SPLIT_KINDS = ("leave_one_out", "temporal")
WINDOW_KINDS = ("exact", "prefixes")  # training windows: exactly N events, or every prefix of up to N
# quantiles of all the dataset's event timestamps: the validation cut and the test cut of ``temporal``
TEMPORAL_CUTS = (0.8, 0.9)


@dataclass(frozen=True)
class Examples:
    """Windows of ``seq_len`` events, as offsets into the dataset's event arrays; with ``lengths``
    (training prefixes, ``protocol.windows: prefixes``) example i's window is the ``lengths[i]`` events
    from ``starts[i]``, fewer than ``seq_len`` where its user has fewer before the label."""

    split: str
    seq_len: int
    starts: np.ndarray  # int64 [n]: first input event of each window
    users: np.ndarray  # int32 [n]
    lengths: np.ndarray | None = None  # int64 [n]: events in each window (None: seq_len each)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def label_positions(self) -> np.ndarray:
        return self.starts + (self.seq_len if self.lengths is None else self.lengths)

    def positions(self, index: np.ndarray | slice | None = None, label: bool = False) -> np.ndarray:
        """Event positions of the inputs, int64 [b, seq_len], for the selected examples (``label``: each
        window and its label event, [b, seq_len + 1]). A window shorter than ``seq_len`` is right-padded
        with its last event, or its label (``padding`` marks those slots), so no slot reaches past it: a
        causal model's output at a window's last real slot is that of the window alone."""
        starts = self.starts if index is None else self.starts[index]
        slots = np.arange(self.seq_len + label, dtype=np.int64)
        if self.lengths is None:
            return starts[:, None] + slots
        return starts[:, None] + np.minimum(slots, self._filled(index, label)[:, None] - 1)

    def padding(self, index: np.ndarray | slice | None = None, label: bool = False) -> np.ndarray:
        """Which slots of ``positions(index, label)`` are padding, bool (none for exact windows)."""
        if self.lengths is None:
            starts = self.starts if index is None else self.starts[index]
            return np.zeros((len(starts), self.seq_len + label), dtype=bool)
        return np.arange(self.seq_len + label)[None, :] >= self._filled(index, label)[:, None]

    def _filled(self, index: np.ndarray | slice | None, label: bool) -> np.ndarray:
        """Real slots of each selected prefix: its events, and its label with ``label``."""
        return (self.lengths if index is None else self.lengths[index]) + label

    def subset(self, index: np.ndarray | slice) -> Examples:
        lengths = None if self.lengths is None else self.lengths[index]
        return Examples(self.split, self.seq_len, self.starts[index], self.users[index], lengths)

    def fingerprint(self) -> str:
        """Short hash of which windows these are, so records scored on the same examples can be paired."""
        parts = np.int64(self.seq_len).tobytes() + self.starts.astype(np.int64).tobytes()
        if self.lengths is not None:
            parts += self.lengths.astype(np.int64).tobytes()
        return hashlib.sha1(parts).hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """The train, valid and test examples for one history length, and where each user's visible events
    end: ``fit_end[u]`` is the first event of user ``u`` that fit and validation checks do not see (its
    validation label, or later), ``test_end[u]`` the first that test predictions do not see (its test
    label, or later); both absolute positions in the event arrays, int64 [users]."""

    seq_len: int
    train: Examples
    valid: Examples
    test: Examples
    fit_end: np.ndarray
    test_end: np.ndarray
    cuts: tuple[int, int] | None = None  # temporal: the validation and test cut timestamps

    def __getitem__(self, name: str) -> Examples:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def build_split(dataset: Dataset, seq_len: int, kind: str = "leave_one_out", windows: str = "exact") -> Split:
    """All examples of history length ``seq_len`` under the split ``kind`` (``SPLIT_KINDS``); users with
    too few events before a label give no example of that kind. ``windows`` (``WINDOW_KINDS``): training
    windows of exactly ``seq_len`` events, or (``prefixes``) one for every training label with at least
    one event before it, of up to ``seq_len`` events; validation and test windows are exact either way."""
    if windows not in WINDOW_KINDS:
        raise ValueError(f"windows must be one of {', '.join(WINDOW_KINDS)}; got {windows!r}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    ptr = dataset.user_ptr
    first, last = ptr[:-1], ptr[1:]
    cuts = None
    if kind == "leave_one_out":
        fit_end, test_end = np.maximum(last - 2, first), np.maximum(last - 1, first)
    elif kind == "temporal":
        timestamps = dataset.events["timestamp"].to_numpy(np.int64)
        cuts = tuple(int(t) for t in np.quantile(timestamps, TEMPORAL_CUTS, method="lower"))
        fit_end, test_end = (first_at_or_after(timestamps, ptr, cut) for cut in cuts)
    else:
        raise ValueError(f"split kind must be one of {', '.join(SPLIT_KINDS)}; got {kind!r}")
    users = np.arange(len(first), dtype=np.int32)

    def labelled_at(end: np.ndarray, keep: np.ndarray, name: str) -> Examples:
        keep = keep & (end - first >= seq_len)
        return Examples(name, seq_len, end[keep] - seq_len, users[keep])

    shortest = seq_len if windows == "exact" else 1  # events a training window needs before its label
    per_user = np.maximum(fit_end - first - shortest, 0)  # labels strictly before the fit view's end
    total = int(per_user.sum())
    owners = np.repeat(users, per_user)
    rank_in_user = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    labels = first[owners] + shortest + rank_in_user
    if windows == "exact":
        train = Examples("train", seq_len, labels - seq_len, owners)
    else:
        lengths = np.minimum(labels - first[owners], seq_len)
        train = Examples("train", seq_len, labels - lengths, owners, lengths)
    return Split(seq_len, train=train, valid=labelled_at(fit_end, fit_end < test_end, "valid"),
                 test=labelled_at(test_end, test_end < last, "test"), fit_end=fit_end, test_end=test_end,
                 cuts=cuts)


def first_at_or_after(timestamps: np.ndarray, ptr: np.ndarray, cut: int) -> np.ndarray:
    """Each user's first event position whose timestamp is at or after ``cut`` (its last position + 1
    where none is), int64 [users]; events are sorted by time within a user."""
    positions = np.where(timestamps >= cut, np.arange(len(timestamps), dtype=np.int64), ptr[-1])
    return np.minimum(np.minimum.reduceat(positions, ptr[:-1]), ptr[1:])
