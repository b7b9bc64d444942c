"""What the driver does as a suite's trials run under Tune: one line per trial start, progress and end;
each finished trial's record written into the driver's results folder; a trial whose worker died, or
that ran past its time limit, recorded as failed; a search sample the scheduler stopped recorded as
pruned. Also the trial-side pieces both ends share: the keys that carry a record and a progress report
in a Tune result, and a search sample's spec."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.interrupt import check, stopping
from bench.memory import memory_kill
from bench.paper_budgets import paper_examples
from bench.spec import TrialSpec
from bench.store import read_record, record_path, write_json_atomically
from bench.suite import BUDGET_PREFIX
from bench.tracking import WORKER_KEY
from bench.tuning import curve_point, pruned_record

RECORD_KEY = "record_json"  # the Tune result field that carries a trial's whole record to the driver
PROGRESS_KEY = "progress_json"  # ... and the one that carries a progress report (a validation check, a loss)
PROGRESS_EVERY = 30.0  # seconds between two progress lines of one trial
TIMEOUT_GRACE = 1800.0  # seconds on top of twice the seconds guard (validation and prediction are not in it)


def trial_timeout(spec: TrialSpec) -> float | None:
    """The wall-clock seconds after which the harness stops a trial: ``budget.timeout``, else twice the
    ``budget.seconds`` guard plus half an hour, else none."""
    budget = spec.budget
    if budget.timeout:
        return float(budget.timeout)
    return 2 * float(budget.seconds) + TIMEOUT_GRACE if budget.seconds else None


def describe(spec: TrialSpec) -> str:
    return f"{spec.describe()} [{spec.trial_id}]"


def headline(record: dict[str, Any]) -> str:
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


def sampled_spec(config: dict[str, Any]) -> TrialSpec:
    """The trial's spec (Tune carries its JSON) with a search's sampled parameters and budget fields
    filled in (its id follows)."""
    spec = TrialSpec.from_json(config["spec"])
    sampled = config.get("sample") or {}
    budget = {k.removeprefix(BUDGET_PREFIX): v for k, v in sampled.items() if k.startswith(BUDGET_PREFIX)}
    params = {k: v for k, v in sampled.items() if not k.startswith(BUDGET_PREFIX)}
    return spec.with_params(params).with_budget(**budget) if sampled else spec




def trial_lines(results_root: Path, show_progress: bool = True, started: set[str] | None = None) -> Any:
    """The Tune callback (``TrialLines``) of one Tune experiment; ``started`` collects the ids of the trials
    that started (shared by the experiments of one run)."""
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
            self.specs: dict[str, TrialSpec] = {}  # Tune trial id -> its spec, parsed once

        def spec(self, trial: Any) -> TrialSpec:
            """The trial's spec (a search sample's with its sampled values), parsed on its first hook."""
            if trial.trial_id not in self.specs:
                self.specs[trial.trial_id] = sampled_spec(trial.config)
            return self.specs[trial.trial_id]

        def on_trial_start(self, iteration, trials, trial, **info):
            spec = self.spec(trial)
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
                self.workers[result[WORKER_KEY]] = self.spec(trial)
            point = curve_point(result) if PROGRESS_KEY in result else None
            if point is not None:
                self.curves.setdefault(trial.trial_id, []).append(point)
            if PROGRESS_KEY not in result or not show_progress:
                return
            now = time.monotonic()
            if now - self.last_progress.get(trial.trial_id, -PROGRESS_EVERY) >= PROGRESS_EVERY:
                self.last_progress[trial.trial_id] = now
                spec = self.spec(trial)
                shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in json.loads(result[PROGRESS_KEY]).items())
                print(f"[...]   {spec.label} {spec.task} seed={spec.seed}: {shown}", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            if RECORD_KEY not in result:  # the scheduler stopped it (one that died: on_trial_error records it)
                spec, points = self.spec(trial), self.curves.get(trial.trial_id)
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
            spec = self.spec(trial)
            if trial.trial_id in self.timed_out:
                ran, limit = self.timed_out[trial.trial_id], self.deadlines[trial.trial_id][1]
                record_failure(spec, results_root, "TimedOut",
                                f"stopped by the harness after {ran:.0f} s: over its time limit of {limit:.0f} s "
                                "(budget.timeout, else 2 x budget.seconds + 30 min); a fit or predict that never "
                                "returns, or a budget too large for this machine")
            else:
                kill = memory_kill(_ray_error_text(trial))
                if kill is not None:
                    record_failure(spec, results_root, "OutOfMemory", kill.describe(), peak_rss_gb=kill.worker_gb)
                else:
                    record_failure(spec, results_root, "WorkerDied", f"the trial's worker died: {_ray_error(trial)}")

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


def record_failure(spec: TrialSpec, root: Path, kind: str, message: str, peak_rss_gb: float | None = None) -> None:
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
    print(f"[error] {describe(spec)}: {message}", flush=True)
