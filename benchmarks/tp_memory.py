"""Peak resident memory of TextPrompt LoRA training on the embedded SmolLM2-135M at N = 50, 100, 200
(ml-100k next item, batch 2, one step plus the FLOP measurement on 8 examples that every fit makes):
the code of another checkout (``--before``, e.g. a worktree of the previous commit) and this one, side
by side in one run, each (code, N, variant) in a fresh process.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python benchmarks/tp_memory.py --before /tmp/before --limit-gb 18

A process whose resident memory passes --limit-gb is stopped there and reported as over it (so that a
run that would not fit never takes the machine down). Variants of this checkout: the default budget,
and activation checkpointing (``budget.checkpointing``) with micro-batches of 1
(``budget.micro_batch_size``), as suites/seq_length.yaml runs TextPrompt. Each process pins glibc's mmap
threshold as a trial does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, os, sys, threading, time
limit = float(sys.argv[3]) * 1e9

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def watch():
    while True:
        if rss() > limit:
            print(json.dumps({"over_limit": True}), flush=True)
            os._exit(0)
        time.sleep(0.02)

threading.Thread(target=watch, daemon=True).start()
import resource
from pathlib import Path
import torch
from bench import memory
memory.pin_mmap_threshold()  # as every trial does (bench.trial.execute_trial)
from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.registry import build_params, load_methods
from bench.tasks import get_task

n, extra = int(sys.argv[1]), json.loads(sys.argv[2])
torch.set_num_threads(2)
dataset, task = load_dataset("ml-100k"), get_task("next_item")
budget = Budget(steps=1, batch_size=2, lr=3e-4, **extra)
ctx = TrialContext(dataset=dataset, task=task, protocol=task.protocol(), train=build_split(dataset, n).train,
                   budget=budget, seed=0, show_progress=False,
                   shared_cache=Path(os.environ.get("USERLLM_BENCH_CACHE", Path.home() / ".cache" / "userllm-bench")))
cls = load_methods()["text_prompt"]
method = cls(build_params(cls, {"strategy": "lora", "prompt_events": n}, "params"))
started = time.perf_counter()
method.fit(ctx)
print(json.dumps({"peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
                  "fit_seconds": time.perf_counter() - started,
                  "train_tokens": method.llm.input_tokens.mean("train")}), flush=True)
"""

AFTER_VARIANTS = {"default budget": {}, "micro-batch 1 + checkpointing": {"micro_batch_size": 1, "checkpointing": True}}


def run(code: Path, n: int, extra: dict, limit: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), json.dumps(extra), str(limit)], cwd=code,
                         capture_output=True, text=True, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin",
                                                              "HOME": str(Path.home())})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{code} N={n}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code to compare against")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--limit-gb", type=float, default=18.0)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    runs = [("before", args.before.resolve(), {})] + [(f"after, {name}", here, extra)
                                                      for name, extra in AFTER_VARIANTS.items()]
    for n in args.lengths:
        for name, code, extra in runs:
            started = time.perf_counter()
            result = run(code, n, extra, args.limit_gb)
            what = (f"over {args.limit_gb} GB (stopped)" if result.get("over_limit") else
                    f"peak RSS {result['peak_gb']:.2f} GB, fit {result['fit_seconds']:.0f} s, "
                    f"{result['train_tokens']:.0f} tokens per training example")
            print(f"N={n:3d} {name:40s} {what} [{time.perf_counter() - started:.0f} s wall]", flush=True)


if __name__ == "__main__":
    main()
