"""Measure how much a trained USER-LLM takes from its user embeddings on next-item prediction.

Fits USER-LLM (cross-attention, strategy enc, real SmolLM2-135M, ml-100k at N=50; ``--params`` adds
or overrides parameters as JSON) for ``--steps``, then computes the teacher-forced negative
log-likelihood per title token of the first ``--examples`` validation targets (settings are compared
on validation, never on test) twice: with each user's own embeddings, and with every batch's
embeddings rolled by one row so each title is read against another user's history. The difference is what the user context is worth to the LLM; near 0 means the LLM
answers from its prior. Run by hand (~2 s per step on 2 cores once the encoder is cached):

    .venv/bin/python benchmarks/user_signal.py --steps 300 --params '{"encoder_lr": 1e-4, "gate_lr": 2e-2}'
    .venv/bin/python benchmarks/user_signal.py --steps 300 \
        --params '{"encoder_lr": 1e-4, "gate_lr": 2e-2, "user_embeddings": 1}'  # userllm_enc's next-item recipe
"""

from __future__ import annotations

import numpy as np
import torch
from next_item_fit import benchmark_arguments, fit_userllm, next_item_context, split_of


def main() -> None:
    args = benchmark_arguments(__doc__.splitlines()[0], {"encoder_lr": 1e-4, "gate_lr": 2e-2}, steps=300, examples=256)

    ctx = next_item_context(args.steps, args.lr, eval_batch_size=32)
    method = fit_userllm(ctx, args.params)

    valid = split_of(ctx).valid.subset(slice(0, args.examples))
    labels = ctx.labels(valid)
    own, rolled = [], []
    with torch.no_grad():
        for index in ctx.eval_batches(len(valid), ctx.budget.eval_batch_size):
            batch = method.lm_inputs(ctx, valid, index, labels)
            own.append(float(method.fitted.model.lm(**batch).loss))
            rolled.append(float(method.fitted.model.lm(**batch | {"user_states": batch["user_states"].roll(1, 0)}).loss))
    print(f"after {args.steps} steps with {args.params}: validation title NLL per token {np.mean(own):.4f} with the "
          f"user's own embeddings, {np.mean(rolled):.4f} with another user's; the user context is worth "
          f"{np.mean(rolled) - np.mean(own):.4f} nats per title token", flush=True)


if __name__ == "__main__":
    main()
