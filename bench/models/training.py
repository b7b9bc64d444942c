"""Training plumbing shared by methods: AdamW with cosine decay after linear warm-up (paper appendix
C), seeded batch sampling over training windows, and a loop with progress, clipping and autocast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import math

from bench.context import Budget, TrialContext
from bench.precision import autocast
from bench.validation import Predictor

NO_DECAY_MARKERS = ("bias", "norm", "gate", "embedding.weight", "position")


class WarmupCosine:
    """Linear warm-up over ``budget.warmup`` of training, then cosine decay to 0 at its end (paper
    appendix C; transformers' get_cosine_schedule_with_warmup step for step). Training's progress is the
    larger of steps / ``budget.steps`` and seconds / ``budget.seconds``, so a run capped by wall-clock
    completes its schedule at the cap instead of stopping in its warm-up."""

    def __init__(self, optimizer: torch.optim.Optimizer, budget: Budget) -> None:
        self.optimizer, self.budget = optimizer, budget
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.update(0, 0.0)

    def factor(self, step: int, seconds: float) -> float:
        total = self.budget.steps
        at = step if self.budget.seconds is None else max(step, total * seconds / self.budget.seconds)
        warmup = int(self.budget.warmup * total)
        if at < warmup:
            return at / max(1, warmup)
        progress = (at - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    def update(self, step: int, seconds: float) -> None:
        """Set every group's learning rate for the step after ``step`` steps and ``seconds`` of training."""
        factor = self.factor(step, seconds)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * factor


def make_optimizer(model: torch.nn.Module, budget: Budget, no_decay: tuple[str, ...] = NO_DECAY_MARKERS,
                   lr_of: Callable[[str], float] | None = None) -> tuple[torch.optim.Optimizer, WarmupCosine]:
    """AdamW over trainable parameters (no weight decay on biases, norms, gates and embeddings; learning
    rate ``lr_of(name)`` where given, else ``budget.lr``) and its warm-up + cosine schedule."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decay = 0.0 if any(marker in name.lower() for marker in no_decay) else budget.weight_decay
            groups.setdefault((decay, lr_of(name) if lr_of else budget.lr), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    on_cuda = all(param.is_cuda for params in groups.values() for param in params)
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": decay, "lr": lr}
                                   for (decay, lr), params in groups.items()], lr=budget.lr, fused=on_cuda or None)
    return optimizer, WarmupCosine(optimizer, budget)


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


@dataclass
class TrainRun:
    """Per-step losses, the wall-clock seconds of the optimisation loop alone (validation checks not
    counted) and why it stopped (steps, patience or seconds)."""

    losses: list[float]
    seconds: float
    stopped: str = "steps"

    def accounting(self) -> dict[str, float | int | str]:
        """The run's facts for a trial record: steps taken, loop seconds, final loss, why it stopped."""
        return {"train_steps": len(self.losses), "train_seconds": self.seconds,
                "final_train_loss": self.losses[-1] if self.losses else float("nan"), "stopped": self.stopped}


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}


def train(ctx: TrialContext, model: torch.nn.Module, step_loss: Callable[[np.ndarray], torch.Tensor],
          n_examples: int, budget: Budget | None = None, desc: str = "train", max_grad_norm: float = 1.0,
          lr_of: Callable[[str], float] | None = None, predict: Predictor | None = None,
          llm: bool = False) -> TrainRun:
    """Run up to ``budget.steps`` optimisation steps of ``step_loss(batch_indices)``, for at most
    ``budget.seconds`` of optimisation (under ``bench.precision.autocast(ctx, llm)``).

    With ``predict`` (the method's own predict over examples) and a harness validation in ``ctx``, the
    harness scores it every ``budget.eval_every`` steps and after the last step (the curve goes to
    ``ctx.validation``), training stops after ``budget.patience`` checks without improvement, and the
    trainable weights of the best check are restored at the end."""
    budget = budget or ctx.budget
    validation = ctx.validation if predict is not None else None
    optimizer, schedule = make_optimizer(model, budget, lr_of=lr_of)
    every = budget.eval_every or budget.steps
    model.train()
    losses: list[torch.Tensor] = []  # detached on the device: no host sync per step
    best_state, seconds, seen, stopped = None, 0.0, 0, "steps"
    batches = batch_indices(n_examples, budget.batch_size, budget.steps, ctx.seed)
    for step, index in enumerate(ctx.progress(batches, total=budget.steps, desc=desc), start=1):
        tick = time.perf_counter()
        with autocast(ctx, llm):
            loss = step_loss(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        optimizer.step()
        losses.append(loss.detach())
        seconds += time.perf_counter() - tick
        schedule.update(step, seconds)
        seen += len(index)
        out_of_time = budget.seconds is not None and seconds >= budget.seconds
        if step % 50 == 1 or step == budget.steps:
            ctx.report({f"{desc}_loss": float(losses[-1]), f"{desc}_step": step})
        if validation is not None and (step % every == 0 or step == budget.steps or out_of_time):
            model.eval()
            with torch.no_grad():
                improved = validation.check(predict, step, seconds, seen, float(torch.stack(losses[-every:]).mean()))
            model.train()
            if improved:
                best_state = _trainable_state(model)
            elif budget.patience is not None and validation.checks_since_best() >= budget.patience:
                stopped = "patience"
                break
        if out_of_time:
            stopped = "seconds"
            break
    if best_state is not None and validation.best is not validation.points[-1]:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    if validation is not None:
        validation.stop(stopped)
    model.eval()
    return TrainRun(torch.stack(losses).float().tolist() if losses else [], seconds, stopped)
