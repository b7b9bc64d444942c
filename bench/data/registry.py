"""The datasets the harness knows: where their files are, how to read them, and the prepared cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.data.amazon import REVIEW_FIELDS, amazon_sources, read_amazon
from bench.data.cache import cache_key, cache_root, read_frames, write_frames_atomically
from bench.data.dataset import Dataset, RawSource, canonicalize
from bench.data.google_local import google_local_sources, read_google_local
from bench.data.movielens import ml20m_sources, ml100k_sources, read_ml20m, read_ml100k
from bench.errors import ConfigError
from bench.named import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its published format, the options its loader takes, and the loader itself."""

    name: str
    description: str
    embedded: bool
    options: dict[str, tuple[str, ...] | None]  # option -> allowed values (None: any string)
    sources: Callable[..., list[Path]]
    read: Callable[..., RawSource]
    family: str  # the paper's name for its dataset family (tables, table 9's budgets)
    reviews: bool  # its published format carries review text (review generation)


DATASETS: Registry[DatasetSpec] = Registry("dataset", ((spec.name, spec) for spec in [
        DatasetSpec("ml-100k", "MovieLens-100K, embedded in the recbole wheel (RecBole atomic files)", True,
                    {}, ml100k_sources, read_ml100k, family="MovieLens20M", reviews=False),
        DatasetSpec("ml-20m", "MovieLens-20M, GroupLens ratings.csv + movies.csv in --path", False,
                    {}, ml20m_sources, read_ml20m, family="MovieLens20M", reviews=False),
        DatasetSpec("amazon-2018", "Amazon Review Data 2018, <Category>_5.json.gz + meta_<Category>.json.gz in --path",
                    False, {"category": None, "review_field": REVIEW_FIELDS},
                    amazon_sources, read_amazon, family="Amazon Review", reviews=True),
        DatasetSpec("google-local-2021", "Google Local 2021, review-<State>.json.gz + meta-<State>.json.gz in --path",
                    False, {"state": None}, google_local_sources, read_google_local, family="Google Review",
                    reviews=True),
]))

_SOURCE_OPTIONS = {"category", "state"}


def dataset_spec(name: str) -> DatasetSpec:
    return DATASETS.lookup(name)


def check_options(spec: DatasetSpec, options: dict[str, str]) -> None:
    for key, value in options.items():
        if key not in spec.options:
            allowed = ", ".join(spec.options) or "none"
            raise ConfigError(f"dataset {spec.name}: unknown option {key!r}; expected one of: {allowed}")
        choices = spec.options[key]
        if choices is not None and value not in choices:
            raise ConfigError(f"dataset {spec.name}: {key}={value!r}; expected one of {', '.join(choices)}")


def load_dataset(name: str, path: str | Path | None = None, **options: str) -> Dataset:
    """Prepare (or read from the cache) a dataset in the canonical form."""
    spec = dataset_spec(name)
    check_options(spec, options)
    source_options = {k: v for k, v in options.items() if k in _SOURCE_OPTIONS}
    read_options = {k: v for k, v in options.items() if k not in _SOURCE_OPTIONS}
    started = time.perf_counter()
    sources = spec.sources(Path(path).expanduser() if path else None, **source_options)
    folder = cache_root() / "data" / cache_key(name, sources, repr(sorted(read_options.items())))
    frames = read_frames(folder, ["events", "items", "notes"])
    if frames is None:
        events, items, notes = canonicalize(spec.read(sources, **read_options))
        frames = {"events": events, "items": items,
                  "notes": pd.DataFrame({"note": list(notes), "count": list(notes.values())})}
        write_frames_atomically(folder, frames)
    notes = dict(zip(frames["notes"]["note"], frames["notes"]["count"].astype(int)))
    items = frames["items"]
    items["categories"] = items["categories"].map(list)
    return Dataset(name=name, events=frames["events"], items=items, notes=notes,
                   prepare_seconds=time.perf_counter() - started)
