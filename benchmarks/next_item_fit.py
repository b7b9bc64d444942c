"""Shared by the hand-run USER-LLM benchmarks: ml-100k next item at N=50 and a seeded USER-LLM fit."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.data.cache import cache_root
from bench.registry import Method, build_params, load_methods
from bench.tasks import get_task
from bench.trial import seed_everything


def next_item_context(steps: int, lr: float = 2e-3, eval_batch_size: int = 8) -> TrialContext:
    """ml-100k, next item, N=50, seed 0, ``steps`` of 8 at ``lr``; the shared encoder/LLM cache."""
    dataset, task = load_dataset("ml-100k"), get_task("next_item")
    return TrialContext(dataset=dataset, task=task, protocol=task.protocol(), train=build_split(dataset, 50).train,
                        budget=Budget(steps=steps, batch_size=8, lr=lr, eval_batch_size=eval_batch_size), seed=0,
                        shared_cache=cache_root(), show_progress=False)


def split_of(ctx: TrialContext):
    """The whole split of the benchmark's context (built on the full dataset: these scripts score validation)."""
    return build_split(ctx.dataset, ctx.seq_len)


def fit_userllm(ctx: TrialContext, params: dict[str, Any]) -> Method:
    """USER-LLM with ``params`` over its defaults (real SmolLM2-135M), fitted on ``ctx`` from seed 0."""
    method_class = load_methods()["userllm"]
    method = method_class(build_params(method_class, params, "params"))
    seed_everything(ctx.seed)
    method.fit(ctx)
    return method


def benchmark_arguments(description: str, params: dict[str, Any], steps: int, examples: int) -> argparse.Namespace:
    """The hand-run benchmarks' shared flags: ``--params`` (JSON over USER-LLM's defaults), ``--steps``,
    ``--lr`` (the budget's) and ``--examples`` (how many validation users)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=json.loads, default=params)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--examples", type=int, default=examples)
    return parser.parse_args()
