"""Execute a suite's trials as Ray Tune experiments: a local Ray (temp and results under the run's
folder) or an existing cluster (``--address`` / ``RAY_ADDRESS``).

Each trial's whole record comes back to the driver in its Tune result and the driver writes it
atomically into ``results/<suite>/trials/``: the driver's folder is the truth, wherever a trial ran.
Trials that already have an ``ok`` record are not run again, so ``bench run`` after a crash, a kill -9
or a lost node finishes only what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.cache import cache_root
from bench.errors import BenchError
from bench.interrupt import (
    Interrupted,
    check,
    descendants,
    install,
    marked,
    signals_interrupt,
    stop_processes,
    stopping,
)
from bench.kernels import worker_env
from bench.memory import memory_kill
from bench.nodes import node_id, trial_files_root
from bench.paper_budgets import paper_examples
from bench.spec import TrialSpec
from bench.store import jsonable, load_records, read_checked, read_record, record_path, write_json_atomically
from bench.suite import BUDGET_PREFIX, SearchSpec, Suite
from bench.tracking import WORKER_KEY, Logger, logged_name, logger_callbacks, trial_dirname, trial_name
from bench.trial import execute_trial
from bench.tuning import asha, curve_point, final_specs, pruned_record, samples_done

SEARCH_ROUNDS = 3  # rounds of new samples a search gets in one run to replace failed ones
MAX_SOCKET_DIR = 60  # Ray's unix socket paths must stay under ~107 characters
RECORD_KEY = "record_json"  # the Tune result field that carries a trial's whole record to the driver
PROGRESS_KEY = "progress_json"  # ... and the one that carries a progress report (a validation check, a loss)
PROGRESS_EVERY = 30.0  # seconds between two progress lines of one trial
_local_ray_temp: str | None = None  # the temp folder of the local Ray this process started, if any
TIMEOUT_GRACE = 1800.0  # seconds on top of twice the seconds guard (validation and prediction are not in it)


@dataclass
class RunSummary:
    ran: int
    skipped_done: int
    failed: list[str]
    stale: int = 0  # finished records made by other sources, rerun (or kept with keep_stale)
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    exit_code: int = 0
    finished: int = 0  # of the trials this run was to run: with a record now
    running: int = 0  # ... stopped while they ran (no record: run again next time)
    not_started: int = 0
    replaced: int = 0  # search samples that failed and were replaced by others


def trial_timeout(spec: TrialSpec) -> float | None:
    """The wall-clock seconds after which the harness stops a trial: ``budget.timeout``, else twice the
    ``budget.seconds`` guard plus half an hour, else none."""
    budget = spec.budget
    if budget.timeout:
        return float(budget.timeout)
    return 2 * float(budget.seconds) + TIMEOUT_GRACE if budget.seconds else None


def _finished(suite: Suite, spec: TrialSpec, root: Path) -> dict[str, Any] | None:
    """The trial's ok record, or None (a damaged record is said and run again)."""
    path = record_path(suite.name, spec.trial_id, root)
    record, problem = read_checked(path)
    if problem:
        print(f"[damaged] {path}: {problem}; running the trial again", flush=True)
    return record if record is not None and record["status"] == "ok" else None


def _stale(record: dict[str, Any], spec: TrialSpec) -> bool:
    """Whether a finished record was made by other sources than the ones here (``bench.provenance``)."""
    from bench.provenance import same_sources
    from bench.registry import get_method

    return not same_sources(record, get_method(spec.method))


def _describe(spec: TrialSpec) -> str:
    return f"{spec.describe()} [{spec.trial_id}]"


def _headline(record: dict[str, Any]) -> str:
    if record.get("status") != "ok":
        return f"FAILED: {record.get('error', {}).get('message', '?')}"
    if "test" not in record["metrics"]:  # a tuned suite's search sample
        valid = record["metrics"]["valid"]
        shown = ", ".join(f"{name}={stats['mean']:.4f}" for name, stats in list(valid.items())[:3])
        return f"valid {shown} (a search sample: chosen among on validation, not tested){_training_line(record)}"
    test = record["metrics"]["test"]
    shown = ", ".join(f"{name}={stats['mean']:.4f}" for name, stats in list(test.items())[:3])
    used, total = record["examples"]["test"]
    capped = f" (on {used} of {total} test examples)" if used < total else ""
    return f"test {shown}{capped}{_training_line(record)}"


def _training_line(record: dict[str, Any]) -> str:
    """How training ended and how far its budget is from the paper's, for a trial with a validation curve."""
    training, spec = record.get("training") or {}, TrialSpec.of(record["spec"])
    if not training.get("curve"):
        return ""
    line = f"; stopped by {training['stopped']}, best check at step {training['best_step']}"
    if training.get("examples_at_best") is not None:
        line += f" ({training['examples_at_best']:,} examples; its weights tested)"
    if record.get("machine_dependent"):
        line += " [the seconds guard stopped it: the result depends on this machine's speed]"
    if training["still_rising"]:
        line += ", validation still rising"
    paper = paper_examples(spec.dataset.name, spec.task)
    if paper:
        share = 100 * training["examples_seen"] / paper
        line += f"; {training['examples_seen']:,} training examples = {share:.2g}% of the paper's ({paper:,})"
    facts = record.get("accounting") or {}
    if facts.get("pretrain_examples"):
        line += f", after {facts['pretrain_examples']:,} pretraining examples"
    if facts.get("total_train_flops"):
        line += f"; {facts['total_train_flops']:.3g} training FLOPs in all"
    return line


def _sampled_spec(config: dict[str, Any]) -> TrialSpec:
    """The trial's spec (Tune carries its JSON) with a search's sampled parameters and budget fields
    filled in (its id follows)."""
    spec = TrialSpec.from_json(config["spec"])
    sampled = config.get("sample") or {}
    budget = {k.removeprefix(BUDGET_PREFIX): v for k, v in sampled.items() if k.startswith(BUDGET_PREFIX)}
    params = {k: v for k, v in sampled.items() if not k.startswith(BUDGET_PREFIX)}
    return spec.with_params(params).with_budget(**budget) if sampled else spec


def _sample_done(spec: TrialSpec, sample: dict[str, Any], root: Path) -> bool:
    """Whether the search sample ``sample`` of ``spec`` has a finished (or pruned) record."""
    record = read_record(record_path(spec.suite, _sampled_spec({"spec": spec.to_json(), "sample": sample}).trial_id,
                                     root))
    return record is not None and record["status"] in ("ok", "pruned")


def _trainable(config: dict[str, Any]) -> None:
    """A Tune trial: run the trial on whatever node Ray chose and send its whole record back to the driver."""
    from ray import tune

    spec = _sampled_spec(config)
    tune.report({WORKER_KEY: os.getpid()})  # which trial a worker Ray's memory monitor names was running
    cache = Path(config["shared_cache"]) if config["shared_cache"] else cache_root()
    files = trial_files_root(Path(config["results_root"]), config["driver_node"])
    record = execute_trial(spec, files, cache, show_progress=config["verbose"],
                           report=lambda progress: tune.report(_progress_result(progress)))
    result = {"ok": record["status"] == "ok", "trial_id": spec.trial_id, "headline": _headline(record),
              "describe": _describe(spec), RECORD_KEY: json.dumps(record, default=jsonable)}
    for split, metrics in record.get("metrics", {}).items():  # the tested weights' validation score: not a check
        prefix = "test" if split == "test" else "tested_weights_valid"
        result.update({logged_name(f"{prefix}/{name}"): stats["mean"] for name, stats in metrics.items()})
    steps = (record.get("accounting") or {}).get("train_steps")
    if isinstance(steps, int):
        result["timesteps_total"] = steps  # the final metrics at the last training step (loggers' x axis)
    tune.report(result)


def _progress_result(progress: dict[str, Any]) -> dict[str, Any]:
    """A progress report as a Tune result: the line the driver prints (JSON) and, beside it, the numbers
    logger callbacks record (``--log``), at the report's training step (``timesteps_total``)."""
    shown = {k: v for k, v in progress.items() if k != "logged"}
    return {PROGRESS_KEY: json.dumps(shown), **{logged_name(k): v for k, v in (progress.get("logged") or {}).items()}}


def _tune_space(search: SearchSpec) -> dict[str, Any]:
    from ray import tune

    builders = {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint,
                "choice": lambda *values: tune.choice(list(values))}
    return {key: builders[kind](*args) for key, dist in search.space.items() for kind, args in dist.items()}


def _callback(results_root: Path, show_progress: bool = True, started: set[str] | None = None) -> Any:
    from ray import tune

    class TrialLines(tune.Callback):
        """On the driver: one line per trial start and finish; each finished trial's record written into
        the driver's results folder; a trial whose worker died recorded as failed; a trial past its
        timeout stopped and recorded as failed."""

        def __init__(self) -> None:
            self.started: set[str] = started if started is not None else set()  # trial ids, this run
            self.last_progress: dict[str, float] = {}
            self.deadlines: dict[str, tuple[float, float]] = {}  # Tune trial id -> (started, timeout)
            self.timed_out: dict[str, float] = {}  # Tune trial id -> seconds it ran when stopped
            self.curves: dict[str, list[dict[str, Any]]] = {}  # Tune trial id -> its validation checks so far
            self.began: dict[str, float] = {}  # Tune trial id -> when it started (a pruned sample's cost)
            self.workers: dict[int, TrialSpec] = {}  # worker process id -> the trial it runs

        def on_trial_start(self, iteration, trials, trial, **info):
            spec = _sampled_spec(trial.config)
            self.started.add(spec.trial_id)
            self.began[trial.trial_id] = time.monotonic()
            timeout = trial_timeout(spec)
            if timeout is not None:
                self.deadlines[trial.trial_id] = (time.monotonic(), timeout)
            print(f"[start] {spec.describe()}", flush=True)

        def on_step_begin(self, iteration, trials, **info):
            import ray

            check()  # a stop signal arrived: leave Tune's loop here
            now = time.monotonic()
            for trial in trials:
                started, timeout = self.deadlines.get(trial.trial_id, (now, None))
                actor = trial.temporary_state.ray_actor
                if timeout is None or now - started <= timeout or trial.trial_id in self.timed_out or actor is None:
                    continue
                self.timed_out[trial.trial_id] = now - started
                ray.kill(actor, no_restart=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if WORKER_KEY in result:
                self.workers[result[WORKER_KEY]] = _sampled_spec(trial.config)
            point = curve_point(result) if PROGRESS_KEY in result else None
            if point is not None:
                self.curves.setdefault(trial.trial_id, []).append(point)
            if PROGRESS_KEY not in result or not show_progress:
                return
            now = time.monotonic()
            if now - self.last_progress.get(trial.trial_id, -PROGRESS_EVERY) >= PROGRESS_EVERY:
                self.last_progress[trial.trial_id] = now
                spec = _sampled_spec(trial.config)
                shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in json.loads(result[PROGRESS_KEY]).items())
                print(f"[...]   {spec.label} {spec.task} seed={spec.seed}: {shown}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            if RECORD_KEY not in result:  # the scheduler stopped it (one that died: on_trial_error records it)
                spec, points = _sampled_spec(trial.config), self.curves.get(trial.trial_id)
                if points and not spec.tested and not stopping():
                    write_json_atomically(record_path(spec.suite, spec.trial_id, results_root),
                                          pruned_record(spec, points, time.monotonic() - self.began[trial.trial_id]))
                    metric = spec.search_metric or "recall@10"
                    print(f"[pruned] {spec.describe()}: stopped by the scheduler at step {points[-1]['step']} "
                          f"(valid {metric}={points[-1]['valid'].get(metric, float('nan')):.4f})", flush=True)
                return
            record = json.loads(result[RECORD_KEY])
            write_json_atomically(record_path(record["suite"], record["trial_id"], results_root), record)
            print(f"[done]  {result['describe']}: {result['headline']}", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            spec = _sampled_spec(trial.config)
            if trial.trial_id in self.timed_out:
                ran, limit = self.timed_out[trial.trial_id], self.deadlines[trial.trial_id][1]
                _record_failure(spec, results_root, "TimedOut",
                                f"stopped by the harness after {ran:.0f} s: over its time limit of {limit:.0f} s "
                                "(budget.timeout, else 2 x budget.seconds + 30 min); a fit or predict that never "
                                "returns, or a budget too large for this machine")
            else:
                kill = memory_kill(_ray_error_text(trial))
                if kill is not None:
                    _record_failure(spec, results_root, "OutOfMemory", kill.describe(), peak_rss_gb=kill.worker_gb)
                else:
                    _record_failure(spec, results_root, "WorkerDied", f"the trial's worker died: {_ray_error(trial)}")

    return TrialLines()


def _ray_error_text(trial: Any) -> str:
    """Ray's whole error text for a trial ("" where it left none)."""
    try:
        return Path(trial.error_file).read_text()
    except (OSError, TypeError):
        return ""


def _ray_error(trial: Any) -> str:
    """The last line of Ray's error for a trial (e.g. its node died), with the file that holds the rest."""
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
        return f"{lines[-1].strip()} (Ray's error file: {trial.error_file})"
    except (OSError, TypeError, IndexError):
        return f"no error text from Ray (error file: {trial.error_file})"


def _record_failure(spec: TrialSpec, root: Path, kind: str, message: str, peak_rss_gb: float | None = None) -> None:
    """A failure record for a trial that could not send its own (its worker died, or the harness stopped
    it), with the worker's memory where Ray reported it. A trial that already has its record finished
    before: it is left as it is and not reported again; nothing is recorded while a signal stops the run
    (those trials simply run again)."""
    path = record_path(spec.suite, spec.trial_id, root)
    if stopping() or read_record(path) is not None:
        return
    record = {"trial_id": spec.trial_id, "suite": spec.suite, "spec": spec.to_json(), "status": "failed",
              "error": {"type": kind, "message": message}}
    if peak_rss_gb is not None:
        record["peak_rss_gb"] = peak_rss_gb
    write_json_atomically(path, record)
    print(f"[error] {_describe(spec)}: {message}", flush=True)


def start_ray(run_dir: Path, address: str | None, cpus: int | None, verbose: bool = False,
              cache: Path | None = None, kernels: str = "native") -> bool:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray with its temp folder in ``run_dir``.
    Quiet unless ``verbose``: Ray's and Tune's own banners, warnings and the workers' output (progress
    bars, library warnings) are shown only then. A ``cache``
    given here is every node's cache ($USERLLM_BENCH_CACHE in every worker); ``kernels`` (the suite's
    mode) sets the pins of ``bench.kernels`` in every worker. True when this call
    connected (False: this process had already joined a Ray)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p), **worker_env(kernels)}
    if cache is not None:
        env["USERLLM_BENCH_CACHE"] = os.environ["USERLLM_BENCH_CACHE"] = str(cache.resolve())
    level = "INFO" if verbose else "CRITICAL"
    if not verbose:  # the harness says what happened to each trial itself ([done], [error] lines)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment box, no TensorBoard hint
        logging.getLogger("ray").setLevel(logging.CRITICAL)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # the harness stops the run itself (bench.interrupt)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # records are the results; --log adds loggers
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"  # a tuned search's scheduler reads only check results
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=verbose, logging_level=level)
        if not verbose:
            _ray_messages_to(run_dir / "ray-messages.log")
        return True
    temp = (run_dir / ".ray").resolve()
    if len(str(temp)) > MAX_SOCKET_DIR:
        import tempfile

        temp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        print(f"note: {run_dir}/.ray is too long a path for Ray's sockets; Ray's temp folder is {temp}")
    temp.mkdir(parents=True, exist_ok=True)
    global _local_ray_temp
    _local_ray_temp = str(temp)
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp), runtime_env={"env_vars": env},
             log_to_driver=verbose, configure_logging=True, logging_level=level)
    if not verbose:
        _ray_messages_to(run_dir / "ray-messages.log")
    # stops what this run started if it dies without stopping Ray (kill -9); a session of its own, so a
    # Ctrl-C in the terminal does not reach it
    subprocess.Popen([sys.executable, "-m", "bench.reaper", str(os.getpid()), str(temp)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def _ray_messages_to(log: Path) -> None:
    """Ray's driver prints the errors its raylets publish ("(raylet) A worker died ...") whatever
    ``log_to_driver`` says; quiet runs append them to ``log`` instead (the harness's own [error] line
    says what happened to the trial)."""
    import ray._private.worker as ray_worker

    def to_log(data: dict[str, Any], ignore_prefix: bool) -> None:
        with open(log, "a") as out:
            out.writelines(f"({data.get('pid')}) {line}\n" for line in data.get("lines", []))

    ray_worker.print_to_stdstream = to_log


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must answer before Ray is asked to join it (Ray
    itself waits minutes on a wrong one); "auto" and other forms are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BenchError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); expected the "
                         "address `ray start --head` printed (host:port, or ray://host:10001 for Ray Client)") from None


def check_cache(cache: Path) -> None:
    """``--cache`` must be a folder this machine can write to (every node uses the same path)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"--cache {cache}: cannot write there ({exc.strerror or exc}); expected a writable folder") from None


def trial_resources(suite: Suite) -> dict[str, float]:
    """CPUs, GPUs and host memory (bytes) per trial: the suite's ask, bounded by what the largest node has
    (gpu auto: 1 if any; a fraction such as 0.25 packs trials onto one GPU; no GPU in the cluster: 0).
    Ray packs trials onto a node only while their memory asks fit its memory."""
    import ray

    available = ray.cluster_resources()
    node_memory = max((node["Resources"].get("memory", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    memory = min(suite.resources["memory_gb"] * 2**30, node_memory)
    cpu = min(suite.resources["cpu"], int(available.get("CPU", 1)))
    gpu, gpus = suite.resources["gpu"], available.get("GPU", 0)
    if gpu == "auto":
        gpu = 1 if gpus >= 1 else 0
    elif gpu > gpus:
        gpu = min(int(gpu), int(gpus)) if gpu >= 1 else 0
    return {"cpu": cpu, "gpu": gpu, "memory": memory}


def cluster_line(resources: dict[str, float]) -> str:
    """What the cluster has and how many trials of ``resources`` it runs at once."""
    import math

    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    per_node = [math.floor(node["Resources"].get("CPU", 0) / resources["cpu"]) for node in nodes]
    if resources["gpu"]:
        per_node = [min(n, math.floor(node["Resources"].get("GPU", 0) / resources["gpu"] + 1e-9))
                    for n, node in zip(per_node, nodes)]
    per_node = [min(n, math.floor(node["Resources"].get("memory", 0) / resources["memory"] + 1e-9))
                if resources.get("memory") else n for n, node in zip(per_node, nodes)]
    return (f"cluster: {len(nodes)} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s); each trial takes {resources['cpu']:g} "
            f"CPU(s), {resources['gpu']:g} GPU(s) and {resources.get('memory', 0) / 2**30:.3g} GiB: up to "
            f"{sum(per_node)} trial(s) at once")


def _tune(trainable: Any, param_space: dict[str, Any], run_dir: Path, name: str, samples: int = 1,
          search: Any = None, lines: Any = None, loggers: list[Logger] = (), scheduler: Any = None) -> None:
    from ray import tune

    tune_config = tune.TuneConfig(num_samples=samples, search_alg=search, reuse_actors=False, scheduler=scheduler,
                                  trial_name_creator=trial_name, trial_dirname_creator=trial_dirname)
    callbacks = [lines, *logger_callbacks(list(loggers), run_dir, run_dir.name)]
    run_config = tune.RunConfig(name=name, storage_path=str((run_dir / "tune").resolve()), verbose=0,
                                callbacks=callbacks, failure_config=tune.FailureConfig(fail_fast=False, max_failures=0))
    tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


def _tune_grid(trainable: Any, common: dict[str, Any], pending: list[TrialSpec], run_dir: Path, name: str,
               results_root: Path, show_progress: bool = True, started: set[str] | None = None,
               loggers: list[Logger] = ()) -> None:
    """Run ``pending`` as one Tune grid. Tune aborts the whole experiment when Ray's memory monitor kills
    a worker (it raises instead of failing the trial): record the trial whose worker it was as out of
    memory (by the worker's process id; where that is unknown, every trial then in flight) and go on
    with the others, those that were in flight included."""
    from ray import tune
    from ray.exceptions import RayError

    while pending:
        lines = _callback(results_root, show_progress, started)
        try:
            _tune(trainable, {**common, "spec": tune.grid_search([spec.to_json() for spec in pending])}, run_dir,
                  name, lines=lines, loggers=loggers)
            return
        except RuntimeError as exc:
            if not isinstance(exc.__cause__, RayError):
                raise
            kill = memory_kill(str(exc.__cause__))
            killed = lines.workers.get(kill.pid) if kill is not None else None
            if killed is not None:  # that trial alone; the others in flight run again
                _record_failure(killed, results_root, "OutOfMemory", kill.describe(), kill.worker_gb)
            else:
                kind, message = (("OutOfMemory", f"{kill.describe()} (one of the trials then running)")
                                 if kill is not None else
                                 ("WorkerDied", f"Ray stopped the trial's worker: {str(exc.__cause__).splitlines()[0]}"))
                for spec in pending:
                    if spec.trial_id in lines.started:
                        _record_failure(spec, results_root, kind, message)
            pending = [s for s in pending if read_record(record_path(s.suite, s.trial_id, results_root)) is None]


def run_suite(suite: Suite, results_root: Path, shared_cache: Path | None = None, address: str | None = None,
              cpus: int | None = None, show_progress: bool = True, verbose: bool = False,
              keep_stale: bool = False, loggers: list[Logger] = ()) -> RunSummary:
    """Run every trial of ``suite`` that has no ok record, or whose ok record other sources made (unless
    ``keep_stale``), wherever the cluster puts it; write every record into ``results_root`` on this (the
    driver's) machine; return what happened. ``shared_cache`` None: each node uses its own default cache.
    ``loggers``: experiment tracking (``bench.tracking``)."""
    run_dir = results_root / suite.name
    finished = {spec.trial_id: _finished(suite, spec, results_root) for spec in suite.trials}
    stale = {spec.trial_id for spec in suite.trials
             if finished[spec.trial_id] is not None and _stale(finished[spec.trial_id], spec)}
    pending = [spec for spec in suite.trials
               if finished[spec.trial_id] is None or (spec.trial_id in stale and not keep_stale)]
    skipped = len(suite.trials) - len(pending)
    common = {"results_root": str(results_root.resolve()), "verbose": verbose,
              "shared_cache": str(shared_cache.resolve()) if shared_cache else None}
    searches = []
    records = load_records(results_root, [suite.name]) if suite.searches else []
    for spec, search in suite.searches:
        done = samples_done(records, spec.search_group, search.tuned)
        if done < search.target:
            searches.append((spec, search, search.target - done))
    finals = [spec for spec in final_specs(suite.searches, records)
              if _finished(suite, spec, results_root) is None]
    if not pending and not searches and not finals:
        return RunSummary(0, skipped, [], len(stale))

    if shared_cache is not None:
        check_cache(shared_cache)
    started_at, started = time.time(), set()
    before = {p.pid for p in descendants()}
    with signals_interrupt():
        try:
            joined = start_ray(run_dir, address, cpus, verbose, shared_cache, suite.kernels)
            install()
            check()
            _run_trials(suite, common, pending, searches, results_root, show_progress, started, list(loggers))
            check()
            if joined:
                stop_ray(before)
        except Interrupted as stop:
            stop_ray(before)
            ids = list(dict.fromkeys([spec.trial_id for spec in pending] + sorted(started)))  # search samples and
            # final trials too, those that started
            done = sum(1 for i in ids if _written_since(record_path(suite.name, i, results_root), started_at))
            running = max(0, len(started & set(ids)) - done)
            return RunSummary(len(ids), skipped, [], len(stale), stop.signal, stop.exit_code, done, running,
                              len(ids) - done - running)

    records = load_records(results_root, [suite.name])
    ids = {spec.trial_id for spec in [*pending, *final_specs(suite.searches, records)]}
    finished = {r["trial_id"]: r for r in records}
    failed = [trial_id for trial_id in ids if finished.get(trial_id, {}).get("status") != "ok"]
    replaced = 0
    for spec, search, _ in searches:
        group = [r for r in finished.values() if r["spec"].get("search_group") == spec.search_group]
        bad = [r["trial_id"] for r in group if r["status"] not in ("ok", "pruned")]
        if samples_done(records, spec.search_group, search.tuned) >= search.target:
            replaced += len(bad)  # the search got its samples all the same
        else:
            failed += bad
    return RunSummary(len(started), skipped, sorted(failed), len(stale), replaced=replaced)


def _run_trials(suite: Suite, common: dict[str, Any], pending: list[TrialSpec], searches: list[tuple],
                results_root: Path, show_progress: bool, started: set[str], loggers: list[Logger]) -> None:
    """The grid, then each search, then the final trials of tuned searches, as Tune experiments on the Ray
    this process joined."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    run_dir = results_root / suite.name
    common["driver_node"] = node_id()
    resources = trial_resources(suite)
    print(cluster_line(resources), flush=True)
    trainable = tune.with_resources(_trainable, resources)
    _tune_grid(trainable, common, pending, run_dir, f"{suite.name}-grid", results_root, show_progress, started,
               loggers)
    for spec, search, remaining in searches:
        for attempt in range(SEARCH_ROUNDS):  # a failed sample is replaced by a new one, a few rounds at most
            check()
            if search.exhaustive:  # every configuration once: those without a record, as a grid
                sample: Any = tune.grid_search([combination for combination in search.combinations()
                                                if not _sample_done(spec, combination, results_root)])
                samples = 1
            else:
                sample, samples = _tune_space(search), remaining
            _tune(trainable, {**common, "spec": spec.to_json(), "sample": sample}, run_dir,
                  f"{suite.name}-search-{spec.search_group}", samples=samples,
                  search=BasicVariantGenerator(random_state=spec.seed + remaining + 1000 * attempt),
                  lines=_callback(results_root, show_progress, started), loggers=loggers,
                  scheduler=asha(search, spec.budget.steps * spec.budget.batch_size) if search.scheduler else None)
            done = samples_done(load_records(results_root, [suite.name]), spec.search_group, search.tuned)
            remaining = search.target - done
            if remaining <= 0 or search.exhaustive:  # a configuration that failed would fail again
                break
    finals = [spec for spec in final_specs(suite.searches, load_records(results_root, [suite.name]))
              if _finished(suite, spec, results_root) is None]
    if finals:  # each tuned search's best sample, trained again on its final seeds and tested once
        check()
        print(f"tuned: {len(finals)} final trial(s) of the best configurations by validation", flush=True)
        _tune_grid(trainable, common, finals, run_dir, f"{suite.name}-finals", results_root, show_progress,
                   started, loggers)


def _written_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def stop_ray(before: set[int]) -> None:
    """Disconnect from Ray; a local Ray is shut down, and every process started since ``before`` (the
    pids of this process's descendants then) or naming the local Ray's temp folder is stopped, workers
    by their process group: nothing of this run is left running. A cluster's own processes are neither."""
    import ray

    processes = [p for p in descendants() if p.pid not in before]
    if ray.is_initialized():
        ray.shutdown()
    marker = [] if _local_ray_temp is None else marked(_local_ray_temp)
    stop_processes([p for p in {*processes, *marker} if p.is_running()])
