"""Shared fixtures: an isolated dataset cache, the real data folder, small hand-built datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("USERLLM_BENCH_CACHE", tempfile.mkdtemp(prefix="userllm-bench-test-cache-"))

from bench.data.dataset import Dataset, RawSource, canonicalize  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the workplace's ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k() -> Dataset:
    from bench.data import load_dataset

    return load_dataset("ml-100k")


def make_dataset(events: list[tuple], items: dict[str, list[str]], name: str = "handmade") -> Dataset:
    """A Dataset from (user, item, timestamp[, rating]) rows in source order and item -> categories."""
    rows = [(*row, 3.0)[:4] for row in events]
    frame = pd.DataFrame(rows, columns=["user_key", "item_key", "timestamp", "rating"])
    catalog = pd.DataFrame({"item_key": list(items), "title": [f"Title {k}" for k in items],
                            "categories": list(items.values())})
    out_events, out_items, notes = canonicalize(RawSource(frame, catalog))
    return Dataset(name, out_events, out_items, notes)


@pytest.fixture(scope="session")
def markov_plugin(tmp_path_factory) -> Path:
    """The example plugin package installed (no deps) into a folder on sys.path, as a user would pip install it."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("plugin-site")
    source = Path(__file__).resolve().parents[1] / "examples" / "markov-plugin"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True)
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    return target


LLM_CACHE = Path.home() / ".cache" / "userllm-bench"


def fresh_cache(folder: Path) -> Path:
    """``folder`` as a shared cache with no encoder checkpoints that reuses the user cache's converted LLM."""
    (LLM_CACHE / "llm").mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "llm").symlink_to(LLM_CACHE / "llm", target_is_directory=True)
    return folder


def split_of(ctx):
    """The whole split of a hand-built context (tests build contexts on the full dataset)."""
    from bench.data import build_split

    return build_split(ctx.dataset, ctx.seq_len)


WORDS = ("great", "fine", "boring", "loved", "story", "issue", "paper", "price", "recipes", "photos", "late", "gift")


def write_review_sources(folder: Path, users: int = 24, events: int = 8, items: int = 30, seed: int = 0) -> Path:
    """Small review datasets in the published formats, made here so review generation runs on a clean
    clone: Amazon 2018 (``Tiny_5.json.gz``, ``meta_Tiny.json.gz``) and Google Local 2021
    (``review-Tiny.json.gz``, ``meta-Tiny.json.gz``); every user reviews ``events`` items, in time order."""
    import gzip
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, rows: list[dict]) -> None:
        (folder / name).write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))

    picks = [(u, int(i), 1_500_000_000 + 3600 * (u * events + k)) for u in range(users)
             for k, i in enumerate(rng.choice(items, events, replace=False))]
    text = [" ".join(rng.choice(WORDS, 5)) for _ in picks]
    write("Tiny_5.json.gz", [{"reviewerID": f"U{u}", "asin": f"A{i}", "overall": float(1 + (u + i) % 5),
                              "unixReviewTime": t, "summary": s, "reviewText": s + " indeed"}
                             for (u, i, t), s in zip(picks, text)])
    write("meta_Tiny.json.gz", [{"asin": f"A{i}", "title": f"Magazine {i}", "brand": "",
                                 "category": ["Magazines", f"Kind {i % 4}"]} for i in range(items)])
    write("review-Tiny.json.gz", [{"user_id": f"g{u}", "gmap_id": f"P{i}", "rating": 1 + (u + i) % 5, "time": 1000 * t,
                                   "text": s, "name": "x", "pics": None, "resp": None}
                                  for (u, i, t), s in zip(picks, text)])
    write("meta-Tiny.json.gz", [{"gmap_id": f"P{i}", "name": f"Place {i}", "category": [f"Kind {i % 4}"]}
                                for i in range(items)])
    return folder


@pytest.fixture(scope="session")
def review_sources(tmp_path_factory) -> Path:
    return write_review_sources(tmp_path_factory.mktemp("review-sources"))
