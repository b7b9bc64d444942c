"""Loaders on the real files: counts, dirty rows, and one clear error for a bad path or format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bench.data import build_split, load_dataset
from bench.errors import ConfigError, DataError


def test_ml100k_embedded_counts_and_dirt(ml100k):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k.events)) == (943, 1682, 100_000)
    assert len(ml100k.categories) == 19
    assert ml100k.notes["items_with_placeholder_title"] == 1  # item 267 'unkonwn'
    assert ml100k.notes["items_with_bad_year"] == 1  # item 1412 year 'V'
    titles = ml100k.items.set_index("key")["title"]
    assert titles["1"] == "Toy Story (1995)"
    assert titles["267"] == "item 267"
    assert titles["1412"].startswith("Land Before Time III")
    assert ml100k.items["title"].is_unique


def test_ml100k_split_counts_at_50(ml100k):
    split = build_split(ml100k, 50)
    assert (len(split.test), len(split.valid), len(split.train)) == (563, 551, 58_957)


def test_cache_is_reused(ml100k, tmp_path, monkeypatch):
    """The first load parses the source files and writes the cache; the second reads only the cache."""
    import dataclasses

    from bench.data import registry

    monkeypatch.setenv("USERLLM_BENCH_CACHE", str(tmp_path))
    spec = registry.DATASETS["ml-100k"]
    parsed = []

    def counting_read(*args, **kwargs):
        parsed.append(1)
        return spec.read(*args, **kwargs)

    monkeypatch.setitem(registry.DATASETS, "ml-100k", dataclasses.replace(spec, read=counting_read))
    first = load_dataset("ml-100k")
    assert len(parsed) == 1 and any((tmp_path / "data").iterdir())
    again = load_dataset("ml-100k")
    assert len(parsed) == 1  # no second parse: the cache was hit
    assert again.events.equals(first.events) and again.events.equals(ml100k.events)
    assert again.items["title"].tolist() == ml100k.items["title"].tolist()


def test_amazon_magazines(shared_data):
    data = load_dataset("amazon-2018", shared_data / "amazon2018", category="Magazine_Subscriptions")
    assert (len(data.events), data.n_users, data.n_items) == (2375, 348, 157)
    assert data.notes["duplicate_user_item_events"] == 73
    assert data.notes["items_without_metadata"] == 6
    assert data.notes["titles_from_brand"] > 100  # titles are HTML junk upstream for most items
    assert not data.items["title"].str.contains("<").any()
    assert data.has_reviews and (data.events["review"] != "").mean() > 0.99
    assert "Magazine Subscriptions" not in data.categories  # level 2 of the path, not the section


def test_amazon_review_field_option(shared_data):
    data = load_dataset("amazon-2018", shared_data / "amazon2018", category="Gift_Cards", review_field="reviewText")
    assert len(data.events) == 2972 and data.n_users == 458
    assert data.events["review"].str.len().mean() > 20


def test_amazon_needs_category_when_folder_has_several(shared_data):
    with pytest.raises(DataError, match="several files match"):
        load_dataset("amazon-2018", shared_data / "amazon2018")


def _write_json_lines(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def test_google_local_reviews_with_real_places(shared_data, tmp_path):
    with gzip.open(shared_data / "google-local" / "meta-Vermont.json.gz", "rt") as handle:
        places = [json.loads(next(handle)) for _ in range(30)]
    _write_json_lines(tmp_path / "meta-Vermont.json.gz", places)
    rng = np.random.default_rng(0)
    reviews = [{"user_id": f"u{u}", "name": "x", "time": 1_600_000_000_000 + 1000 * i,
                "rating": int(rng.integers(1, 6)), "text": None if i % 7 == 0 else f"review {i}",
                "pics": None, "resp": None, "gmap_id": places[int(rng.integers(0, 30))]["gmap_id"]}
               for u in range(5) for i in range(12)]
    _write_json_lines(tmp_path / "review-Vermont.json.gz", reviews)
    data = load_dataset("google-local-2021", tmp_path, state="Vermont")
    assert data.n_users == 5 and len(data.events) == 60
    assert data.notes["reviews_without_text"] == sum(i % 7 == 0 for i in range(12)) * 5
    assert data.events["timestamp"].iloc[0] == 1_600_000_000
    assert set(data.titles) <= {p["name"] for p in places} | {f"{p['name']} [{p['gmap_id']}]" for p in places}


def test_ml20m_grouplens_format(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n2,2,4.0,974820889\n")
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n'
        '29,"City of Lost Children, The (1995)",(no genres listed)\n')
    data = load_dataset("ml-20m", tmp_path)
    assert (data.n_users, data.n_items, len(data.events)) == (2, 2, 3)
    assert data.items.set_index("key").loc["29", "title"] == "City of Lost Children, The (1995)"
    assert data.events["item"].tolist()[:2] == [1, 0]  # user 1 sorted by time


def test_missing_path_names_file_and_format(tmp_path):
    with pytest.raises(DataError, match=r"ratings\.csv: file not found; expected GroupLens ratings\.csv"):
        load_dataset("ml-20m", tmp_path)
    with pytest.raises(DataError, match="no path given"):
        load_dataset("amazon-2018")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset("google-local-2021", tmp_path / "nope")


def test_wrong_format_names_file_and_format(tmp_path):
    (tmp_path / "ratings.csv").write_text("user,item\n1,2\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n2,Jumanji (1995),Adventure\n")
    with pytest.raises(DataError, match=r"ratings\.csv: missing column\(s\) userId, movieId, rating, timestamp"):
        load_dataset("ml-20m", tmp_path)
    (tmp_path / "Books_5.json.gz").write_bytes(gzip.compress(b"this is not json\n"))
    (tmp_path / "meta_Books.json.gz").write_bytes(gzip.compress(b"{}\n"))
    with pytest.raises(DataError, match=r"Books_5\.json\.gz: not readable as JSON lines.*expected Amazon 2018"):
        load_dataset("amazon-2018", tmp_path)


def test_unknown_dataset_and_option():
    with pytest.raises(ConfigError, match="unknown dataset 'ml-1b'"):
        load_dataset("ml-1b")
    with pytest.raises(ConfigError, match="unknown option 'state'"):
        load_dataset("amazon-2018", "/x", state="VT")
    with pytest.raises(ConfigError, match="review_field='text'"):
        load_dataset("amazon-2018", "/x", review_field="text")
