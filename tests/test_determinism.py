"""The same suite with the same seed on the same machine gives the same numbers, example by example:
budgets are steps or FLOPs, and nothing in a trial reads the clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.models.llm import TINY
from bench.trial import run_trial

from conftest import fresh_cache
from helpers import built_in_methods, leakage_spec

SMALL = {"layers": 1, "dim": 16, "heads": 2}
METHODS = [
    ("popularity", "next_item", {}),
    ("cooccurrence", "next_item", {}),
    ("window_count", "fav_category", {}),
    ("latest_label", "fav_category", {}),
    ("dual_encoder", "next_item", {**SMALL, "positions": "all"}),
    ("dual_encoder", "fav_category", SMALL),
    ("ar_encoder", "next_item", SMALL),
    ("recbole", "next_item", {"model": "SASRec", "layers": 1, "dim": 16, "heads": 1}),
    ("bert4rec", "next_item", {"layers": 1, "dim": 16, "heads": 1}),
    ("text_prompt", "fav_category", {"llm": TINY, "prompt_events": 3, "beams": 2}),
    ("userllm", "fav_category", {"llm": TINY, "pretrain.steps": 2, "xattn_every": 1, "beams": 2,
                                 "encoder.layers": 1, "encoder.dim": 16, "encoder.heads": 2}),
]


def test_every_built_in_method_is_run_twice():
    assert {method for method, _, _ in METHODS} == built_in_methods()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return fresh_cache(tmp_path_factory.mktemp("determinism-cache"))


@pytest.mark.parametrize(("method", "task", "params"), METHODS, ids=[f"{m}-{t}" for m, t, _ in METHODS])
def test_two_runs_of_one_spec_give_identical_per_example_results(method, task, params, tmp_path, cache):
    spec = leakage_spec(method, task, params)
    spec["budget"] = {**spec["budget"], "steps": 4, "eval_every": 2}
    first = run_trial(spec, tmp_path / "a", cache)
    second = run_trial(spec, tmp_path / "b", cache)
    assert first["per_example"]["test"].keys() == second["per_example"]["test"].keys()
    for name, values in first["per_example"]["test"].items():
        assert np.array_equal(values, second["per_example"]["test"][name]), name
    assert first["metrics"] == second["metrics"] and first["machine_dependent"] is False
