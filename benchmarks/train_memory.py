"""Resident memory of a training loop under glibc's default allocator policy and under the harness's
(a pinned mmap threshold and the heap's free pages released every 50 steps; bench/memory.py), side by
side in one run: the quickstart's DualEnc next-item trial (positions all, ml-100k, N=50, batch 64).

    .venv/bin/python benchmarks/train_memory.py --steps 200 2000 --limit-gb 16

Each (policy, steps) runs in a fresh process; a run whose memory passes --limit-gb is stopped there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = """
import json, sys, time
import bench.models.training as training
from bench import memory
from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.tasks import get_task
from baselines.dual_encoder import DualEncoderBaseline

policy, steps, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if policy == "harness":
    memory.pin_mmap_threshold()
else:
    training.release_free_heap = lambda: None

def rss_gb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9

marks = {}
def report(metrics):
    step = metrics.get("train_step")
    if step:
        marks[step] = round(rss_gb(), 3)
        if marks[step] > limit:
            print(json.dumps({"marks": marks, "stopped_at": step}), flush=True)
            sys.exit(0)

dataset, task = load_dataset("ml-100k"), get_task("next_item")
ctx = TrialContext(dataset=dataset, task=task, protocol=task.protocol(), train=build_split(dataset, 50).train,
                   budget=Budget(steps=steps, batch_size=64, lr=3e-3), seed=0, show_progress=False, report=report)
method = DualEncoderBaseline(DualEncoderBaseline.Params(layers=2, dim=64, heads=4, positions="all"))
started = time.perf_counter()
method.fit(ctx)
print(json.dumps({"marks": marks, "seconds": round(time.perf_counter() - started, 1),
                  "peak_gb": round(memory.peak_rss_bytes() / 1e9, 3)}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--limit-gb", type=float, default=16.0)
    args = parser.parse_args()
    for steps in args.steps:
        for policy in ("glibc-default", "harness"):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, policy, str(steps), str(args.limit_gb)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            marks = result["marks"]
            last = max(marks, key=int)
            print(f"{policy:14s} {steps:5d} steps: RSS {marks[min(marks, key=int)]:.2f} GB at step 1 -> "
                  f"{marks[last]:.2f} GB at step {last}"
                  + (f" (stopped: over {args.limit_gb} GB)" if "stopped_at" in result else
                     f"; peak {result['peak_gb']:.2f} GB; fit {result['seconds']} s")
                  + f" [{time.perf_counter() - started:.0f} s wall]", flush=True)


if __name__ == "__main__":
    main()
