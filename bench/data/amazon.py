"""Amazon Review Data 2018 (Ni, Li, McAuley): a category's 5-core reviews plus its metadata, JSON lines."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from bench.data.dataset import RawSource
from bench.data.sources import event_columns, find_one, read_json_lines
from bench.errors import DataError

REVIEWS = "Amazon 2018 <Category>_5.json(.gz): JSON lines with reviewerID, asin, overall, unixReviewTime, reviewText, summary"
META = "Amazon 2018 meta_<Category>.json(.gz): JSON lines with asin, title, brand, category"
REVIEW_FIELDS = ("summary", "reviewText")


def amazon_sources(path: Path | None, category: str | None = None) -> list[Path]:
    if path is None:
        raise DataError("amazon-2018: no path given; pass a folder with <Category>_5.json.gz and meta_<Category>.json.gz")
    stem = category or "*"
    reviews = find_one(path, [f"{stem}_5.json.gz", f"{stem}_5.json"], REVIEWS)
    name = reviews.name.split("_5.json")[0]
    meta = find_one(path, [f"meta_{name}.json.gz", f"meta_{name}.json"], META)
    return [reviews, meta]


def _clean_title(title: object) -> str:
    """The title, or "" when it is missing or the upstream scrape left HTML in it."""
    if not isinstance(title, str):
        return ""
    text = html.unescape(title).strip()
    return "" if not text or "<" in text or ">" in text or "getTime" in text or len(text) > 400 else text


def _level2_category(path: object) -> list[str]:
    """The second level of the category path (the first is the whole store section)."""
    if not isinstance(path, list) or not path:
        return []
    return [html.unescape(str(path[min(1, len(path) - 1)])).strip()]


def read_amazon(sources: list[Path], review_field: str = "summary") -> RawSource:
    if review_field not in REVIEW_FIELDS:
        raise DataError(f"amazon-2018: review_field={review_field!r}; expected one of {', '.join(REVIEW_FIELDS)}")
    reviews_path, meta_path = sources
    reviews = read_json_lines(reviews_path, ["reviewerID", "asin", "overall", "unixReviewTime"], REVIEWS,
                              optional=(review_field,))
    fields = {"user": "reviewerID", "item": "asin", "rating": "overall", "timestamp": "unixReviewTime"}
    events, dropped = event_columns(reviews, fields, reviews_path, REVIEWS, texts={"review": review_field})

    meta = read_json_lines(meta_path, ["asin", "title", "category"], META, optional=("brand",))
    duplicate_rows = int(meta["asin"].duplicated().sum())
    meta = meta.drop_duplicates("asin", keep="first")
    titles = meta["title"].map(_clean_title)
    brands = meta["brand"].map(_clean_title)
    from_brand = (titles == "") & (brands != "")
    titles = titles.where(titles != "", brands)
    items = pd.DataFrame({"item_key": meta["asin"].astype(str), "title": titles,
                          "categories": meta["category"].map(_level2_category)})
    reviewed = items["item_key"].isin(events["item_key"])
    notes = {
        **dropped,
        "duplicate_item_rows": duplicate_rows,
        "titles_from_brand": int((from_brand & reviewed).sum()),
        "duplicate_user_item_events": int(events.duplicated(["user_key", "item_key"]).sum()),
    }
    return RawSource(events=events, items=items, notes=notes)
