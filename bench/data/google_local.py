"""Google Local Reviews 2021 (Li, Shang, McAuley; Yan et al.): a state's reviews plus place metadata."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.dataset import RawSource
from bench.data.sources import event_columns, find_one, read_json_lines
from bench.errors import DataError

REVIEWS = "Google Local 2021 review-<State>.json(.gz): JSON lines with user_id, gmap_id, rating, time (ms), text"
META = "Google Local 2021 meta-<State>.json(.gz): JSON lines with gmap_id, name, category"


def google_local_sources(path: Path | None, state: str | None = None) -> list[Path]:
    if path is None:
        raise DataError("google-local-2021: no path given; pass a folder with review-<State>.json.gz and meta-<State>.json.gz")
    stem = state or "*"
    reviews = find_one(path, [f"review-{stem}.json.gz", f"review-{stem}.json"], REVIEWS)
    name = reviews.name.split(".json")[0].removeprefix("review-")
    meta = find_one(path, [f"meta-{name}.json.gz", f"meta-{name}.json"], META)
    return [reviews, meta]


def read_google_local(sources: list[Path]) -> RawSource:
    reviews_path, meta_path = sources
    reviews = read_json_lines(reviews_path, ["user_id", "gmap_id", "rating", "time", "text"], REVIEWS)
    fields = {"user": "user_id", "item": "gmap_id", "rating": "rating", "timestamp": "time"}
    events, dropped = event_columns(reviews, fields, reviews_path, REVIEWS, texts={"review": "text"})
    events["timestamp"] //= 1000  # milliseconds
    meta = read_json_lines(meta_path, ["gmap_id", "name", "category"], META)
    categories = meta["category"].map(lambda c: [str(x) for x in c] if isinstance(c, list) else [])
    items = pd.DataFrame({"item_key": meta["gmap_id"].astype(str), "title": meta["name"].fillna("").astype(str),
                          "categories": categories})
    notes = {**dropped, "reviews_without_text": int((events["review"] == "").sum())}
    return RawSource(events=events, items=items, notes=notes)
