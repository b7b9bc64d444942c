"""Execute a suite's trials as Ray Tune experiments on the Ray ``bench.ray_session`` joins: the grid,
then each search (a few rounds, replacing failed samples), then the final trials of tuned searches.

Each trial's whole record comes back to the driver in its Tune result and the driver writes it
atomically into ``results/<suite>/trials/`` (``bench.trial_lines``): the driver's folder is the truth,
wherever a trial ran. What is left to run is read from those records (``bench.run_plan``), so
``bench run`` after a crash, a kill -9 or a lost node finishes only what is missing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.cache import cache_root
from bench.interrupt import Interrupted, check, descendants, install, signals_interrupt
from bench.memory import memory_kill
from bench.nodes import node_id, trial_files_root
from bench.ray_session import check_cache, cluster_line, start_ray, stop_ray, trial_resources
from bench.run_plan import Plan, plan
from bench.spec import TrialSpec
from bench.store import jsonable, load_records, read_record, record_path
from bench.suite import SearchSpec, Suite
from bench.tracking import WORKER_KEY, Logger, logged_name, logger_callbacks, trial_dirname, trial_name
from bench.trial import execute_trial
from bench.trial_lines import (
    PROGRESS_KEY,
    RECORD_KEY,
    describe,
    headline,
    record_failure,
    sampled_spec,
    trial_lines,
)
from bench.tuning import asha

SEARCH_ROUNDS = 3  # rounds of new samples a search gets in one run to replace failed ones


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


def _sample_done(spec: TrialSpec, sample: dict[str, Any], root: Path) -> bool:
    """Whether the search sample ``sample`` of ``spec`` has a finished (or pruned) record."""
    record = read_record(record_path(spec.suite, sampled_spec({"spec": spec.to_json(), "sample": sample}).trial_id,
                                     root))
    return record is not None and record["status"] in ("ok", "pruned")


def _trainable(config: dict[str, Any]) -> None:
    """A Tune trial: run the trial on whatever node Ray chose and send its whole record back to the driver."""
    from ray import tune

    spec = sampled_spec(config)
    tune.report({WORKER_KEY: os.getpid()})  # which trial a worker Ray's memory monitor names was running
    cache = Path(config["shared_cache"]) if config["shared_cache"] else cache_root()
    files = trial_files_root(Path(config["results_root"]), config["driver_node"])
    record = execute_trial(spec, files, cache, show_progress=config["verbose"],
                           report=lambda progress: tune.report(_progress_result(progress)))
    result = {"ok": record["status"] == "ok", "trial_id": spec.trial_id, "headline": headline(record),
              "describe": describe(spec), RECORD_KEY: json.dumps(record, default=jsonable)}
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
        lines = trial_lines(results_root, show_progress, started)
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
                record_failure(killed, results_root, "OutOfMemory", kill.describe(), kill.worker_gb)
            else:
                kind, message = (("OutOfMemory", f"{kill.describe()} (one of the trials then running)")
                                 if kill is not None else
                                 ("WorkerDied", f"Ray stopped the trial's worker: {str(exc.__cause__).splitlines()[0]}"))
                for spec in pending:
                    if spec.trial_id in lines.started:
                        record_failure(spec, results_root, kind, message)
            pending = [s for s in pending if read_record(record_path(s.suite, s.trial_id, results_root)) is None]


def run_suite(suite: Suite, results_root: Path, shared_cache: Path | None = None, address: str | None = None,
              cpus: int | None = None, show_progress: bool = True, verbose: bool = False,
              keep_stale: bool = False, loggers: list[Logger] = ()) -> RunSummary:
    """Run every trial of ``suite`` that has no ok record, or whose ok record other sources made (unless
    ``keep_stale``), wherever the cluster puts it; write every record into ``results_root`` on this (the
    driver's) machine; return what happened. ``shared_cache`` None: each node uses its own default cache.
    ``loggers``: experiment tracking (``bench.tracking``)."""
    records = load_records(results_root, [suite.name])
    for damaged in records.damaged:
        print(f"[damaged] {damaged}; running the trial again", flush=True)
    todo = plan(suite, records, keep_stale)
    if todo.done:
        return RunSummary(0, todo.skipped, [], len(todo.stale))
    if shared_cache is not None:
        check_cache(shared_cache)
    common = {"results_root": str(results_root.resolve()), "verbose": verbose,
              "shared_cache": str(shared_cache.resolve()) if shared_cache else None}
    run_dir = results_root / suite.name
    started_at, started = time.time(), set()
    before = {p.pid for p in descendants()}
    with signals_interrupt():
        try:
            joined = start_ray(run_dir, address, cpus, verbose, shared_cache, suite.kernels)
            install()
            check()
            _run_trials(suite, common, todo, results_root, show_progress, started, list(loggers), keep_stale)
            check()
            if joined:
                stop_ray(before)
        except Interrupted as stop:
            stop_ray(before)
            ids = list(dict.fromkeys([spec.trial_id for spec in todo.pending] + sorted(started)))  # search samples
            # and final trials too, those that started
            done = sum(1 for i in ids if _written_since(record_path(suite.name, i, results_root), started_at))
            running = max(0, len(started & set(ids)) - done)
            return RunSummary(len(ids), todo.skipped, [], len(todo.stale), stop.signal, stop.exit_code, done,
                              running, len(ids) - done - running)
    return _summary(suite, todo, load_records(results_root, [suite.name]), started)


def _summary(suite: Suite, todo: Plan, records: list[dict[str, Any]], started: set[str]) -> RunSummary:
    """What a run that set out to do ``todo`` did, from the records after it."""
    status = {r["trial_id"]: r["status"] for r in records}
    after = plan(suite, records, keep_stale=True)
    ids = {spec.trial_id for spec in [*todo.pending, *todo.finals, *after.finals]}
    failed = [trial_id for trial_id in ids if status.get(trial_id) != "ok"]
    replaced = 0
    for spec, search, _ in todo.searches:
        bad = [r["trial_id"] for r in records
               if r["spec"].get("search_group") == spec.search_group and r["status"] not in ("ok", "pruned")]
        if after.samples_left(spec.search_group) == 0:
            replaced += len(bad)  # the search got its samples all the same
        else:
            failed += bad
    return RunSummary(len(started), todo.skipped, sorted(failed), len(todo.stale), replaced=replaced)


def _run_trials(suite: Suite, common: dict[str, Any], todo: Plan, results_root: Path, show_progress: bool,
                started: set[str], loggers: list[Logger], keep_stale: bool) -> None:
    """The grid, then each search, then the final trials of tuned searches, as Tune experiments on the Ray
    this process joined."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    run_dir = results_root / suite.name
    common["driver_node"] = node_id()
    resources = trial_resources(suite)
    print(cluster_line(resources), flush=True)
    trainable = tune.with_resources(_trainable, resources)
    _tune_grid(trainable, common, todo.pending, run_dir, f"{suite.name}-grid", results_root, show_progress, started,
               loggers)
    for spec, search, remaining in todo.searches:
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
                  lines=trial_lines(results_root, show_progress, started), loggers=loggers,
                  scheduler=asha(search, spec.budget.steps * spec.budget.batch_size) if search.scheduler else None)
            remaining = plan(suite, load_records(results_root, [suite.name]), keep_stale).samples_left(spec.search_group)
            if remaining <= 0 or search.exhaustive:  # a configuration that failed would fail again
                break
    finals = plan(suite, load_records(results_root, [suite.name]), keep_stale).finals
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
