"""Experiment tracking through Ray Tune's logger callbacks (``bench run --log KIND[=URI]``): each trial's
parameters, its validation curve as it trains (every check's metrics and training loss at the check's
step) and its final metrics. TensorBoard and CSV write Tune's own files into each trial's folder under
``results/<suite>/tune/``; MLflow logs to a tracking server or, by default, to a local SQLite store,
``results/<suite>/mlflow.db``, so it works offline. Nothing is logged unless asked.

The curve is ``valid/<metric>``, ``train_loss`` and ``examples_seen`` at each check's step; the final
result ``test/<metric>`` and ``tested_weights_valid/<metric>`` (the validation score of the weights the
harness tested: the best check's), at the last step. Metric names are logged as MLflow accepts them, ``@`` spelled ``_at_``: ``valid/recall_at_10``. A logger
that fails (a server that went away) stops logging with one note; the run goes on, and the records stay
the results."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

KINDS = ("tensorboard", "csv", "mlflow")
HOOKS = ("setup", "on_step_begin", "on_step_end", "on_trial_start", "on_trial_restore", "on_trial_save",
         "on_trial_result", "on_trial_complete", "on_trial_recover", "on_trial_error", "on_checkpoint",
         "on_experiment_end")  # ray.tune.Callback's hooks, which a guarded logger forwards
MLFLOW_PACKAGES = ("mlflow", "sqlalchemy", "alembic")  # the tracking extra: pip install -e '.[tracking]'
WORKER_KEY = "worker_pid"  # a trial's first result: its worker's process id, for the driver, not logged


@dataclass(frozen=True)
class Logger:
    """One ``--log`` value: its kind, and for mlflow a tracking URI (None: the local store)."""

    kind: str
    uri: str | None = None


def parse_log(value: str) -> Logger:
    """``tensorboard``, ``csv``, ``mlflow`` or ``mlflow=URI`` (argparse type: a ValueError is its error)."""
    kind, _, uri = value.partition("=")
    if kind not in KINDS:
        raise ValueError(f"expected one of {', '.join(KINDS)} (mlflow=URI for a tracking server), got {value!r}")
    if uri and kind != "mlflow":
        raise ValueError(f"only mlflow takes a URI (mlflow=URI), got {value!r}")
    return Logger(kind, uri or None)


def check_loggers(loggers: list[Logger]) -> None:
    """Before any trial starts: the packages each asked logger needs are installed."""
    if any(logger.kind == "mlflow" for logger in loggers):
        missing = [name for name in MLFLOW_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"--log mlflow needs {', '.join(missing)}, which is not installed; expected the "
                              "tracking extra: .venv/bin/pip install -e '.[tracking]'")


def mlflow_uri(logger: Logger, run_dir: Path) -> str:
    """Where an mlflow logger writes: its URI, or the suite's local SQLite store."""
    return logger.uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def logged_name(name: str) -> str:
    """A metric's name as the loggers record it (MLflow refuses ``@``)."""
    return name.replace("@", "_at_")


def logger_callbacks(loggers: list[Logger], run_dir: Path, suite: str) -> list[Any]:
    """Tune logger callbacks for ``loggers`` (one per kind), for the run of ``suite`` in ``run_dir``, each
    guarded so that its failure never stops the run."""
    callbacks: list[Any] = []
    for logger in dict.fromkeys(loggers):
        if logger.kind == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            callback = TBXLoggerCallback()
        elif logger.kind == "csv":
            from ray.tune.logger import CSVLoggerCallback

            callback = CSVLoggerCallback()
        else:
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its "creating tables" lines
            callback = MLflowLoggerCallback(tracking_uri=mlflow_uri(logger, run_dir), experiment_name=suite,
                                            tags={"suite": suite})
        callbacks.append(guarded(callback, logger.kind))
    return callbacks


def guarded(callback: Any, name: str) -> Any:
    """``callback`` behind a Tune callback that forwards every hook and, on the first exception, notes it
    once on stderr and forwards nothing more."""
    from ray import tune

    class Guarded(tune.Callback):
        def __init__(self) -> None:
            self.inner, self.failed = callback, False

    def forwarding(hook: str) -> Any:
        def forward(self: Guarded, *args: Any, **kwargs: Any) -> None:
            if self.failed or hook == "on_trial_result" and WORKER_KEY in kwargs.get("result", {}):
                return
            try:
                getattr(self.inner, hook)(*args, **kwargs)
            except Exception as exc:  # a logger's failure is a note, never the run's end
                self.failed = True
                first = (str(exc).splitlines() or [""])[0][:200]
                print(f"note: --log {name} stopped logging ({type(exc).__name__}: {first}); the run goes on",
                      file=sys.stderr, flush=True)
        return forward

    for hook in HOOKS:
        setattr(Guarded, hook, forwarding(hook))
    return Guarded()


def trial_name(trial: Any) -> str:
    """A Tune trial's name as MLflow and TensorBoard show it: the harness trial's label, dataset, task,
    history length and seed (a search sample also its Tune id), not Tune's ``_trainable_811a8_00002``."""
    spec = trial.config.get("spec")
    if not isinstance(spec, dict):
        return f"trial {trial.trial_id}"
    name = (f"{spec.get('label') or spec.get('method')} · {spec['dataset']['name']} · {spec['task']} · "
            f"N={spec['seq_len']} · seed {spec['seed']}")
    return name + (f" · sample {trial.trial_id}" if trial.config.get("sample") else "")


def trial_dirname(trial: Any) -> str:
    """``trial_name`` as a folder name (TensorBoard names its runs by folder), with Tune's id for uniqueness."""
    readable = re.sub(r"[^A-Za-z0-9=.-]+", "_", trial_name(trial)).strip("_")
    return f"{readable[:100]}_{trial.trial_id}"
