"""Execute a suite's trials as Ray Tune experiments: a local Ray (temp and results under the run's
folder) or an existing cluster (``--address`` / ``RAY_ADDRESS``).

Trials that already have an ``ok`` record are not run again, so ``bench run`` after a crash or a
kill -9 finishes only what is missing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.paper_budgets import paper_examples
from bench.store import load_records, read_record, record_path, write_json_atomically
from bench.suite import Suite, SearchSpec, trial_hash
from bench.trial import execute_trial

MAX_SOCKET_DIR = 60  # Ray's unix socket paths must stay under ~107 characters


@dataclass
class RunSummary:
    ran: int
    skipped_done: int
    failed: list[str]


def _done(suite: Suite, spec: dict[str, Any], root: Path) -> bool:
    record = read_record(record_path(suite.name, spec["trial_id"], root))
    return record is not None and record.get("status") == "ok"


def _describe(spec: dict[str, Any]) -> str:
    return (f"{spec['label']} {spec['dataset']['name']}/{spec['task']}/N={spec['seq_len']} "
            f"seed={spec['seed']} [{spec['trial_id']}]")


def _headline(record: dict[str, Any]) -> str:
    if record.get("status") != "ok":
        return f"FAILED: {record.get('error', {}).get('message', '?')}"
    test = record["metrics"]["test"]
    shown = ", ".join(f"{name}={stats['mean']:.4f}" for name, stats in list(test.items())[:3])
    used, total = record["examples"]["test"]
    capped = f" (on {used} of {total} test examples)" if used < total else ""
    return f"test {shown}{capped}{_training_line(record)}"


def _training_line(record: dict[str, Any]) -> str:
    """How training ended and how far its budget is from the paper's, for a trial with a validation curve."""
    training, spec = record.get("training") or {}, record["spec"]
    if not training.get("curve"):
        return ""
    line = f"; stopped by {training['stopped']}, best check at step {training['best_step']}"
    if training["still_rising"]:
        line += ", validation still rising"
    paper = paper_examples(spec["dataset"]["name"], spec["task"])
    if paper:
        share = 100 * training["examples_seen"] / paper
        line += f"; {training['examples_seen']:,} training examples = {share:.2g}% of the paper's ({paper:,})"
    return line


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    spec = dict(config["spec"])
    sampled = config.get("sample") or {}
    if sampled:
        spec["params"] = {**spec["params"], **{k: v for k, v in sampled.items() if not k.startswith("budget.")}}
        spec["budget"] = {**spec["budget"], **{k[7:]: v for k, v in sampled.items() if k.startswith("budget.")}}
        spec["trial_id"] = trial_hash(spec)
    record = execute_trial(spec, Path(config["results_root"]), Path(config["shared_cache"]),
                           show_progress=config.get("show_progress", True))
    result = {"ok": record["status"] == "ok", "trial_id": spec["trial_id"], "headline": _headline(record),
              "describe": _describe(spec)}
    for split, metrics in record.get("metrics", {}).items():
        result.update({f"{split}/{name}": stats["mean"] for name, stats in metrics.items()})
    tune.report(result)


def _tune_space(search: SearchSpec) -> dict[str, Any]:
    from ray import tune

    builders = {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint,
                "choice": lambda *values: tune.choice(list(values))}
    return {key: builders[kind](*args) for key, dist in search.space.items() for kind, args in dist.items()}


def _callback() -> Any:
    from ray import tune

    class TrialLines(tune.Callback):
        """One line per trial start and finish."""

        def __init__(self) -> None:
            self.started: set[str] = set()

        def on_trial_start(self, iteration, trials, trial, **info):
            spec = trial.config["spec"]
            self.started.add(spec["trial_id"])
            print(f"[start] {spec['label']} {spec['dataset']['name']}/{spec['task']}/N={spec['seq_len']} "
                  f"seed={spec['seed']}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            print(f"[done]  {result.get('describe', trial.trial_id)}: {result.get('headline', '?')}", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            _record_worker_death(trial.config["spec"], Path(trial.config["results_root"]),
                                 f"the trial's worker died; Ray's error file: {trial.error_file}")

    return TrialLines()


def _record_worker_death(spec: dict[str, Any], root: Path, message: str) -> None:
    """A failure record for a trial whose worker died before it could write its own."""
    path = record_path(spec["suite"], spec["trial_id"], root)
    if read_record(path) is None:
        write_json_atomically(path, {"trial_id": spec["trial_id"], "suite": spec["suite"], "spec": spec,
                                     "status": "failed", "error": {"type": "WorkerDied", "message": message}})
    print(f"[error] {_describe(spec)}: {message}", flush=True)


def start_ray(run_dir: Path, address: str | None, cpus: int | None) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray with its temp folder in ``run_dir``."""
    import ray

    if ray.is_initialized():
        return
    env = {"PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=True)
        return
    temp = (run_dir / ".ray").resolve()
    if len(str(temp)) > MAX_SOCKET_DIR:
        import tempfile

        temp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        print(f"note: {run_dir}/.ray is too long a path for Ray's sockets; Ray's temp folder is {temp}")
    temp.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp), runtime_env={"env_vars": env},
             log_to_driver=True, configure_logging=True, logging_level="WARNING")


def trial_resources(suite: Suite) -> dict[str, float]:
    """CPUs and GPUs per trial: the suite's ask, bounded by what the cluster has (gpu auto: 1 if any)."""
    import ray

    available = ray.cluster_resources()
    cpu = min(suite.resources["cpu"], int(available.get("CPU", 1)))
    gpu = suite.resources["gpu"]
    gpu = (1 if available.get("GPU", 0) >= 1 else 0) if gpu == "auto" else min(gpu, int(available.get("GPU", 0)))
    return {"cpu": cpu, "gpu": gpu}


def _tune(trainable: Any, param_space: dict[str, Any], run_dir: Path, name: str, samples: int = 1,
          search: Any = None, lines: Any = None) -> None:
    from ray import tune

    tune_config = tune.TuneConfig(num_samples=samples, search_alg=search, reuse_actors=False)
    run_config = tune.RunConfig(name=name, storage_path=str((run_dir / "tune").resolve()), verbose=0,
                                callbacks=[lines or _callback()],
                                failure_config=tune.FailureConfig(fail_fast=False, max_failures=0))
    tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


def _tune_grid(trainable: Any, common: dict[str, Any], pending: list[dict[str, Any]], run_dir: Path, name: str,
               results_root: Path) -> None:
    """Run ``pending`` as one Tune grid. Tune aborts the whole experiment when Ray's memory monitor kills
    a worker (it raises instead of failing the trial): record the trials then in flight as failed and
    go on with the others."""
    from ray import tune
    from ray.exceptions import RayError

    while pending:
        lines = _callback()
        try:
            _tune(trainable, {**common, "spec": tune.grid_search(pending)}, run_dir, name, lines=lines)
            return
        except RuntimeError as exc:
            if not isinstance(exc.__cause__, RayError):
                raise
            message = f"Ray stopped the trial's worker: {str(exc.__cause__).splitlines()[0]}"
            for spec in pending:
                if spec["trial_id"] in lines.started:
                    _record_worker_death(spec, results_root, message)
            pending = [s for s in pending if read_record(record_path(s["suite"], s["trial_id"], results_root)) is None]


def run_suite(suite: Suite, results_root: Path, shared_cache: Path, address: str | None = None,
              cpus: int | None = None, show_progress: bool = True) -> RunSummary:
    """Run every trial of ``suite`` that has no ok record; write records; return what happened."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    run_dir = results_root / suite.name
    pending = [spec for spec in suite.trials if not _done(suite, spec, results_root)]
    skipped = len(suite.trials) - len(pending)
    common = {"results_root": str(results_root.resolve()), "shared_cache": str(shared_cache.resolve()),
              "show_progress": show_progress}
    searches = []
    records = load_records(results_root, [suite.name]) if suite.searches else []
    for spec, search in suite.searches:
        done = sum(1 for r in records if r["spec"].get("search_group") == spec["search_group"] and r["status"] == "ok")
        if done < search.samples:
            searches.append((spec, search, search.samples - done))
    if not pending and not searches:
        return RunSummary(0, skipped, [])

    start_ray(run_dir, address, cpus)
    trainable = tune.with_resources(_trainable, trial_resources(suite))
    _tune_grid(trainable, common, pending, run_dir, f"{suite.name}-grid", results_root)
    for spec, search, remaining in searches:
        _tune(trainable, {**common, "spec": spec, "sample": _tune_space(search)}, run_dir,
              f"{suite.name}-search-{spec['search_group']}", samples=remaining,
              search=BasicVariantGenerator(random_state=spec["seed"] + remaining))

    ids = {spec["trial_id"] for spec in pending}
    finished = {r["trial_id"]: r for r in load_records(results_root, [suite.name])}
    failed = [trial_id for trial_id in ids if finished.get(trial_id, {}).get("status") != "ok"]
    for spec, _, _ in searches:
        group = [r for r in finished.values() if r["spec"].get("search_group") == spec["search_group"]]
        failed += [r["trial_id"] for r in group if r["status"] != "ok"]
    return RunSummary(len(pending) + sum(n for _, _, n in searches), skipped, sorted(failed))
