"""Run one trial end to end: data, split, method fit/predict, harness-side metrics, accounting, record.

``execute_trial`` never raises: a failure becomes a record with its traceback. It returns the record
(the runner sends it back to the driver, which writes it into ``results/<suite>/trials/``) and keeps a
copy in the trial's working folder on the node that ran it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from bench import kernels
from bench.accounting import token_stats, total_training
from bench.context import TrialContext
from bench.data import build_split, load_dataset
from bench.data.dataset import Dataset
from bench.data.views import visible_view, window_only
from bench.data.windows import SPLITS, Examples, Split
from bench.dtype_choice import DtypeChoice, choose_dtype, step_probe
from bench.errors import ConfigError, DataError, MethodError
from bench.evaluation import excluded_labels, predict_and_score, summarize_all
from bench.memory import peak_rss_bytes, pin_mmap_threshold
from bench.nodes import device_name, node_id
from bench.precision import compute_dtype
from bench.provenance import sources
from bench.registry import Method, build_params, declared_inputs, get_method, load_methods
from bench.spec import DatasetRef, TrialSpec
from bench.store import jsonable, write_json_atomically
from bench.tasks import Scoring, get_task
from bench.validation import Validation

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

    info = {"node": platform.node(), "ray_node": node_id(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def pick_device() -> str:
    """CUDA where the trial got a GPU, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(spec: TrialSpec, method: Method, ctx: TrialContext) -> DtypeChoice:
    """The dtype ``ctx``'s trial computes in (``bench.dtype_choice``): fp32 under reproducible kernels."""
    if spec.kernels == "reproducible":
        return DtypeChoice("float32", "kernels: reproducible computes in fp32")
    return choose_dtype(spec, spec.dtype, ctx.device, method.uses_llm, step_probe(method, ctx), ctx.shared_cache)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capped(examples: Examples, cap: int | None, seed: int) -> Examples:
    """At most ``cap`` examples, kept in order: the first ``cap`` of one seeded permutation, so that a
    smaller cap is a subset of a larger one and capped rows of one seed pair (the cap is recorded)."""
    if cap is None or len(examples) <= cap:
        return examples
    keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:cap])
    return examples.subset(keep)


def scorable(scoring: Scoring, dataset: Any, split: Split) -> tuple[Split, dict[str, dict[str, int]]]:
    """The split without the examples no method can learn from or be scored on, and how many were dropped
    from each part, by reason: an empty reference review (review_gen), or, in validation and test, a label
    the protocol's history exclusion removes from its own ranking (a repeated item: ``excluded_labels``)."""
    parts, dropped = {}, {}
    for name in SPLITS:
        examples = split[name]
        reasons = {"empty_reference": ~scoring.task.usable(dataset, examples)}
        if name != "train":
            reasons["label_repeats_excluded_item"] = excluded_labels(scoring, dataset, examples)
        keep = ~np.logical_or.reduce(list(reasons.values()))
        parts[name] = examples if keep.all() else examples.subset(np.flatnonzero(keep))
        dropped[name] = {reason: int(mask.sum()) for reason, mask in reasons.items() if mask.any()}
    return dataclasses.replace(split, **parts), dropped


def work_dir(spec: TrialSpec, root: Path) -> Path:
    """The trial's working folder under ``root`` (a method's files, the node's copy of the record)."""
    return root / spec.suite / "work" / spec.trial_id


def execute_trial(spec: TrialSpec | Mapping[str, Any], results_root: Path, shared_cache: Path,
                  show_progress: bool = True, report: Any = None) -> dict[str, Any]:
    """Run the trial ``spec``; return its record (status ok or failed), a copy of it kept in the trial's
    working folder under ``results_root``."""
    pin_mmap_threshold()
    started = time.time()
    spec = TrialSpec.of(spec)
    record: dict[str, Any] = {"trial_id": spec.trial_id, "suite": spec.suite, "spec": spec.to_json(),
                              "started": datetime.now(timezone.utc).isoformat(), "versions": package_versions()}
    try:
        load_methods(spec.plugins)
        record["sources"] = sources(get_method(spec.method))
        record.update(run_trial(spec, results_root, shared_cache, show_progress, report))
        record["status"] = "ok"
    except Exception as exc:  # a failing trial is recorded, never fatal to the suite
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    record["machine"] = machine()
    record["peak_rss_gb"] = round(peak_rss_bytes() / 1e9, 3)
    record["wall_seconds"] = round(time.time() - started, 3)
    record["finished"] = datetime.now(timezone.utc).isoformat()
    write_json_atomically(work_dir(spec, results_root) / "record.json", record)
    return record


def check_dataset_path(dataset: DatasetRef) -> None:
    """A dataset folder must exist on the node that runs the trial (the suite checked the driver's)."""
    if dataset.path and not Path(dataset.path).exists():
        raise DataError(f"dataset {dataset.name}: {dataset.path} does not exist on node {platform.node()} "
                        f"(Ray node {node_id()}); every node that runs trials needs the dataset at that path")


def checked_accounting(method: Method, ctx: TrialContext) -> dict[str, Any]:
    """The method's cost facts: a dict of names to numbers, texts or lists of numbers, else a
    MethodError naming the method and what it must return."""
    facts = method.accounting(ctx)
    expected = "expected a dict of names to numbers, texts, or lists of numbers (llm_input_tokens)"
    if not isinstance(facts, dict) or not all(isinstance(key, str) for key in facts):
        raise MethodError(f"method {method.name}: accounting returned {type(facts).__name__}; {expected}")
    try:
        json.dumps(facts, default=jsonable)
    except (TypeError, ValueError) as exc:
        raise MethodError(f"method {method.name}: accounting holds a value that is not a number or text "
                          f"({exc}); {expected}") from None
    return dict(facts)


@dataclasses.dataclass
class PreparedTrial:
    """A trial ready to fit: its method, the context handed to ``fit`` (the fit view), the (capped)
    evaluation examples, the labelled dataset the harness scores against, the test view (which scores
    validation), the view test predictions read (the test view, or ``window_only`` of it where the
    task predicts from the window) and the dtype it computes in, with why."""

    method: Method
    ctx: TrialContext
    valid: Examples
    test: Examples
    dropped: dict[str, dict[str, int]]
    labelled: Dataset
    test_view: Dataset
    predict_view: Dataset
    split: Split
    spec: TrialSpec
    dtype_choice: DtypeChoice
    test_batch_seconds: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    def predict_valid(self, examples: Examples) -> Any:
        """The method's predictions of validation examples, from the fit view (no validation labels)."""
        return self.method.predict(self.ctx, examples)

    def predict_test(self, examples: Examples) -> Any:
        """The method's predictions of test examples, from the test view (no test labels; where the task
        predicts from the window, nothing before the input windows)."""
        return self.method.predict(self.test_ctx, examples)

    @property
    def test_ctx(self) -> TrialContext:
        """The context test predictions get; its ``eval_batches`` are timed into ``test_batch_seconds``."""
        return dataclasses.replace(self.ctx, dataset=self.predict_view, validation=None,
                                   batch_seconds=self.test_batch_seconds)


def prepare_trial(spec: TrialSpec | Mapping[str, Any], results_root: Path, shared_cache: Path,
                  show_progress: bool = False, report: Any = None, dataset: Dataset | None = None) -> PreparedTrial:
    """Data, split, task, protocol, budget and method of the trial ``spec``; nothing fitted yet.
    ``dataset``: this source data instead of the spec's (the leakage check's corrupted copy)."""
    spec = TrialSpec.of(spec)
    load_methods(spec.plugins)
    check_dataset_path(spec.dataset)
    if not show_progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" and the like
    if dataset is None:
        dataset = load_dataset(spec.dataset.name, spec.dataset.path, **spec.dataset.options)
    task = get_task(spec.task)
    task.check(dataset)
    protocol, budget = spec.protocol, spec.budget
    cls = get_method(spec.method)
    method = cls(build_params(cls, dict(spec.params), "params"))
    if protocol.windows not in cls.window_kinds(method.params):
        raise ConfigError(f"protocol.windows: {cls.name} cannot train on {protocol.windows} windows "
                          f"(it declares {', '.join(cls.window_kinds(method.params))})")
    kernels.enter(spec.kernels)
    device = pick_device()
    seed_everything(spec.seed)
    workdir = work_dir(spec, results_root)
    workdir.mkdir(parents=True, exist_ok=True)
    split, dropped = scorable(task.under(protocol), dataset, build_split(dataset, spec.seq_len, protocol.split, protocol.windows))
    valid = capped(split.valid, budget.max_valid_examples, spec.seed)
    test = capped(split.test, budget.max_test_examples, spec.seed)
    label_visible = task.label_event_is_input
    fit_view = visible_view(dataset, split.fit_end, label_visible)
    test_view = visible_view(dataset, split.test_end, label_visible)
    predict_view = window_only(test_view, split.test) if task.predicts_from_window else test_view
    ctx = TrialContext(dataset=fit_view, task=task, protocol=protocol, train=split.train,
                       budget=budget, seed=spec.seed, device=device, workdir=workdir,
                       shared_cache=shared_cache, report=report or (lambda metrics: None),
                       show_progress=show_progress,
                       validation=Validation.of(spec.method, task.under(protocol), test_view, valid, report))
    choice = pick_dtype(spec, method, ctx)
    ctx = dataclasses.replace(ctx, dtype=choice.dtype)
    return PreparedTrial(method, ctx, valid, test, dropped, dataset, test_view, predict_view, split, spec, choice)


def measured_inference_flops(trial: PreparedTrial) -> int | None:
    """FLOPs of the method's prediction of one validation example (an LLM's prefill and constrained
    decoding), counted by torch after the test predictions; None without a validation example."""
    from bench.accounting import measure_flops

    if len(trial.valid) == 0:
        return None
    return measure_flops(lambda: trial.predict_valid(trial.valid.subset(slice(0, 1))))


def test_timing(batches: list[tuple[int, float]]) -> dict[str, Any]:
    """The harness's clock on the test predictions' batches; with one example per batch
    (``budget.eval_batch_size: 1``), each test example's seconds, in the order of the test examples."""
    timing: dict[str, Any] = {"test_batches": [[size, round(seconds, 4)] for size, seconds in batches]}
    if batches and all(size == 1 for size, _ in batches):
        timing["test_seconds"] = [round(seconds, 4) for _, seconds in batches]
    return timing


def run_trial(spec: TrialSpec | Mapping[str, Any], results_root: Path, shared_cache: Path,
              show_progress: bool = False, report: Any = None) -> dict[str, Any]:
    """Fit, predict and score the trial ``spec``; return its record's body (raises on failure, writes
    nothing but the method's files under ``results_root/<suite>/work/<trial_id>``)."""
    trial = prepare_trial(spec, results_root, shared_cache, show_progress, report)
    spec = trial.spec
    method, ctx, valid, test = trial.method, trial.ctx, trial.valid, trial.test
    scoring, protocol, budget, split = ctx.scoring, ctx.protocol, ctx.budget, trial.split
    fit_started = time.perf_counter()
    method.fit(ctx)
    fit_seconds = time.perf_counter() - fit_started
    valid_values, _ = predict_and_score(trial.predict_valid, spec.method, scoring, trial.test_view, valid)
    if not spec.tested:  # a tuned suite's search sample: chosen among on validation, never tested
        test = test.subset(slice(0, 0))
    test_values, predict_seconds = predict_and_score(trial.predict_test, spec.method, scoring, trial.labelled, test)

    inference_flops = measured_inference_flops(trial) if method.uses_llm and spec.tested else None
    accounting = checked_accounting(method, ctx)
    accounting.update(total_training(accounting))
    if "llm_input_tokens" in accounting:
        stats = token_stats(accounting.pop("llm_input_tokens"))
        accounting["llm_input_tokens_mean"], accounting["llm_input_tokens_max"] = stats["mean"], stats["max"]
    stopped = ctx.validation.stopped or accounting.get("stopped")
    steps = accounting.get("train_steps") or budget.steps
    loop_seconds = accounting.get("train_seconds", fit_seconds)  # the optimisation loop where the method says
    accounting.update({"fit_seconds": round(fit_seconds, 3), "seconds_per_step": loop_seconds / max(1, steps),
                       "predict_seconds": round(predict_seconds, 3),
                       "seconds_per_test_example": predict_seconds / max(1, len(test)),
                       **({"flops_per_inference_example_measured": inference_flops} if inference_flops else {})})
    metrics = {"valid": summarize_all(valid_values, spec.seed)}
    if spec.tested:
        metrics["test"] = summarize_all(test_values, spec.seed)
    return {
        "metrics": metrics,
        "protocol": dataclasses.asdict(protocol),
        "data_notes": {name: count for name, count in trial.labelled.notes.items() if count},
        "examples": {"train": len(split.train), "valid": [len(valid), len(split.valid)],
                     "test": [len(test), len(split.test)], "dropped_unscorable": trial.dropped,
                     **({"temporal_cuts": list(split.cuts)} if split.cuts else {})},
        "capped": (spec.tested and len(test) < len(split.test)) or len(valid) < len(split.valid),
        "training": ctx.validation.to_record(),
        "test_examples": test.fingerprint(),
        "test_label_positions": test.label_positions.tolist() if spec.tested else [],
        "per_example": {"test": {name: np.round(values, 4) for name, values in test_values.items()}}
        if spec.tested else {},
        "accounting": accounting, "timing": test_timing(trial.test_batch_seconds),
        "inputs": declared_inputs(type(method), method.params),
        "device": ctx.device, "device_name": device_name(ctx.device),
        "dtype": compute_dtype(ctx, method.uses_llm), "dtype_choice": trial.dtype_choice.facts(),
        "kernels": kernels.facts(spec.kernels),
        # a run the wall-clock guard stopped did as much work as this machine managed in the time
        "machine_dependent": stopped == "seconds",
    }
