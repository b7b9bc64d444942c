"""The canonical dataset every loader produces: an event table and an item table, plus flat arrays.

Events are sorted per user by timestamp with ties kept in source-file order (a stable sort), so the
windows built on top of them (``bench.data.windows``) are plain offsets into these arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

UNKNOWN_CATEGORY = "unknown"


@dataclass
class RawSource:
    """What a loader reads, before ids are made dense.

    events: user_key, item_key, timestamp (int64 seconds), rating (float), optional review (str),
    in source-file row order. items: item_key, title, categories (list of str).
    notes: counts of dirty rows the loader handled, by name.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class Dataset:
    """A prepared dataset: ``events`` sorted by (user, timestamp, source row) and the ``items`` catalog."""

    name: str
    events: pd.DataFrame
    items: pd.DataFrame
    notes: dict[str, int]
    prepare_seconds: float = 0.0

    @cached_property
    def categories(self) -> list[str]:
        """Category names; a category id indexes this list."""
        return sorted({c for cats in self.items["categories"] for c in cats})

    @property
    def n_users(self) -> int:
        return int(self.events["user"].iat[-1]) + 1 if len(self.events) else 0

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def has_reviews(self) -> bool:
        return "review" in self.events.columns

    @cached_property
    def user_ptr(self) -> np.ndarray:
        """CSR pointer: user u's events are rows user_ptr[u] : user_ptr[u + 1]."""
        counts = np.bincount(self.events["user"].to_numpy(), minlength=self.n_users)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @cached_property
    def item(self) -> np.ndarray:
        return self.events["item"].to_numpy(np.int32)

    @cached_property
    def rating(self) -> np.ndarray:
        return self.events["rating"].to_numpy(np.float32)

    @cached_property
    def item_categories(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR (ptr, category ids) of each item's categories, in the order the source lists them."""
        index = {name: i for i, name in enumerate(self.categories)}
        lists = self.items["categories"]
        lengths = np.fromiter((len(c) for c in lists), dtype=np.int64, count=len(lists))
        ptr = np.concatenate([[0], np.cumsum(lengths)])
        ids = np.fromiter((index[c] for cats in lists for c in cats), dtype=np.int32, count=int(ptr[-1]))
        return ptr, ids

    @cached_property
    def item_primary_category(self) -> np.ndarray:
        """Each item's first listed category id (the single category feature of an event)."""
        ptr, ids = self.item_categories
        return ids[ptr[:-1]]

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the event sequence (users, items, ratings) and the catalog size."""
        digest = hashlib.sha256(f"{self.name}/{self.n_items}".encode())
        for array in (self.user_ptr, self.item, self.rating):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @property
    def titles(self) -> list[str]:
        return self.items["title"].tolist()


def canonicalize(raw: RawSource) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Dense ids, unique titles, stable per-user time order. Returns (events, items, notes)."""
    notes = dict(raw.notes)
    events = raw.events.reset_index(drop=True)
    items = raw.items.drop_duplicates("item_key", keep="first")
    notes["duplicate_item_rows"] = notes.get("duplicate_item_rows", 0) + len(raw.items) - len(items)

    seen = pd.Index(pd.unique(events["item_key"]))
    items = items[items["item_key"].isin(seen)]
    missing = seen.difference(pd.Index(items["item_key"]))
    notes["items_without_metadata"] = len(missing)
    if len(missing):
        filler = pd.DataFrame({"item_key": missing, "title": missing.astype(str),
                               "categories": [[UNKNOWN_CATEGORY]] * len(missing)})
        items = pd.concat([items, filler], ignore_index=True)
    items = items.reset_index(drop=True)

    titles = items["title"].fillna("").astype(str).str.strip()
    empty = titles == ""
    notes["items_with_empty_title"] = int(empty.sum())
    titles = titles.where(~empty, "item " + items["item_key"].astype(str))
    duplicated = titles.duplicated(keep=False)
    notes["items_with_duplicate_title"] = int(duplicated.sum())
    titles = titles.where(~duplicated, titles + " [" + items["item_key"].astype(str) + "]")

    categories = items["categories"].map(lambda cats: [c for c in cats if c] or [UNKNOWN_CATEGORY])
    notes["items_with_unknown_category"] = int(sum(cats == [UNKNOWN_CATEGORY] for cats in categories))

    item_ids = pd.Index(items["item_key"]).get_indexer(events["item_key"]).astype(np.int32)
    user_ids, _ = pd.factorize(events["user_key"])
    timestamps = events["timestamp"].to_numpy(np.int64)
    order = np.lexsort((timestamps, user_ids))  # stable: ties keep source row order
    out = pd.DataFrame({
        "user": user_ids[order].astype(np.int32),
        "item": item_ids[order],
        "timestamp": timestamps[order],
        "rating": events["rating"].to_numpy(np.float32)[order],
    })
    if "review" in events.columns:
        out["review"] = events["review"].fillna("").astype(str).to_numpy()[order]
    catalog = pd.DataFrame({"item": np.arange(len(items), dtype=np.int32),
                            "key": items["item_key"].astype(str).to_numpy(),
                            "title": titles.to_numpy(), "categories": categories.to_numpy()})
    return out, catalog, {k: int(v) for k, v in notes.items()}
