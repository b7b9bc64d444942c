"""Measure how much USER-LLM's training moves a pretrained AR encoder away from its next-item skill.

Pretrains (or loads from the cache) the AR encoder on ml-100k at N=50, scores its own item head on the
validation examples (settings are compared on validation, never on test) with the harness's metric
code, then fits USER-LLM (cross-attention, strategy enc, real SmolLM2-135M) for ``--steps`` at each
``--encoder-lr`` and scores the encoder's item head again. Run by hand (~2 min per learning rate on 2
cores once the encoder is cached):

    .venv/bin/python benchmarks/encoder_drift.py --encoder-lr 2e-3 1e-4
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from next_item_fit import fit_userllm, next_item_context, split_of

from bench.context import TrialContext
from bench.evaluation import Predictions, score_examples
from bench.models.features import event_batch


def own_recall_at_10(encoder: torch.nn.Module, ctx: TrialContext) -> float:
    """Validation recall@10 of the AR encoder's own item head at the last event of each validation window."""
    encoder.eval()
    valid = split_of(ctx).valid
    with torch.no_grad():
        hidden = encoder(event_batch(ctx.dataset, valid.positions(slice(None))))[:, -1]
        scores = encoder.feature_logits(hidden)["item"].numpy()
    values = score_examples(ctx.scoring, ctx.dataset, valid, Predictions(scores=scores))
    return float(np.mean(values["recall@10"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder-lr", type=float, nargs="+", default=[2e-3, 1e-4])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    args = parser.parse_args()

    ctx = next_item_context(args.steps)
    for lr in args.encoder_lr:
        method = fit_userllm(ctx, {"pretrain.steps": args.pretrain_steps, "encoder_lr": lr})
        if lr == args.encoder_lr[0]:
            pretrained = copy.deepcopy(method.fitted.model.encoder)
            pretrained.load_state_dict(torch.load(method.fitted.pretraining["encoder_checkpoint"], weights_only=True))
            print(f"pretrained: the encoder's own validation recall@10 is "
                  f"{own_recall_at_10(pretrained, ctx):.4f}", flush=True)
        print(f"encoder_lr={lr:g}: the encoder's own validation recall@10 is "
              f"{own_recall_at_10(method.fitted.model.encoder, ctx):.4f} after {args.steps} USER-LLM steps",
              flush=True)


if __name__ == "__main__":
    main()
