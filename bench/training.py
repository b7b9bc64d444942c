"""Training plumbing shared by methods: AdamW with cosine decay after linear warm-up (paper appendix
C), seeded batch sampling over training windows, and a loop with progress, clipping and autocast."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from bench.context import Budget, TrialContext

NO_DECAY_MARKERS = ("bias", "norm", "gate", "embedding.weight", "position")


def make_optimizer(model: torch.nn.Module, budget: Budget, no_decay: tuple[str, ...] = NO_DECAY_MARKERS,
                   lr_of: Callable[[str], float] | None = None) -> tuple[torch.optim.Optimizer, object]:
    """AdamW over trainable parameters (no weight decay on biases, norms, gates and embeddings; learning
    rate ``lr_of(name)`` where given, else ``budget.lr``) and its cosine schedule with ``budget.warmup``
    of the steps warming up linearly."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decay = 0.0 if any(marker in name.lower() for marker in no_decay) else budget.weight_decay
            groups.setdefault((decay, lr_of(name) if lr_of else budget.lr), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": decay, "lr": lr}
                                   for (decay, lr), params in groups.items()], lr=budget.lr)
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


@dataclass
class TrainRun:
    """Per-step losses and the wall-clock seconds of the optimisation loop alone."""

    losses: list[float]
    seconds: float


def train(ctx: TrialContext, model: torch.nn.Module, step_loss: Callable[[np.ndarray], torch.Tensor],
          n_examples: int, budget: Budget | None = None, desc: str = "train", max_grad_norm: float = 1.0,
          lr_of: Callable[[str], float] | None = None) -> TrainRun:
    """Run ``budget.steps`` optimisation steps of ``step_loss(batch_indices)``."""
    started = time.perf_counter()
    budget = budget or ctx.budget
    optimizer, schedule = make_optimizer(model, budget, lr_of=lr_of)
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
    return TrainRun(losses, time.perf_counter() - started)
