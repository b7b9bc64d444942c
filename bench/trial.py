"""Run one trial end to end: data, split, method fit/predict, harness-side metrics, accounting, record.

``execute_trial`` never raises: a failure becomes a record with its traceback.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import random
import time
import traceback
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from bench.accounting import token_stats
from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.data.windows import Examples
from bench.evaluation import score_examples, summarize_all
from bench.registry import Method, build_params, get_method, load_methods
from bench.store import record_path, write_json_atomically
from bench.tasks import Protocol, get_task

PREDICT_CHUNK = 512
KEY_PACKAGES = ("torch", "transformers", "peft", "ray", "recbole", "numpy", "pandas", "rouge-score")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def machine() -> dict[str, Any]:
    import torch

    info = {"node": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def pick_device() -> tuple[str, str]:
    """CUDA with bf16 where the trial got a GPU that supports it, else CPU fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "cpu", "float32"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capped(examples: Examples, cap: int | None, seed: int) -> Examples:
    """At most ``cap`` examples, a seeded uniform sample kept in order (the cap is recorded)."""
    if cap is None or len(examples) <= cap:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), cap, replace=False))
    return examples.subset(keep)


def predict_and_score(method: Method, ctx: TrialContext, protocol: Protocol,
                      examples: Examples) -> tuple[dict[str, np.ndarray], float]:
    """Predict in chunks and score each chunk at once (bounded memory); returns values and seconds."""
    chunks: list[dict[str, np.ndarray]] = []
    started = time.perf_counter()
    for lo in range(0, len(examples), PREDICT_CHUNK):
        part = examples.subset(slice(lo, lo + PREDICT_CHUNK))
        chunks.append(score_examples(ctx.task, protocol, ctx.dataset, part, method.predict(ctx, part)))
    seconds = time.perf_counter() - started
    names = chunks[0].keys() if chunks else []
    return {name: np.concatenate([c[name] for c in chunks]) for name in names}, seconds


def execute_trial(spec: dict[str, Any], results_root: Path, shared_cache: Path, show_progress: bool = True,
                  report: Any = None) -> dict[str, Any]:
    """Run the trial ``spec`` and write its record; return the record (status ok or failed)."""
    started = time.time()
    record: dict[str, Any] = {"trial_id": spec["trial_id"], "suite": spec["suite"], "spec": spec,
                              "started": datetime.now(timezone.utc).isoformat(), "versions": package_versions()}
    try:
        record.update(run_trial(spec, results_root, shared_cache, show_progress, report))
        record["status"] = "ok"
    except Exception as exc:  # a failing trial is recorded, never fatal to the suite
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    record["machine"] = machine()
    record["wall_seconds"] = round(time.time() - started, 3)
    record["finished"] = datetime.now(timezone.utc).isoformat()
    write_json_atomically(record_path(spec["suite"], spec["trial_id"], results_root), record)
    return record


def run_trial(spec: dict[str, Any], results_root: Path, shared_cache: Path, show_progress: bool = False,
              report: Any = None) -> dict[str, Any]:
    """Fit, predict and score the trial ``spec``; return its record's body (raises on failure, writes
    nothing but the method's files under ``results_root/<suite>/work/<trial_id>``)."""
    load_methods(tuple(spec.get("plugins", ())))
    if not show_progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" and the like
    dataset = load_dataset(spec["dataset"]["name"], spec["dataset"]["path"], **spec["dataset"]["options"])
    task = get_task(spec["task"])
    task.check(dataset)
    protocol = Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["protocol"].items()})
    budget = Budget(**spec["budget"])
    cls = get_method(spec["method"])
    method = cls(build_params(cls, dict(spec["params"]), "params"))
    device, dtype = pick_device()
    seed_everything(spec["seed"])
    workdir = results_root / spec["suite"] / "work" / spec["trial_id"]
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = TrialContext(dataset=dataset, task=task, protocol=protocol, split=build_split(dataset, spec["seq_len"]),
                       budget=budget, seed=spec["seed"], device=device, dtype=dtype, workdir=workdir,
                       shared_cache=shared_cache, report=report or (lambda metrics: None),
                       show_progress=show_progress)

    fit_started = time.perf_counter()
    method.fit(ctx)
    fit_seconds = time.perf_counter() - fit_started
    valid = capped(ctx.split.valid, budget.max_valid_examples, spec["seed"])
    test = capped(ctx.split.test, budget.max_test_examples, spec["seed"])
    valid_values, _ = predict_and_score(method, ctx, protocol, valid)
    test_values, predict_seconds = predict_and_score(method, ctx, protocol, test)

    accounting = dict(method.accounting(ctx))
    if "llm_input_tokens" in accounting:
        stats = token_stats(accounting.pop("llm_input_tokens"))
        accounting["llm_input_tokens_mean"], accounting["llm_input_tokens_max"] = stats["mean"], stats["max"]
    steps = accounting.get("train_steps") or budget.steps
    loop_seconds = accounting.get("train_seconds", fit_seconds)  # the optimisation loop where the method says
    accounting.update({"fit_seconds": round(fit_seconds, 3), "seconds_per_step": loop_seconds / max(1, steps),
                       "predict_seconds": round(predict_seconds, 3),
                       "seconds_per_test_example": predict_seconds / max(1, len(test))})
    return {
        "metrics": {"valid": summarize_all(valid_values, spec["seed"]), "test": summarize_all(test_values, spec["seed"])},
        "protocol": dataclasses.asdict(protocol),
        "examples": {"train": len(ctx.split.train), "valid": [len(valid), len(ctx.split.valid)],
                     "test": [len(test), len(ctx.split.test)]},
        "capped": len(test) < len(ctx.split.test) or len(valid) < len(ctx.split.valid),
        "test_examples": test.fingerprint(),
        "per_example": {"test": {name: np.round(values, 4) for name, values in test_values.items()}},
        "accounting": accounting, "device": device, "dtype": dtype,
    }
