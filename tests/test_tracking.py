"""Experiment tracking (``bench run --log``): a trial's validation curve and final metrics read back from
the local MLflow store and from TensorBoard's event files, the same numbers as its record."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.store import load_records
from bench.tracking import Logger, check_loggers, guarded, parse_log

from helpers import run_cli, suite_file


def test_log_values_are_checked_before_anything_runs(monkeypatch):
    assert parse_log("mlflow=http://host:5000") == Logger("mlflow", "http://host:5000")
    with pytest.raises(ValueError, match="only mlflow takes a URI"):
        parse_log("csv=out.csv")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"--log mlflow needs mlflow, sqlalchemy, alembic.*pip install -e '.\[tracking\]'"):
        check_loggers([Logger("mlflow")])


def test_a_trials_curve_and_metrics_reach_mlflow_and_tensorboard(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra (pip install -e '.[tracking]') is not installed")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = suite_file(tmp_path, [{"method": "dual_encoder", "params": {"layers": 1, "dim": 16, "heads": 2}}],
                      budget={"steps": 6, "eval_every": 2, "max_valid_examples": 40, "max_test_examples": 40})
    results = tmp_path / "results"
    out = run_cli(["run", str(path), "--results", str(results), "--no-progress", "--log", "mlflow",
                   "--log", "tensorboard", "--log", "csv"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    (record,) = load_records(results, ["t"])
    curve = {point["step"]: point["valid"]["recall@10"] for point in record["training"]["curve"]}
    assert sorted(curve) == [2, 4, 6]

    client = MlflowClient(f"sqlite:///{results / 't' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    history = client.get_metric_history(run.info.run_id, "valid/recall_at_10")
    assert {m.step: m.value for m in history} == pytest.approx(curve)
    assert run.data.metrics["test/recall_at_10"] == pytest.approx(record["metrics"]["test"]["recall@10"]["mean"])
    assert run.data.params["spec/method"] == "dual_encoder"
    assert run.info.run_name == "dual_encoder · ml-100k · next_item · N=20 · seed 0"  # the trial, not Tune's id

    (events,) = (results / "t" / "tune").rglob("events.out.tfevents.*")
    assert events.parent.name.startswith("dual_encoder_ml-100k_next_item_N=20_seed_0_")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    scalars = accumulator.Scalars("ray/tune/valid/recall_at_10")
    assert {s.step: s.value for s in scalars} == pytest.approx(curve)
    assert list((results / "t" / "tune").rglob("progress.csv"))


def test_a_logger_that_fails_is_one_note_and_the_run_goes_on(capsys):
    class Broken:
        calls = 0

        def on_trial_result(self, *args, **kwargs):
            Broken.calls += 1
            raise ConnectionError("http://127.0.0.1:9: connection refused\nmore lines")

    logger = guarded(Broken(), "mlflow")
    for step in range(3):  # what Tune calls on every result; a second failure is not even tried
        logger.on_trial_result(iteration=step, trials=[], trial=None, result={})
    logger.on_trial_complete(iteration=3, trials=[], trial=None)  # hooks the logger lacks are not tried either
    assert Broken.calls == 1
    assert capsys.readouterr().err == ("note: --log mlflow stopped logging (ConnectionError: http://127.0.0.1:9: "
                                       "connection refused); the run goes on\n")
