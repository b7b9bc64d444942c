"""Validation-driven training, owned by the harness: checks every eval_every steps scored by the harness,
patience and wall-clock stops, the best state restored, the curve and the stop reason in the record."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.context import Budget
from bench.data import build_split
from bench.tasks import get_task
from bench.trial import run_trial
from bench.validation import Validation

from helpers import TINY_DUAL_ENCODER
from helpers import validation_spec as spec


def test_checks_every_eval_every_steps_and_the_final_valid_metric_is_the_best_checks(tmp_path):
    body = run_trial(spec("dual_encoder", {"steps": 40, "eval_every": 10}, TINY_DUAL_ENCODER), tmp_path, tmp_path)
    training = body["training"]
    assert [p["step"] for p in training["curve"]] == [10, 20, 30, 40]
    assert [p["examples_seen"] for p in training["curve"]] == [320, 640, 960, 1280]
    assert training["stopped"] == "steps" and training["valid_metric"] == "recall@10"
    metrics = {f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in (1, 5, 10)}
    assert all(np.isfinite(p["train_loss"]) and set(p["valid"]) == metrics for p in training["curve"])
    seconds = [p["seconds"] for p in training["curve"]]
    assert seconds == sorted(seconds) and seconds[0] > 0
    best = max(training["curve"], key=lambda p: (p["valid"]["recall@10"], -p["step"]))
    assert training["best_step"] == best["step"]
    # the restored weights are the best check's: the harness's final validation score reproduces it
    assert body["metrics"]["valid"]["recall@10"]["mean"] == pytest.approx(best["valid"]["recall@10"])


def test_patience_stops_after_that_many_checks_without_improvement(tmp_path):
    body = run_trial(spec("dual_encoder", {"steps": 60, "eval_every": 2, "patience": 2, "lr": 1e-6,
                                           "max_valid_examples": 50}, TINY_DUAL_ENCODER), tmp_path, tmp_path)
    training, curve = body["training"], body["training"]["curve"]
    assert training["stopped"] == "patience" and curve[-1]["step"] < 60
    metric = [p["valid"]["recall@10"] for p in curve]
    best_index = max(range(len(metric)), key=lambda i: (metric[i], -i))
    assert len(curve) - 1 - best_index == 2  # exactly `patience` checks after the best, none improving
    assert body["accounting"]["train_steps"] == curve[-1]["step"]


def test_seconds_caps_the_optimisation_loop_and_still_checks_once(tmp_path):
    body = run_trial(spec("dual_encoder", {"steps": 10_000, "seconds": 0.5}, TINY_DUAL_ENCODER), tmp_path, tmp_path)
    training = body["training"]
    assert training["stopped"] == "seconds" and len(training["curve"]) == 1
    assert 0.5 <= training["curve"][0]["seconds"] < 5 and body["accounting"]["train_steps"] < 10_000
    assert body["machine_dependent"] is True  # the guard fired: as many steps as this machine managed
    assert body["accounting"]["train_planned_steps"] == 10_000


def test_a_flops_budget_buys_steps_by_the_first_steps_measured_flops(tmp_path):
    """Machine-independent compute matching: the same FLOPs budget is the same number of steps anywhere."""
    first = spec("dual_encoder", {"steps": 1, "eval_every": None}, TINY_DUAL_ENCODER, "fav_category")
    one = run_trial(first, tmp_path / "a", tmp_path)
    # every run counts its first step's FLOPs, with a flops budget or without
    assert one["accounting"]["train_flops_measured"] > 0 and one["accounting"]["train_examples"] == first["budget"]["batch_size"]
    probe = run_trial(spec("dual_encoder", {"steps": 10_000, "flops": 1.0}, TINY_DUAL_ENCODER, "fav_category"),
                      tmp_path / "b", tmp_path)
    per_step = probe["accounting"]["train_flops_measured"]
    assert probe["accounting"]["train_steps"] == 1 and per_step > 0
    body = run_trial(spec("dual_encoder", {"steps": 10_000, "flops": 7.5 * per_step}, TINY_DUAL_ENCODER,
                          "fav_category"), tmp_path / "c", tmp_path)
    assert body["accounting"]["train_steps"] == body["accounting"]["train_planned_steps"] == 7  # never over budget
    assert one["accounting"]["train_flops_measured"] == per_step
    assert body["training"]["stopped"] == "flops" and body["machine_dependent"] is False
    assert body["accounting"]["train_flops_measured"] == body["accounting"]["total_train_flops"] == 7 * per_step


def test_a_flops_budget_keeps_the_learning_rate(ml100k):
    """The schedule retargeted to the steps the FLOPs buy keeps its base rate (it once took the warm-up's
    zero rate of step 0 as its base, and no step of a flops-budgeted run learned anything)."""
    from bench.context import TrialContext
    from bench.models.training import train

    split = build_split(ml100k, 50)
    task = get_task("fav_category")
    model = torch.nn.Linear(4, 1)
    before = model.weight.detach().clone()
    for flops in (None, 1e12):
        budget = Budget(steps=4, batch_size=2, lr=0.1, flops=flops)
        ctx = TrialContext(dataset=ml100k, task=task, protocol=task.protocol(), train=split.train, budget=budget,
                           seed=0, show_progress=False)
        model.weight.data.copy_(before)
        train(ctx, model, lambda index: model(torch.ones(len(index), 4)).square().mean(), len(split.train))
        assert not torch.equal(model.weight, before)


def test_recbole_is_validated_by_the_harness_with_patience(tmp_path):
    body = run_trial(spec("recbole", {"batch_size": 512, "steps": 30, "eval_every": 5, "patience": 1},
                          {"model": "SASRec", "layers": 1, "dim": 16, "heads": 1}), tmp_path, tmp_path)
    training = body["training"]
    assert [p["step"] for p in training["curve"]] == [5 * (i + 1) for i in range(len(training["curve"]))]
    assert training["stopped"] in ("steps", "patience") and 1 <= len(training["curve"]) <= 6
    best = max(training["curve"], key=lambda p: (p["valid"]["recall@10"], -p["step"]))
    assert body["metrics"]["valid"]["recall@10"]["mean"] == pytest.approx(best["valid"]["recall@10"])


def test_validation_scores_with_the_harness_metrics_and_keeps_the_earliest_of_equal_bests(ml100k):
    task = get_task("next_item")
    valid = build_split(ml100k, 20).valid.subset(slice(0, 50))
    validation = Validation.of("m", task.under(task.protocol()), ml100k, valid)
    labels = task.labels(ml100k, valid)
    oracle = np.zeros((len(valid), ml100k.n_items), dtype=np.float32)
    oracle[np.arange(len(valid)), labels] = 1.0
    from bench.evaluation import Predictions

    assert validation.check(lambda ex: Predictions(scores=oracle[: len(ex)]), 1, 0.1, 8, 1.0)
    not_in_window = [label not in set(window) for label, window in zip(labels, ml100k.item[valid.positions()])]
    assert validation.points[-1]["valid"]["recall@1"] == pytest.approx(np.mean(not_in_window))  # history excluded
    assert not validation.check(lambda ex: Predictions(scores=-oracle[: len(ex)]), 2, 0.2, 16, 1.0)
    assert not validation.check(lambda ex: Predictions(scores=oracle[: len(ex)]), 3, 0.3, 24, 1.0)  # a tie
    assert validation.best["step"] == 1 and validation.checks_since_best() == 2
    with pytest.raises(ValueError, match="stop reason must be one of"):
        validation.stop("tired")


def test_budget_rejects_bad_validation_settings():
    for bad in ({"eval_every": 0}, {"patience": 0}, {"seconds": 0}):
        with pytest.raises(ValueError):
            Budget(**bad)


def test_the_schedule_is_transformers_warmup_cosine_by_steps():
    from transformers import get_cosine_schedule_with_warmup

    from bench.models.training import WarmupCosine

    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)

    reference_optimizer = optimizer()
    reference = get_cosine_schedule_with_warmup(reference_optimizer, 5, 50)
    ours_optimizer = optimizer()
    ours = WarmupCosine(ours_optimizer, 50, 0.1)
    for step in range(1, 51):
        assert ours_optimizer.param_groups[0]["lr"] == pytest.approx(reference_optimizer.param_groups[0]["lr"])
        reference.step()
        ours.update(step)


def test_two_runs_of_one_step_budget_are_identical_example_by_example(tmp_path):
    """The schedule follows steps, never the clock: the same spec twice gives the same per-example results."""
    first = run_trial(spec("dual_encoder", {"steps": 12, "eval_every": 4}, TINY_DUAL_ENCODER), tmp_path / "a", tmp_path)
    second = run_trial(spec("dual_encoder", {"steps": 12, "eval_every": 4}, TINY_DUAL_ENCODER), tmp_path / "b", tmp_path)
    for name, values in first["per_example"]["test"].items():
        assert np.array_equal(values, second["per_example"]["test"][name]), name
    assert [p["valid"] for p in first["training"]["curve"]] == [p["valid"] for p in second["training"]["curve"]]
