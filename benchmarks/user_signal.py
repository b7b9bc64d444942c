"""Measure how much a trained USER-LLM takes from its user embeddings on next-item prediction.

Fits USER-LLM (cross-attention, strategy enc, real SmolLM2-135M, ml-100k at N=50; ``--params`` adds
or overrides parameters as JSON) for ``--steps``, then computes the teacher-forced negative
log-likelihood per title token of the first ``--examples`` test targets twice: with each user's own
embeddings, and with every batch's embeddings rolled by one row so each title is read against another
user's history. The difference is what the user context is worth to the LLM; near 0 means the LLM
answers from its prior. Run by hand (~2 s per step on 2 cores once the encoder is cached):

    .venv/bin/python benchmarks/user_signal.py --steps 300 --params '{"encoder_lr": 1e-4, "gate_lr": 2e-2}'
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.data.cache import cache_root
from bench.registry import build_params, load_methods
from bench.tasks import get_task
from bench.trial import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=json.loads, default={"encoder_lr": 1e-4, "gate_lr": 2e-2})
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--examples", type=int, default=256)
    args = parser.parse_args()

    dataset, task = load_dataset("ml-100k"), get_task("next_item")
    split = build_split(dataset, 50)
    method_class = load_methods()["userllm"]
    method = method_class(build_params(method_class, args.params, "params"))
    ctx = TrialContext(dataset=dataset, task=task, protocol=task.protocol(), split=split,
                       budget=Budget(steps=args.steps, batch_size=8, lr=args.lr, eval_batch_size=32), seed=0,
                       shared_cache=cache_root(), show_progress=False)
    seed_everything(0)
    method.fit(ctx)

    test = split.test.subset(slice(0, args.examples))
    labels = ctx.labels(test)
    own, rolled = [], []
    with torch.no_grad():
        for index in ctx.eval_batches(len(test)):
            batch = method._lm_batch(ctx, test, index, labels)
            own.append(float(method.model.lm(**batch).loss))
            rolled.append(float(method.model.lm(**batch | {"user_states": batch["user_states"].roll(1, 0)}).loss))
    print(f"after {args.steps} steps with {args.params}: test title NLL per token {np.mean(own):.4f} with the "
          f"user's own embeddings, {np.mean(rolled):.4f} with another user's; the user context is worth "
          f"{np.mean(rolled) - np.mean(own):.4f} nats per title token", flush=True)


if __name__ == "__main__":
    main()
