"""Tuned suites (``tune:``): every method searched with the same budget on validation, bad samples stopped
early by ASHA at their validation checks, then the best configuration trained again on its own seeds and
tested once. This module holds what the runner needs beyond a plain search: the scheduler, the record of
a sample the scheduler stopped (``pruned``), and the final trials chosen from the samples' records."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from bench.spec import TrialSpec
from bench.tracking import logged_name

VALID_PREFIX = "valid/"


def asha(search: Any, budget_examples: int) -> Any:
    """Ray Tune's ASHA over the samples' validation checks, its rungs counted in training examples
    (``examples_seen``: the same currency whatever a method's batch size): a sample below the top
    1/reduction at a rung stops there."""
    from ray.tune.schedulers import ASHAScheduler

    grace, reduction = search.scheduler
    return ASHAScheduler(time_attr="examples_seen", metric=logged_name(f"{VALID_PREFIX}{search.metric}"),
                         mode="max", grace_period=grace, reduction_factor=reduction,
                         max_t=max(budget_examples, grace), stop_last_trials=False)  # a sample at its last check finishes


def curve_point(result: dict[str, Any]) -> dict[str, Any] | None:
    """A validation check from a Tune progress result (None for other results), in the record's form."""
    valid = {key[len(VALID_PREFIX):].replace("_at_", "@"): value for key, value in result.items()
             if key.startswith(VALID_PREFIX)}
    if not valid or "timesteps_total" not in result:
        return None
    return {"step": int(result["timesteps_total"]), "examples_seen": result.get("examples_seen"),
            "train_loss": result.get("train_loss"), "valid": valid}


def pruned_record(spec: TrialSpec, points: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """The record of a search sample the scheduler stopped after ``points`` (its checks so far), which
    ran ``wall_seconds``."""
    metric = spec.search_metric or "recall@10"
    best = max(points, key=lambda point: (point["valid"].get(metric, float("-inf")), -point["step"]))
    return {"trial_id": spec.trial_id, "suite": spec.suite, "spec": spec.to_json(), "status": "pruned",
            "finished": datetime.now(timezone.utc).isoformat(), "wall_seconds": round(wall_seconds, 3),
            "metrics": {"valid": {name: {"mean": value} for name, value in best["valid"].items()}},
            "training": {"curve": points, "stopped": "scheduler", "valid_metric": metric, "best_step": best["step"],
                         "still_rising": False, "examples_seen": points[-1]["examples_seen"]}}


def samples_done(records: list[dict[str, Any]], group: str, tuned: bool) -> int:
    """A search group's samples that need not run again: finished, or pruned in a tuned search (a failed
    one is replaced by another sample, so a failure never stops the search). A tuned search's samples
    are its untested trials; its tested ones are the finals."""
    return sum(1 for r in records if r["spec"].get("search_group") == group
               and (r["spec"].get("tested") is False) == tuned and r["status"] in ("ok", "pruned"))


def final_specs(searches: list[tuple[TrialSpec, Any]], records: list[dict[str, Any]]) -> list[TrialSpec]:
    """For each tuned search whose samples are all done: its best finished sample by the search's
    validation metric (on a tie, the first in ``records``' order), trained again on each final seed and
    tested."""
    finals = []
    for spec, search in searches:
        if not search.tuned or samples_done(records, spec.search_group, True) < search.target:
            continue
        done = [r for r in records if r["spec"].get("search_group") == spec.search_group
                and r["spec"].get("tested") is False and r["status"] == "ok"]  # finals are tested
        if not done:
            continue
        best = max(done, key=lambda r: (r["metrics"]["valid"][search.metric]["mean"],
                                        -done.index(r)))
        chosen = TrialSpec.from_json(best["spec"], f"record {best['trial_id']}")
        finals += [dataclasses.replace(chosen, seed=seed, tested=True) for seed in search.final_seeds]
    return finals
