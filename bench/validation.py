"""Validation while a method trains, owned by the harness: at each check the harness scores the method's
own ``predict`` on the (capped) validation set with the task's primary metric, keeps the learning curve
and says when to stop. The method never scores itself, and never holds the labels: they live in a
closure the harness builds (``Validation.of``), not in an attribute a method could read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.data.dataset import Dataset
from bench.data.windows import Examples
from bench.evaluation import Predictions, predict_and_score
from bench.tasks import Scoring

Predictor = Callable[[Examples], Predictions]
STOP_REASONS = ("steps", "flops", "patience", "seconds")


Scorer = Callable[[Predictor], dict[str, Any]]


@dataclass
class Validation:
    """The validation checks of one trial: the curve so far and why training stopped. ``scorer`` scores a
    predictor on the validation examples (``Validation.of`` builds it around the labelled data)."""

    scoring: Scoring
    scorer: Scorer
    points: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0  # spent in checks, not counted in the training budget
    report: Callable[[dict[str, Any]], None] = lambda progress: None  # each check, as it happens

    @classmethod
    def of(cls, method: str, scoring: Scoring, dataset: Dataset, examples: Examples,
           report: Callable[[dict[str, Any]], None] | None = None) -> Validation:
        """The checks of ``method`` on ``examples``, scored against ``dataset`` (which holds their labels)."""

        def scorer(predict: Predictor) -> dict[str, Any]:
            return predict_and_score(predict, method, scoring, dataset, examples)[0]

        return cls(scoring, scorer, report=report or (lambda progress: None))

    @property
    def metric(self) -> str:
        """The task's primary metric, the one checks compare."""
        return self.scoring.primary_metric()

    def score(self, predict: Predictor) -> dict[str, float]:
        """Mean of every metric of ``predict`` on the validation examples."""
        started = time.perf_counter()
        values = self.scorer(predict)
        self.seconds += time.perf_counter() - started
        return {name: float(v.mean()) for name, v in values.items()}

    def check(self, predict: Predictor, step: int, seconds: float, examples_seen: int,
              train_loss: float | None) -> bool:
        """Score ``predict``, append a point to the curve; True when it beats the best so far (a tie does
        not: a plateau runs out of patience)."""
        valid = self.score(predict)
        best = self.best
        self.points.append({"step": step, "seconds": round(seconds, 3), "examples_seen": examples_seen,
                            "train_loss": train_loss, "valid": valid})
        logged = {"timesteps_total": step, "examples_seen": examples_seen, **{f"valid/{k}": v for k, v in valid.items()}}
        if train_loss is not None:
            logged["train_loss"] = train_loss
        self.report({"step": step, "seconds": round(seconds, 1), f"valid {self.metric}": round(valid[self.metric], 4),
                     "logged": logged})
        return best is None or valid[self.metric] > best["valid"][self.metric]

    @property
    def best(self) -> dict[str, Any] | None:
        """The earliest point with the highest primary metric."""
        if not self.points:
            return None
        return max(self.points, key=lambda point: (point["valid"][self.metric], -point["step"]))

    def checks_since_best(self) -> int:
        best = self.best
        return 0 if best is None else sum(point["step"] > best["step"] for point in self.points)

    def stop(self, reason: str) -> None:
        if reason not in STOP_REASONS:
            raise ValueError(f"stop reason must be one of {', '.join(STOP_REASONS)}, got {reason!r}")
        self.stopped = reason

    @property
    def still_rising(self) -> bool:
        """Training ended (by steps or seconds) with its last check the best so far: more would likely help."""
        return len(self.points) > 1 and self.best is self.points[-1] and self.stopped != "patience"

    def to_record(self) -> dict[str, Any]:
        best = self.best
        return {"curve": self.points, "stopped": self.stopped, "valid_metric": self.metric,
                "best_step": None if best is None else best["step"], "still_rising": self.still_rising,
                "examples_at_best": None if best is None else best["examples_seen"],
                "examples_seen": self.points[-1]["examples_seen"] if self.points else None,
                "validation_seconds": round(self.seconds, 3)}
