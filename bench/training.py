"""Training plumbing shared by methods: AdamW with cosine decay after linear warm-up (paper appendix
C), seeded batch sampling over training windows, and a loop with progress, clipping and autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from bench.context import Budget, TrialContext

NO_DECAY_MARKERS = ("bias", "norm", "gate", "embedding.weight", "position")


def make_optimizer(model: torch.nn.Module, budget: Budget,
                   no_decay: tuple[str, ...] = NO_DECAY_MARKERS) -> tuple[torch.optim.Optimizer, object]:
    """AdamW over trainable parameters (no weight decay on biases, norms, gates and embeddings) and
    its cosine schedule with ``budget.warmup`` of the steps warming up linearly."""
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if any(marker in name.lower() for marker in no_decay) else decay).append(param)
    if not decay and not plain:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": budget.weight_decay},
                                   {"params": plain, "weight_decay": 0.0}], lr=budget.lr)
    schedule = get_cosine_schedule_with_warmup(optimizer, int(budget.warmup * budget.steps), budget.steps)
    return optimizer, schedule


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[np.ndarray]:
    """``steps`` batches of example indices: seeded shuffled passes over ``n`` examples."""
    if n == 0:
        raise ValueError("no training examples: every user has too few events for this history length")
    rng = np.random.default_rng(seed)
    order, cursor = rng.permutation(n), 0
    for _ in range(steps):
        if cursor + batch_size > n:
            order, cursor = np.concatenate([order[cursor:], rng.permutation(n)]), 0
        yield order[cursor:cursor + batch_size]
        cursor += batch_size


def autocast(ctx: TrialContext) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU trial that supports it; nothing on CPU."""
    if ctx.device == "cuda" and ctx.dtype == "bfloat16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(ctx: TrialContext, model: torch.nn.Module, step_loss: Callable[[np.ndarray], torch.Tensor],
          n_examples: int, budget: Budget | None = None, desc: str = "train", max_grad_norm: float = 1.0) -> list[float]:
    """Run ``budget.steps`` optimisation steps of ``step_loss(batch_indices)``; returns the losses."""
    budget = budget or ctx.budget
    optimizer, schedule = make_optimizer(model, budget)
    model.train()
    losses = []
    batches = batch_indices(n_examples, budget.batch_size, budget.steps, ctx.seed)
    for step, index in enumerate(ctx.progress(batches, total=budget.steps, desc=desc)):
        with autocast(ctx):
            loss = step_loss(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == budget.steps - 1:
            ctx.report({f"{desc}_loss": losses[-1], f"{desc}_step": step})
    model.eval()
    return losses
