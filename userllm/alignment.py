"""Catalog alignment: an optional stage before USER-LLM trains on user windows (``align_steps``), in the
spirit of LLaVA's stage-1 feature alignment.

The LLM must learn to turn a user state into one of the task's answers (1,682 titles on ml-100k), and on
a CPU budget it sees each answer only a few times. Alignment trains on cheap pairs over the whole
catalog instead: for each candidate c (an item for next item, a category for favourite category), the
user state that the pretrained AR encoder's own tied head reads as "c is next", and c's name as the
answer. That state is the least-norm encoder output h with ``head(h) = e_c`` (c's input embedding), so
its head logits are exactly ``e_c . E^T``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bench.context import Budget, TrialContext
from bench.models.lm_inputs import answer_loss, lm_batch
from bench.models.training import SummedLoss, TrainRun, train


def candidate_states(encoder: torch.nn.Module, feature: str, ids: torch.Tensor) -> torch.Tensor:
    """[len(ids), dim]: for each candidate, the least-norm output whose ``feature`` head gives the
    candidate's own input embedding (differentiable, so a trainable encoder learns from alignment).
    Computed in fp32 outside autocast: the pseudo-inverse's backward does not mix dtypes."""
    head = encoder.heads[feature]
    table = encoder.tower.embed.item.weight if feature == "item" else encoder.tower.embed.category.weight
    with torch.autocast(ids.device.type, enabled=False):
        target = table[ids].float() - head.bias.float()
        return target @ torch.linalg.pinv(head.weight.float()).T


def align_to_catalog(ctx: TrialContext, model: torch.nn.Module, tokenizer, steps: int,
                     lr_of: Callable[[str], float], on_tokens: Callable[[torch.Tensor], None]) -> TrainRun:
    """``steps`` of training (the budget's batch size and learning rates; no validation checks) on
    (candidate state -> candidate name) pairs drawn over every candidate of the task."""
    feature = ctx.task.feature
    if feature is None:
        raise ValueError(f"align_steps needs a task that ranks candidates, not {ctx.task.name}")
    question = ctx.task.question
    slots = model.fusion.slots

    def step_loss(index: np.ndarray) -> SummedLoss:
        ids = torch.from_numpy(index.astype(np.int64)).to(ctx.device)
        inputs = lm_batch(tokenizer, [question] * len(index), ctx.task.answer_texts(ctx.dataset, index),
                          ctx.device, slots=slots)
        on_tokens(inputs["attention_mask"])
        states = candidate_states(model.encoder, feature, ids).unsqueeze(1)
        if model.perceiver is not None:
            states = model.perceiver(states)
        return answer_loss(model.lm, inputs | {"user_states": states})

    budget = Budget(steps=steps, batch_size=ctx.budget.batch_size, lr=ctx.budget.lr,
                    weight_decay=ctx.budget.weight_decay, warmup=ctx.budget.warmup)
    return train(ctx, model, step_loss, ctx.task.n_candidates(ctx.dataset), budget=budget, desc="align",
                 lr_of=lr_of, llm=True)
