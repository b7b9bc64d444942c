"""Check a GPU machine in one go (CI and CPUs never need this):

1. the CUDA tests (``pytest -m cuda``);
2. one USER-LLM trial (the quickstart's next-item recipe, SmolLM2-135M) in the device's dtype, shortened
   to ``--steps``: seconds per step, training examples per second, peak GPU memory;
3. four such trials packed onto one GPU at ``resources: {gpu: 0.25}`` through ``bench run``'s runner:
   the wall-clock of the four against one, and whether they overlapped.

    .venv/bin/python benchmarks/gpu_check.py [--steps 30] [--examples 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data.cache import cache_root  # noqa: E402
from bench.runner import run_suite  # noqa: E402
from bench.spec import TrialSpec  # noqa: E402
from bench.store import load_records  # noqa: E402
from bench.suite import check_histories, load_suite, select  # noqa: E402
from bench.trial import run_trial  # noqa: E402

GIB = 2**30


def userllm_spec(steps: int, examples: int) -> TrialSpec:
    """The quickstart's USER-LLM trial at ``steps`` steps and ``examples`` evaluated users."""
    suite = select(load_suite(ROOT / "suites" / "quickstart.yaml"), ["USER-LLM"])
    check_histories(suite)
    (spec,) = suite.trials
    return dataclasses.replace(spec, suite="gpu-check").with_budget(
        steps=steps, seconds=None, eval_every=None, max_valid_examples=examples, max_test_examples=examples)


def one_trial(steps: int, examples: int) -> dict:
    spec = userllm_spec(steps, examples)
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        body = run_trial(spec, Path(scratch), cache_root())
    costs, batch = body["accounting"], spec.budget.batch_size
    return {"device": f"{body['device']} ({body['device_name']})", "dtype": body["dtype"],
            "s/step": costs["seconds_per_step"], "train examples/s": batch / costs["seconds_per_step"],
            "s/test user": costs["seconds_per_test_example"],
            "peak GPU GiB": torch.cuda.max_memory_allocated() / GIB,
            "test recall@1": body["metrics"]["test"]["recall@1"]["mean"]}


def packed_trials(steps: int, examples: int, share: float = 0.25) -> dict:
    """Four seeds of the trial at ``share`` of a GPU each, through the runner (Ray Tune)."""
    spec = userllm_spec(steps, examples)
    base = load_suite(ROOT / "suites" / "quickstart.yaml")
    trials = [dataclasses.replace(spec, seed=seed) for seed in range(4)]
    suite = dataclasses.replace(base, name="gpu-check", trials=trials, searches=[],
                                resources={"cpu": max(1, (torch.get_num_threads() or 4) // 4), "gpu": share})
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as results:
        started = time.perf_counter()
        summary = run_suite(suite, Path(results), show_progress=False)
        wall = time.perf_counter() - started
        records = load_records(Path(results), ["gpu-check"])
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"])) for r in records]
    overlapped = max(start for start, _ in spans) < min(end for _, end in spans)
    return {"trials ok": f"{sum(r['status'] == 'ok' for r in records)} of 4", "failed": summary.failed,
            "wall s (4 packed)": wall, "all four overlapped": overlapped,
            "s/step each": [round(r["accounting"]["seconds_per_step"], 3) for r in records if r["status"] == "ok"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--examples", type=int, default=32)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
          f"bf16 {torch.cuda.is_bf16_supported()}", flush=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", str(ROOT / "tests")], cwd=ROOT)
    print(f"1. CUDA tests: {'passed' if tests.returncode == 0 else f'FAILED (exit {tests.returncode})'}", flush=True)
    print(f"2. one trial: {one_trial(args.steps, args.examples)}", flush=True)
    print(f"3. four trials at 0.25 GPU: {packed_trials(args.steps, args.examples)}", flush=True)
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
