"""Measure how much USER-LLM's training moves a pretrained AR encoder away from its next-item skill.

Pretrains (or loads from the cache) the AR encoder on ml-100k at N=50, scores its own item head on the
test examples with the harness's metric code, then fits USER-LLM (cross-attention, strategy enc, real
SmolLM2-135M) for ``--steps`` at each ``--encoder-lr`` and scores the encoder's item head again. Run by
hand (~2 min per learning rate on 2 cores once the encoder is cached):

    .venv/bin/python benchmarks/encoder_drift.py --encoder-lr 2e-3 1e-4
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from bench.context import Budget, TrialContext
from bench.data import build_split, load_dataset
from bench.data.cache import cache_root
from bench.data.dataset import Dataset
from bench.data.windows import Split
from bench.evaluation import Predictions, score_examples
from bench.features import event_batch
from bench.registry import build_params, load_methods
from bench.tasks import Task, get_task
from bench.trial import seed_everything


def own_recall_at_10(encoder: torch.nn.Module, dataset: Dataset, split: Split, task: Task) -> float:
    """Test recall@10 of the AR encoder's own item head at the last event of each test window."""
    encoder.eval()
    with torch.no_grad():
        hidden = encoder(event_batch(dataset, split.test.positions(slice(None))))[:, -1]
        scores = encoder.feature_logits(hidden)["item"].numpy()
    values = score_examples(task, task.protocol(), dataset, split.test, Predictions(scores=scores))
    return float(np.mean(values["recall@10"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder-lr", type=float, nargs="+", default=[2e-3, 1e-4])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    args = parser.parse_args()

    dataset, task = load_dataset("ml-100k"), get_task("next_item")
    split = build_split(dataset, 50)
    method_class = load_methods()["userllm"]
    for lr in args.encoder_lr:
        method = method_class(build_params(method_class, {"pretrain_steps": args.pretrain_steps, "encoder_lr": lr},
                                           "params"))
        ctx = TrialContext(dataset=dataset, task=task, protocol=task.protocol(), split=split,
                           budget=Budget(steps=args.steps, batch_size=8, lr=2e-3, eval_batch_size=8), seed=0,
                           shared_cache=cache_root(), show_progress=False)
        seed_everything(0)
        method.fit(ctx)
        if lr == args.encoder_lr[0]:
            pretrained = copy.deepcopy(method.model.encoder)
            pretrained.load_state_dict(torch.load(method.pretraining["encoder_checkpoint"], weights_only=True))
            print(f"pretrained: the encoder's own test recall@10 is "
                  f"{own_recall_at_10(pretrained, dataset, split, task):.4f}", flush=True)
        print(f"encoder_lr={lr:g}: the encoder's own test recall@10 is "
              f"{own_recall_at_10(method.model.encoder, dataset, split, task):.4f} after {args.steps} USER-LLM steps",
              flush=True)


if __name__ == "__main__":
    main()
