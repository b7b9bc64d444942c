"""The paper's training budgets (appendix table 9) by dataset family and task: the full-scale preset
of ``bench run --preset paper``. MovieLens-100K takes MovieLens-20M's row."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.context import Pretraining
from bench.data.registry import DATASETS
from bench.errors import ConfigError

PRESETS = ("paper",)
PRETRAIN = "encoder_pretrain"
# (dataset family, task) -> (learning rate, weight decay, batch size, training steps)
TABLE9 = {
    ("MovieLens20M", PRETRAIN): (1e-1, 1e-1, 32_768, 10_000),
    ("MovieLens20M", "next_item"): (1e-3, 1e-3, 8_192, 10_000),
    ("MovieLens20M", "fav_category"): (1e-3, 1e-3, 1_024, 5_000),
    ("Google Review", PRETRAIN): (1e-4, 1e-1, 16_384, 10_000),
    ("Google Review", "next_item"): (1e-3, 1e-1, 2_048, 5_000),
    ("Google Review", "fav_category"): (1e-3, 1e-1, 2_048, 5_000),
    ("Google Review", "review_gen"): (1e-3, 1e-1, 1_024, 5_000),
    ("Amazon Review", PRETRAIN): (1e-4, 1e-1, 12_800, 7_000),
    ("Amazon Review", "next_item"): (1e-3, 1e-1, 8_192, 10_000),
    ("Amazon Review", "fav_category"): (1e-3, 1e-1, 1_024, 5_000),
    ("Amazon Review", "review_gen"): (1e-3, 1e-1, 2_048, 5_000),
}


def _family(dataset: str) -> str | None:
    spec = DATASETS.get(dataset)
    return None if spec is None else spec.family


def _row(dataset: str, task: str, where: str) -> tuple[float, float, int, int]:
    key = (_family(dataset), task)
    if key not in TABLE9:
        raise ConfigError(f"{where}: the paper gives no budget for {task} on {dataset} (appendix table 9)")
    return TABLE9[key]


def paper_budget(budget: dict[str, Any], dataset: str, task: str, where: str) -> dict[str, Any]:
    """``budget`` with table 9's learning rate, weight decay, batch size and steps, and no evaluation caps,
    FLOPs budget or wall-clock guard."""
    lr, weight_decay, batch_size, steps = _row(dataset, task, where)
    return {**budget, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "steps": steps,
            "max_valid_examples": None, "max_test_examples": None, "flops": None, "seconds": None}


def paper_pretraining(params: Any, dataset: str, where: str) -> Any:
    """A method's Params with table 9's encoder-pretraining budget in each of its ``Pretraining`` fields
    (unchanged where it declares none)."""
    lr, weight_decay, batch_size, steps = _row(dataset, PRETRAIN, where)
    table9 = Pretraining(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay)
    declared = [f.name for f in dataclasses.fields(params) if isinstance(getattr(params, f.name), Pretraining)]
    return dataclasses.replace(params, **dict.fromkeys(declared, table9)) if declared else params


def paper_examples(dataset: str, task: str) -> int | None:
    """Training examples of the paper's budget (steps x batch size, table 9), None where it gives none."""
    row = TABLE9.get((_family(dataset), task))
    return None if row is None else row[2] * row[3]
