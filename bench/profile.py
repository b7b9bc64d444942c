"""``bench profile``: what a suite's trials cost on this machine, measured before running them for real.

Every trial runs once with ``steps`` training steps and at most ``examples`` validation and test
examples, each in a fresh Ray worker (so the peak memory is its own) and one after another (so no two
share the machine while timed). Nothing is written to results/. From the measured setup time (loading
the LLM, pretraining an encoder that is not cached yet), seconds per step and seconds per evaluated
example, each row estimates the full trial at the suite's budget and test-set caps. A method that does
not train for ``budget.steps`` (popularity, co-occurrence) trains here as it
will in the real run, and its measured fit time is its estimate.
"""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.data.cache import cache_root
from bench.memory import memory_kill
from bench.ray_session import start_ray, trial_resources
from bench.spec import TrialSpec
from bench.suite import Suite
from bench.trial import run_trial

GIB = 2**30


def _cap(cap: int | None, count: int) -> int:
    """``count`` bounded by a test-set cap (None: no cap)."""
    return count if cap is None else min(cap, count)


def profile_trial(spec: TrialSpec, steps: int, examples: int, shared_cache: str | None) -> dict[str, Any]:
    """Run ``spec`` shortened to ``steps`` steps and ``examples`` evaluated examples; its costs."""
    import torch

    budget = spec.budget
    short = spec.shortened(examples, steps)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        body = run_trial(short, Path(scratch), Path(shared_cache) if shared_cache else cache_root())
    costs = body["accounting"]
    per_example = costs["seconds_per_test_example"]
    setup = max(0.0, costs["fit_seconds"] - costs.get("train_seconds", costs["fit_seconds"]))
    follows_steps = costs.get("train_steps") == steps
    # a method that trains for budget.steps scales with the budget; any other trained here as it will for real
    loop = budget.steps * costs["seconds_per_step"]
    if budget.seconds is not None:
        loop = min(loop, budget.seconds)  # a wall-clock cap ends the loop first
    fit = setup + loop if follows_steps else costs["fit_seconds"]
    evaluated = sum(_cap(cap, total) for cap, total in
                    ((budget.max_valid_examples, body["examples"]["valid"][1]),
                     (budget.max_test_examples, body["examples"]["test"][1])))
    step = costs["seconds_per_step"]
    flops, tokens = costs.get("flops_per_train_example_measured"), costs.get("train_tokens_mean")
    achieved = flops * budget.batch_size / step if flops and follows_steps else None
    return {"setup_seconds": setup, "seconds_per_step": step, "seconds_per_example": per_example,
            "tokens_per_second": tokens * budget.batch_size / step if tokens and follows_steps else None,
            "tflops": achieved / 1e12 if achieved else None,
            "of_peak": achieved / matmul_peak(body["device"], body["dtype"]) if achieved else None,
            "device": body["device"], "dtype": body["dtype"],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else None,
            "estimated_seconds": fit + evaluated * per_example}


def matmul_peak(device: str, dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matmul in ``dtype`` on ``device``: the peak a trial's achieved FLOP/s is a
    fraction of (measured, not a data-sheet figure)."""
    import time

    import torch

    a = torch.randn(size, size, device=device).to(getattr(torch, dtype))
    a @ a  # warm-up
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    sync()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def profile_suite(suite: Suite, shared_cache: Path | None, steps: int, examples: int,
                  address: str | None = None) -> list[dict[str, Any]]:
    """One row per trial (and per searched configuration, at its spec's values) of ``suite``: what it
    is, then its costs or ``error`` where the shortened trial failed."""
    import ray

    started_here = not ray.is_initialized()
    with tempfile.TemporaryDirectory(prefix="bench-profile-", ignore_cleanup_errors=True) as temp:
        start_ray(Path(temp), address, None, cache=shared_cache, kernels=suite.kernels)
        try:
            return _profile_trials(suite, shared_cache, steps, examples)
        finally:
            if started_here:
                ray.shutdown()


def _profile_trials(suite: Suite, shared_cache: Path | None, steps: int, examples: int) -> list[dict[str, Any]]:
    import ray

    resources = trial_resources(suite)
    # max_retries=0: a trial Ray's memory monitor stops is a row, never run again (Ray retries a task it
    # stopped for memory without end otherwise)
    remote = ray.remote(max_calls=1, max_retries=0)(profile_trial).options(num_cpus=resources["cpu"],
                                                                          num_gpus=resources["gpu"])
    rows = []
    for spec in suite.trials + [spec for spec, _ in suite.searches]:
        row = {"label": spec.label, "dataset": spec.dataset.name, "task": spec.task, "seq_len": spec.seq_len,
               "seed": spec.seed, "trial_id": spec.search_group or spec.trial_id}
        try:
            row |= ray.get(remote.remote(spec, steps, examples, str(shared_cache.resolve()) if shared_cache else None))
        except ray.exceptions.RayError as exc:  # a failing trial is a row, never the end of the profile
            cause = getattr(exc, "cause", None) or exc
            kill = memory_kill(str(exc))
            if kill is not None:
                row["error"], row["peak_rss_gib"] = kill.describe(), kill.worker_gb and kill.worker_gb * 1e9 / GIB
            else:
                row["error"] = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
        print(_line(row), flush=True)
        rows.append(row)
    return rows


def _line(row: dict[str, Any]) -> str:
    what = f"{row['label']} {row['dataset']}/{row['task']}/N={row['seq_len']} seed={row['seed']}"
    if "error" in row:
        return f"[profile] {what}: FAILED: {row['error']}"
    return f"[profile] {what}: {row['seconds_per_step']:.3f} s/step, {row['seconds_per_example']:.3f} s/example"


def profile_table(rows: list[dict[str, Any]]) -> str:
    """The profile as a table, then the estimated time of the whole suite run one trial after another."""
    gpu = any(row.get("peak_gpu_gib") is not None for row in rows)
    headers = ["label", "task", "N", "seed", "device", "setup s", "s/step", "s/example", "train tokens/s",
               "TFLOP/s", "of peak", "peak RSS GiB", *(["peak GPU GiB"] if gpu else []), "est. trial min"]
    cells = []
    for row in rows:
        what = [row["label"], row["task"], row["seq_len"], row["seed"]]
        if "error" in row:
            cells.append([*what, f"failed: {row['error'].split(';')[0]}"])  # the whole error: its [profile] line
            continue
        share = f"{100 * row['of_peak']:.0f}%" if row.get("of_peak") else "-"
        cells.append([*what, f"{row['device']} {row['dtype']}", row["setup_seconds"], row["seconds_per_step"],
                      row["seconds_per_example"], row.get("tokens_per_second") or "-", row.get("tflops") or "-",
                      share, row["peak_rss_gib"], *([row["peak_gpu_gib"]] if gpu else []),
                      row["estimated_seconds"] / 60])
    estimates = [row["estimated_seconds"] for row in rows if "error" not in row]
    return (tabulate(cells, headers=headers, floatfmt=".3g") +
            f"\nestimated at the suite's budget, one trial after another: {sum(estimates) / 60:.1f} min "
            f"for {len(estimates)} of {len(rows)} trials")
