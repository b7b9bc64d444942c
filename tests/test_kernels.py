"""``kernels: reproducible``: one suite gives bitwise-identical per-example results whatever instruction
set the machine (here: the environment's ISA limits) would pick, and every record says how it ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.errors import ConfigError
from bench.kernels import PINS, worker_env
from bench.store import load_records
from bench.suite import load_suite

BENCH = [sys.executable, "-m", "bench.cli"]
LOWER_ISA = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def run(suite: Path, results: Path, limits: dict[str, str], *extra: str) -> dict[str, dict]:
    env = {**{k: v for k, v in os.environ.items() if k not in PINS}, **limits}
    out = subprocess.run(BENCH + ["run", str(suite), "--results", str(results), "--no-progress", *extra],
                         cwd=suite.parent, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "data: ml-100k: rows handled while preparing: items_with_placeholder_title 1" in out.stdout
    return {r["spec"]["label"]: r for r in load_records(results, ["k"])}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kernels") / "k.yaml"
    path.write_text(yaml.safe_dump({
        "name": "k", "datasets": ["ml-100k"], "tasks": ["next_item"], "seq_lens": [12], "kernels": "reproducible",
        "budget": {"steps": 12, "batch_size": 32, "max_valid_examples": 32, "max_test_examples": 200},
        "resources": {"cpu": 1},
        "methods": [{"method": "dual_encoder", "label": "DualEnc", "params": {"layers": 1, "dim": 32, "heads": 2}},
                    {"method": "ar_encoder", "label": "AR", "params": {"layers": 1, "dim": 32, "heads": 2}}]}))
    return path


def test_reproducible_kernels_give_the_same_numbers_under_two_isa_limits(suite, tmp_path):
    native = run(suite, tmp_path / "native", {})
    limited = run(suite, tmp_path / "limited", LOWER_ISA)
    for label in ("DualEnc", "AR"):
        a, b = native[label], limited[label]
        assert a["kernels"]["pinned"] and b["kernels"]["pinned"] and a["kernels"]["isa"] == b["kernels"]["isa"] == "AVX2"
        assert a["kernels"]["threads"] == 1 and a["dtype"] == "float32"
        assert a["per_example"]["test"] == b["per_example"]["test"]
        assert a["training"]["curve"] == [{**p, "seconds": q["seconds"]} for p, q in
                                          zip(b["training"]["curve"], a["training"]["curve"])]


def test_native_kernels_follow_the_machine_and_the_record_says_so(suite, tmp_path):
    records = run(suite, tmp_path / "lower", LOWER_ISA, "--kernels", "native", "--only", "DualEnc")
    facts = records["DualEnc"]["kernels"]
    assert facts == {**facts, "mode": "native", "pinned": False, "isa": "DEFAULT"}


def test_the_pins_and_what_contradicts_them(suite):
    assert worker_env("native") == {} and worker_env("reproducible")["MKL_CBWR"] == "AVX2,STRICT"
    assert load_suite(suite).kernels == "reproducible" and load_suite(suite, kernels="native").kernels == "native"
    with pytest.raises(ConfigError, match="kernels: reproducible computes in fp32; --dtype bf16 contradicts it"):
        load_suite(suite, dtype="bf16")
    with pytest.raises(ConfigError, match="kernels: got 'fast'; expected one of native, reproducible"):
        load_suite(suite, kernels="fast")
    assert all(spec.kernels == "reproducible" and spec.to_json()["kernels"] == "reproducible"
               for spec in load_suite(suite).trials)
    assert "kernels" not in load_suite(suite, kernels="native").trials[0].to_json()  # ids as before at the default
