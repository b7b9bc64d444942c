"""Helpers several test modules share (``conftest`` holds the fixtures): suite files and the ``bench`` CLI
in a subprocess, the specs of small trials, fitted LLM methods, and result records."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from bench.context import Budget, TrialContext
from bench.data import build_split
from bench.models.llm import TINY
from bench.registry import build_params, load_methods
from bench.tasks import get_task

PLUGINS = Path(__file__).parent / "plugins"
BENCH = [sys.executable, "-m", "bench.cli"]
LLM_CACHE = Path.home() / ".cache" / "userllm-bench"


def suite_file(tmp_path: Path, methods: list[dict], name: str = "t", **extra) -> Path:
    """A one-dataset suite of ``methods`` (next item, N=20, one step, the test plugins) written to a file."""
    suite = {"name": name, "datasets": ["ml-100k"], "tasks": ["next_item"], "seq_lens": [20],
             "budget": {"steps": 1}, "resources": {"cpu": 1, "gpu": 0}, "plugins": ["bench_test_methods"],
             "methods": methods, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``bench ARGS`` in a subprocess that can import the test plugins."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(BENCH + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def left_running(session: int, timeout: float = 15) -> list[str]:
    """Processes of the run's session, or its reaper, still alive after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        left = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getsid(process.pid) == session or f"bench.reaper {session}" in " ".join(process.info["cmdline"] or []):
                    left.append(" ".join(process.info["cmdline"] or [])[:80])
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        if not left or time.time() > deadline:
            return left
        time.sleep(0.5)


def protocol_json(task: str) -> dict:
    """The task's default protocol as a spec's JSON holds it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in get_task(task).protocol().to_dict().items()}


def leakage_spec(method: str, task: str, params: dict, plugins: tuple[str, ...] = (),
                 split: str = "leave_one_out") -> dict:
    """A two-step trial of ``method`` at N=12 on a few validation and test examples, under ``split``."""
    return {"suite": "leak", "plugins": list(plugins), "label": method, "method": method, "params": params,
            "dataset": {"name": "ml-100k", "path": None, "options": {}}, "task": task, "seq_len": 12, "seed": 0,
            "trial_id": f"{method}-{task}", "protocol": {**protocol_json(task), "split": split},
            "budget": {"steps": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup": 0.0,
                       "eval_batch_size": 8, "max_valid_examples": 4, "max_test_examples": 12,
                       "eval_every": None, "patience": None, "seconds": None}}


TINY_USERLLM = {"llm": TINY, "encoder.layers": 1, "encoder.dim": 16, "encoder.heads": 2, "pretrain.steps": 3,
                "pretrain.batch_size": 4, "xattn_every": 1, "beams": 2}


def userllm_spec(params: dict, task: str = "next_item", dataset: dict | None = None) -> dict:
    """A four-step USER-LLM trial on the tiny random LLM with a one-layer encoder."""
    return {"suite": "acct", "plugins": [], "label": "u", "method": "userllm", "params": {**TINY_USERLLM, **params},
            "dataset": dataset or {"name": "ml-100k", "path": None, "options": {}}, "task": task,
            "seq_len": 8 if dataset is None else 3, "seed": 3, "trial_id": "u", "protocol": protocol_json(task),
            "budget": {"steps": 4, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0, "warmup": 0.0,
                       "eval_batch_size": 4, "max_valid_examples": 5, "max_test_examples": 7,
                       "eval_every": 2, "patience": None, "seconds": None}}


TINY_DUAL_ENCODER = {"layers": 1, "dim": 16, "heads": 2}


def validation_spec(method: str, budget: dict, params: dict | None = None, task: str = "next_item") -> dict:
    """A trial at N=20 with ``budget`` over 30 steps of 32 and no checks unless it sets them."""
    full = {"steps": 30, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.0, "warmup": 0.0, "eval_batch_size": 256,
            "max_valid_examples": 200, "max_test_examples": 100, "eval_every": None, "patience": None,
            "seconds": None, **budget}
    return {"suite": "v", "plugins": [], "label": method, "method": method, "params": params or {},
            "dataset": {"name": "ml-100k", "path": None, "options": {}}, "task": task, "seq_len": 20, "seed": 0,
            "trial_id": f"{method}-{sorted(budget.items())}", "budget": full, "protocol": protocol_json(task)}


def text_prompt_ctx(dataset, task: str, steps: int = 2) -> TrialContext:
    """A TrialContext at N=20 for a tiny TextPrompt (steps of 2)."""
    task_obj = get_task(task)
    return TrialContext(dataset=dataset, task=task_obj, protocol=task_obj.protocol(), train=build_split(dataset, 20).train,
                        budget=Budget(steps=steps, batch_size=2, lr=1e-3, eval_batch_size=2), seed=0,
                        shared_cache=LLM_CACHE, show_progress=False)


def fitted_text_prompt(dataset, task: str, **params):
    """TextPrompt on the tiny random LLM, fitted two steps: (method, ctx)."""
    cls = load_methods()["text_prompt"]
    method = cls(build_params(cls, {"llm": "tiny-random", "prompt_events": 3, "beams": 4, **params}, "params"))
    ctx = text_prompt_ctx(dataset, task)
    method.fit(ctx)
    return method, ctx


SUITE_GOOD = {
    "name": "t", "datasets": ["ml-100k"], "tasks": ["next_item", "fav_category"], "seq_lens": [10, 20],
    "seeds": [0, 1], "budget": {"steps": 5}, "plugins": ["bench_test_methods"],
    "methods": [{"method": "test_constant", "grid": {"seconds": [0, 0.5]}}, {"method": "popularity"}],
}


def write_suite(tmp_path: Path, suite: dict | str) -> Path:
    """``suite`` (a mapping or YAML text) as ``suite.yaml`` in ``tmp_path``."""
    path = tmp_path / "suite.yaml"
    path.write_text(suite if isinstance(suite, str) else yaml.safe_dump(suite))
    return path


RECORD_PROTOCOL = {"metric": "recall", "ks": [10], "candidates": "catalog", "exclude_history": True}


def record(method: str, dataset: str, recall10: float, **params) -> dict:
    """An ok next-item record with test recall@10 ``recall10`` (a point interval)."""
    stats = {"mean": recall10, "ci_low": recall10, "ci_high": recall10, "n": 10}
    return {"trial_id": method, "suite": "s", "status": "ok", "protocol": RECORD_PROTOCOL,
            "spec": {"suite": "s", "method": method, "label": method, "dataset": {"name": dataset}, "task": "next_item",
                     "seq_len": 50, "seed": 0, "params": params, "budget": {"steps": 100}, "protocol": RECORD_PROTOCOL},
            "metrics": {"valid": {"recall@10": stats}, "test": {"recall@10": stats}}, "accounting": {},
            "examples": {"test": [10, 10]}}


def seq_record(method: str, n: int, recall: float, **params) -> dict:
    """A record at history length ``n`` with recall@1/5/10 ``recall`` and 6ND FLOPs for LLM methods."""
    stats = {"mean": recall, "ci_low": recall - 0.01, "ci_high": recall + 0.01, "n": 100}
    rec = record(method, "ml-100k", recall, **params)
    rec["trial_id"] = f"{method}-{n}-{params}"
    rec["spec"]["seq_len"] = n
    rec["metrics"]["test"] = {f"recall@{k}": stats for k in (1, 5, 10)}
    rec["accounting"] = {"flops_per_train_example_6nd": 6e9 * n} if method != "popularity" else {}
    return rec


SMALL_USERLLM = {"llm": TINY, "encoder.layers": 1, "encoder.dim": 16, "encoder.heads": 2, "pretrain.steps": 2,
                 "pretrain.batch_size": 4, "perceiver_layers": 1, "perceiver_latents": 4, "xattn_every": 1, "beams": 4}


def userllm_ctx(dataset, task: str, cache: Path, seq_len: int = 12, steps: int = 2) -> TrialContext:
    """A TrialContext for a small USER-LLM (steps of 2), its encoder checkpoints under ``cache``."""
    task_obj = get_task(task)
    return TrialContext(dataset=dataset, task=task_obj, protocol=task_obj.protocol(),
                        train=build_split(dataset, seq_len).train,
                        budget=Budget(steps=steps, batch_size=2, lr=1e-3, eval_batch_size=2), seed=0,
                        shared_cache=cache, show_progress=False)


def fitted_userllm(dataset, cache: Path, task: str = "next_item", seq_len: int = 12, **params):
    """A small USER-LLM on the tiny random LLM, fitted two steps: (method, ctx)."""
    cls = load_methods()["userllm"]
    method = cls(build_params(cls, {**SMALL_USERLLM, **params}, "params"))
    ctx = userllm_ctx(dataset, task, cache, seq_len)
    method.fit(ctx)
    return method, ctx


def built_in_methods() -> set[str]:
    """The names of every method the harness ships (``bench.registry.BUILTIN_MODULES``)."""
    from bench.registry import BUILTIN_MODULES

    return {name for name, cls in load_methods().items() if cls.__module__ in BUILTIN_MODULES}
