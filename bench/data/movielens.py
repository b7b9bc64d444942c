"""MovieLens loaders: ml-100k in RecBole's atomic format (shipped in the recbole wheel) and ml-20m
in GroupLens' CSV format."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.dataset import RawSource
from bench.data.sources import event_columns, read_table, require_file
from bench.errors import DataError

ML100K_INTER = "RecBole atomic .inter (tab-separated; header user_id:token, item_id:token, rating:float, timestamp:float)"
ML100K_ITEM = "RecBole atomic .item (tab-separated; header item_id:token, movie_title:token_seq, release_year:token, class:token_seq)"
ML20M_RATINGS = "GroupLens ratings.csv (header userId,movieId,rating,timestamp)"
ML20M_MOVIES = "GroupLens movies.csv (header movieId,title,genres; genres separated by |)"
_PLACEHOLDER_TITLES = {"unkonwn", "unknown"}
_YEAR = re.compile(r"^\d{4}$")


def embedded_ml100k_folder() -> Path:
    """The ml-100k folder inside the installed recbole wheel."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("ml-100k: the recbole package is not installed; it ships the embedded MovieLens-100K")
    return Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"


def ml100k_sources(path: Path | None) -> list[Path]:
    folder = path or embedded_ml100k_folder()
    return [require_file(folder / "ml-100k.inter", ML100K_INTER), require_file(folder / "ml-100k.item", ML100K_ITEM)]


def read_ml100k(sources: list[Path]) -> RawSource:
    inter_path, item_path = sources
    inter = read_table(inter_path, ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                       ML100K_INTER, sep="\t", dtype=str, keep_default_na=False)
    item = read_table(item_path, ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
                      ML100K_ITEM, sep="\t", dtype=str, keep_default_na=False)
    fields = {"user": "user_id:token", "item": "item_id:token", "rating": "rating:float",
              "timestamp": "timestamp:float"}
    events, dropped = event_columns(inter, fields, inter_path, ML100K_INTER, first_line=2)
    keys = item["item_id:token"].str.strip()

    names = item["movie_title:token_seq"].str.strip()
    years = item["release_year:token"].str.strip()
    placeholder = names.str.lower().isin(_PLACEHOLDER_TITLES)
    bad_year = ~years.str.match(_YEAR) & ~placeholder
    titles = names.where(~years.str.match(_YEAR), names + " (" + years + ")")
    titles = titles.where(~placeholder, "")
    genres = item["class:token_seq"].str.split()
    notes = {**dropped, "items_with_placeholder_title": int(placeholder.sum()),
             "items_with_bad_year": int(bad_year.sum())}
    items = pd.DataFrame({"item_key": keys, "title": titles, "categories": genres})
    return RawSource(events=events, items=items, notes=notes)


def ml20m_sources(path: Path | None) -> list[Path]:
    if path is None:
        raise DataError("ml-20m: no path given; pass the GroupLens ml-20m folder (with ratings.csv and movies.csv)")
    return [require_file(path / "ratings.csv", ML20M_RATINGS), require_file(path / "movies.csv", ML20M_MOVIES)]


def read_ml20m(sources: list[Path]) -> RawSource:
    ratings_path, movies_path = sources
    ratings = read_table(ratings_path, ["userId", "movieId", "rating", "timestamp"], ML20M_RATINGS,
                         dtype={"userId": np.float64, "movieId": np.float64, "rating": np.float32,
                                "timestamp": np.float64}, engine="c")  # floats: a missing value is NaN
    movies = read_table(movies_path, ["movieId", "title", "genres"], ML20M_MOVIES,
                        dtype={"movieId": np.int64, "title": str, "genres": str}, keep_default_na=False)
    fields = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    events, dropped = event_columns(ratings, fields, ratings_path, ML20M_RATINGS, first_line=2)
    no_genre = movies["genres"].isin(["(no genres listed)", ""])
    genres = movies["genres"].where(~no_genre, "").str.split("|").map(lambda g: [x for x in g if x])
    items = pd.DataFrame({"item_key": movies["movieId"], "title": movies["title"], "categories": genres})
    return RawSource(events=events, items=items, notes={**dropped, "items_without_genre_listed": int(no_genre.sum())})
