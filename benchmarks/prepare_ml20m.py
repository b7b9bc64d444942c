"""Benchmark: prepare a MovieLens-20M-sized input, build its N=50 windows, then run a popularity and
a Dual Encoder trial end to end on it; print times and peak RSS.

The input is synthetic (GroupLens ratings.csv/movies.csv format, 20M ratings, 138,493 users,
27,278 movies, skewed popularity), generated once into a folder and reused. Run by hand:

    .venv/bin/python benchmarks/prepare_ml20m.py [--folder /tmp/ml20m-synthetic] [--events 20000263]

Each measurement runs in a fresh subprocess so peak RSS is that step's own. A trial's setup is
everything before ``fit`` (load the prepared data, window it, labels, caps), as every Ray worker does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

USERS, MOVIES = 138_493, 27_278
GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def generate(folder: Path, n_events: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_user = rng.zipf(1.6, USERS).clip(20, 9000).astype(np.int64)
    per_user = np.maximum(20, (per_user * (n_events / per_user.sum())).astype(np.int64))
    per_user[0] += n_events - per_user.sum()
    users = np.repeat(np.arange(1, USERS + 1, dtype=np.int32), per_user)
    movies = (rng.zipf(1.3, n_events) % MOVIES + 1).astype(np.int32)
    times = 789652009 + rng.integers(0, 640_000_000, n_events)
    ratings = rng.integers(1, 11, n_events).astype(np.float32) / 2
    table = pa.table({"userId": users, "movieId": movies, "rating": ratings, "timestamp": times})
    pacsv.write_csv(table, folder / "ratings.csv")
    genre_sets = ["|".join(sorted(set(rng.choice(GENRES, rng.integers(1, 4))))) for _ in range(MOVIES)]
    titles = [f"Movie {i} ({1900 + i % 115})" for i in range(1, MOVIES + 1)]
    pacsv.write_csv(pa.table({"movieId": np.arange(1, MOVIES + 1), "title": titles, "genres": genre_sets}),
                    folder / "movies.csv")


def measure(folder: Path, cache: Path, seq_len: int) -> dict:
    """Runs in the child: cold prepare, then windows."""
    os.environ["USERLLM_BENCH_CACHE"] = str(cache)
    from bench.data import build_split, load_dataset

    started = time.perf_counter()
    dataset = load_dataset("ml-20m", folder)
    prepared = time.perf_counter()
    split = build_split(dataset, seq_len)
    done = time.perf_counter()
    return {"events": len(dataset.events), "users": dataset.n_users, "items": dataset.n_items,
            "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
            "prepare_s": round(prepared - started, 2), "windows_s": round(done - prepared, 2),
            "total_s": round(done - started, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


TRIALS = {
    "popularity next_item": ("popularity", "next_item", {}),
    "popularity fav_category": ("popularity", "fav_category", {}),
    "dual_encoder next_item (20 steps)": ("dual_encoder", "next_item", {"layers": 1, "dim": 32, "heads": 2}),
}


def measure_trial(folder: Path, cache: Path, seq_len: int, name: str) -> dict:
    """Runs in the child: one trial as a worker runs it, its setup (up to ``fit``) timed apart."""
    os.environ["USERLLM_BENCH_CACHE"] = str(cache)
    import dataclasses

    from bench.evaluation import predict_and_score
    from bench.tasks import get_task
    from bench.trial import prepare_trial

    method, task, params = TRIALS[name]
    spec = {"suite": "ml20m", "trial_id": method, "method": method, "label": method, "params": params,
            "dataset": {"name": "ml-20m", "path": str(folder), "options": {}}, "task": task, "seq_len": seq_len,
            "seed": 0, "protocol": dataclasses.asdict(get_task(task).protocol()), "budget": {"steps": 20, "batch_size": 64, "eval_batch_size": 512,
                                                  "max_valid_examples": 2000, "max_test_examples": 2000}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as results:
        trial = prepare_trial(spec, Path(results), cache)
        setup = time.perf_counter()
        setup_s, labels_s = round(setup - started, 2), None
        if task == "fav_category":  # the training labels alone, as a method's fit asks for them
            trial.ctx.labels(trial.ctx.train)
            labels_s = round(time.perf_counter() - setup, 2)
            setup = time.perf_counter()
        trial.method.fit(trial.ctx)
        fitted = time.perf_counter()
        values, _ = predict_and_score(trial.predict_test, method, trial.ctx.scoring, trial.labelled,
                                      trial.test)
    done = time.perf_counter()
    return {"train_windows": len(trial.ctx.train), "setup_s": setup_s, "labels_s": labels_s,
            "fit_s": round(fitted - setup, 2), "test_s": round(done - fitted, 2), "total_s": round(done - started, 2),
            "recall@10": round(values["recall@10"].mean(), 4),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "ml20m-synthetic")
    parser.add_argument("--events", type=int, default=20_000_263)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_trial(args.folder, args.cache, args.seq_len, args.trial) if args.trial
                         else measure(args.folder, args.cache, args.seq_len)))
        return
    if not (args.folder / "ratings.csv").exists():
        started = time.perf_counter()
        generate(args.folder, args.events)
        print(f"generated {args.events:,} synthetic ratings in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold (read CSV, prepare, write cache)", "warm (cache hit)"):
            out = subprocess.run([sys.executable, __file__, "--child", "--folder", str(args.folder),
                                  "--cache", cache, "--seq-len", str(args.seq_len)],
                                 check=True, capture_output=True, text=True)
            print(label, out.stdout.strip())
        for name in TRIALS:
            out = subprocess.run([sys.executable, __file__, "--child", "--folder", str(args.folder),
                                  "--cache", cache, "--seq-len", str(args.seq_len), "--trial", name],
                                 check=True, capture_output=True, text=True)
            print(name, out.stdout.strip())


if __name__ == "__main__":
    main()
