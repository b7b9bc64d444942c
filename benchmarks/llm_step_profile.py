"""Where an LLM method's training step spends its time: torch.profiler over the training steps of
suite trials (after the first, which also counts FLOPs), in this process on one thread, operators
sorted by their own CPU time, then the share of matrix multiplication.

    .venv/bin/python benchmarks/llm_step_profile.py suites/quickstart.yaml --only USER-LLM --only TP10-LoRA

Only the optimisation steps are profiled (``bench.models.training.backward_in_parts``); loading, the
FLOP count, validation and decoding are not.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.data.cache import cache_root
from bench.models import training
from bench.suite import load_suite
from bench.trial import run_trial

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
           "aten::_scaled_dot_product_flash_attention_for_cpu_backward"}


def profiled_steps(spec, steps: int, rows: int | None) -> None:
    """Run ``spec`` for ``steps`` steps with every step after the first profiled; print the operators
    (only the seconds per step, unprofiled, where ``rows`` is None)."""
    original = training.backward_in_parts
    calls, seconds = [0], [0.0]
    prof = profile(activities=[ProfilerActivity.CPU])

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            return original(*args, **kwargs)
        if rows is not None:
            if calls[0] == 2:
                prof.start()
            else:
                prof.toggle_collection_dynamic(True, [ProfilerActivity.CPU])
        tick = time.perf_counter()
        result = original(*args, **kwargs)
        seconds[0] += time.perf_counter() - tick
        if rows is not None:
            prof.toggle_collection_dynamic(False, [ProfilerActivity.CPU])  # validation and decoding not profiled
        return result

    training.backward_in_parts = wrapped
    try:
        with tempfile.TemporaryDirectory(prefix="bench-step-profile-") as scratch:
            body = run_trial(spec.shortened(4, steps), Path(scratch), cache_root())
    finally:
        training.backward_in_parts = original
        if calls[0] > 1 and rows is not None:
            prof.stop()
    timed = calls[0] - 1
    if rows is None:
        print(f"== {spec.describe()} ({body['device']} {body['dtype']}): {seconds[0] / max(1, timed):.3f} s per "
              f"step over {timed} steps after the first (forward and backward; no profiler)")
        return
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    matmul = sum(event.self_cpu_time_total for event in events if event.key in MATMULS)
    print(f"\n== {spec.describe()} ({body['device']} {body['dtype']}): {timed} profiled steps, "
          f"{seconds[0] / max(1, timed):.3f} s/step under the profiler; matmul and attention kernels "
          f"{100 * matmul / max(1, total):.0f}% of operator self time")
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--only", action="append", default=[], help="trial labels to profile (default: all)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per trial (the first is not profiled)")
    parser.add_argument("--dtype", default=None, choices=["auto", "fp32", "bf16"])
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--time-only", action="store_true", help="no profiler: seconds per step only")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a trial in a one-CPU Ray worker
    suite = load_suite(args.suite, **({"dtype": args.dtype} if args.dtype else {}))
    for spec in suite.trials:
        if not args.only or spec.label in args.only:
            profiled_steps(spec, args.steps, None if args.time_only else args.rows)


if __name__ == "__main__":
    main()
