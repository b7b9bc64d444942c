"""Training plumbing shared by methods: AdamW with cosine decay after linear warm-up (paper appendix
C), seeded batch sampling over training windows, and a loop with progress, clipping and autocast."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from bench.context import Budget, TrialContext
from bench.memory import release_free_heap
from bench.precision import autocast
from bench.validation import Predictor


class WarmupCosine:
    """Linear warm-up over ``warmup`` of ``total`` steps, then cosine decay to 0 at the last (paper
    appendix C; transformers' get_cosine_schedule_with_warmup step for step). The schedule follows the
    declared budget's steps, never the clock: the same budget is the same run on every machine."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int, warmup: float) -> None:
        self.optimizer, self.total, self.warmup = optimizer, total, warmup
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.update(0)

    def factor(self, step: int) -> float:
        warmup = int(self.warmup * self.total)
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, self.total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    def update(self, step: int) -> None:
        """Set every group's learning rate for the step after ``step`` steps."""
        factor = self.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * factor


def without_decay(model: torch.nn.Module) -> set[int]:
    """The ids of the parameters AdamW leaves without weight decay, by a declared rule: every parameter
    with fewer than 2 dimensions (biases, norm scales, the fusion blocks' tanh gates) and every
    ``nn.Embedding`` table (items, categories, positions, labels, an LLM's token embedding). Linear
    weights decay, LoRA's included, whatever their names (Llama's ``mlp.gate_proj`` among them)."""
    ids = {id(param) for param in model.parameters() if param.ndim < 2}
    return ids | {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Embedding)}


def make_optimizer(model: torch.nn.Module, budget: Budget,
                   lr_of: Callable[[str], float] | None = None) -> torch.optim.Optimizer:
    """AdamW over trainable parameters (no weight decay where ``without_decay`` says; learning rate
    ``lr_of(name)`` where given, else ``budget.lr``)."""
    no_decay = without_decay(model)
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decay = 0.0 if id(param) in no_decay else budget.weight_decay
            groups.setdefault((decay, lr_of(name) if lr_of else budget.lr), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    on_cuda = all(param.is_cuda for params in groups.values() for param in params)
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": decay, "lr": lr}
                                   for (decay, lr), params in groups.items()], lr=budget.lr, fused=on_cuda or None)
    return optimizer


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
class SummedLoss:
    """A loss summed over ``count`` items (an LLM's answer tokens): micro-batches of one batch add their
    sums and divide once by the batch's count, so the update is the batch's mean loss, split or not."""

    total: torch.Tensor
    count: int

    def mean(self) -> torch.Tensor:
        return self.total / max(1, self.count)


StepLoss = Callable[[np.ndarray], "torch.Tensor | SummedLoss"]  # a batch's mean loss, or its summed loss


def backward_in_parts(step_loss: StepLoss, index: np.ndarray, budget: Budget, params: list[torch.nn.Parameter],
                      forward: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """Gradients of the mean loss over ``index`` accumulated in ``params``, one micro-batch at a time
    (``budget.micro_batch_size``; each forward under ``forward()``, e.g. autocast); returns the mean loss,
    detached. A mean loss (a tensor) is weighted by its part's share of the examples, a ``SummedLoss``
    divided by the batch's summed count."""
    parts = budget.micro_batches(index)
    if len(parts) == 1:
        with forward():
            loss = step_loss(index)
            loss = loss.mean() if isinstance(loss, SummedLoss) else loss
        loss.backward()
        return loss.detach()
    total, count, summed = None, 0, False
    for part in parts:
        with forward():
            loss = step_loss(part)
        summed = isinstance(loss, SummedLoss)
        value = loss.total if summed else loss * (len(part) / len(index))
        value.backward()
        release_free_heap()  # a micro-batch's activations are freed: give their heap pages back before the next
        count += loss.count if summed else 0
        total = value.detach() if total is None else total + value.detach()
    if summed:
        for param in params:
            if param.grad is not None:
                param.grad.div_(max(1, count))
        total = total / max(1, count)
    return total


def measure_train_flops(step_loss: StepLoss, sample: np.ndarray, budget: Budget,
                        forward: Callable[[], AbstractContextManager] = nullcontext) -> int:
    """FLOPs of forward (under ``forward()``) + backward over the example indices ``sample``, in parts no
    larger than a training step's micro-batch (so that measuring costs no more memory than a step)."""
    from bench.accounting import measure_flops

    def one(part: np.ndarray) -> None:
        with forward():
            loss = step_loss(part)
        (loss.total if isinstance(loss, SummedLoss) else loss).backward()
        release_free_heap()

    size = min(budget.micro_batch_size or budget.batch_size, budget.batch_size)
    parts = [sample[lo:lo + size] for lo in range(0, len(sample), size)]
    return sum(measure_flops(lambda part=part: one(part)) for part in parts)


@dataclass
class TrainRun:
    """Per-step losses, the wall-clock seconds of the optimisation loop alone (validation checks not
    counted), the steps the budget allowed, the measured FLOPs of one step, the training examples seen
    and why it stopped."""

    losses: list[float]
    seconds: float
    stopped: str = "steps"
    planned_steps: int = 0
    flops_per_step: int | None = None
    examples: int = 0

    @property
    def flops(self) -> int | None:
        """Training FLOPs: the first step's, as torch counts them, times the steps taken."""
        return None if self.flops_per_step is None else self.flops_per_step * len(self.losses)

    def accounting(self, prefix: str = "train") -> dict[str, float | int | str | None]:
        """The run's facts for a trial record, named ``<prefix>_...``: steps taken and planned, examples,
        measured FLOPs, loop seconds, final loss, why it stopped."""
        return {f"{prefix}_steps": len(self.losses), f"{prefix}_planned_steps": self.planned_steps,
                f"{prefix}_examples": self.examples, f"{prefix}_flops_measured": self.flops,
                f"{prefix}_seconds": self.seconds,
                f"final_{prefix}_loss": self.losses[-1] if self.losses else float("nan"),
                **({"stopped": self.stopped} if prefix == "train" else {})}


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}


def planned_steps(budget: Budget, flops_per_step: int | None) -> int:
    """The steps a budget allows: ``budget.steps``, or fewer where ``budget.flops`` runs out first: the
    whole steps it buys, never more FLOPs than it holds (at least one step). Rounding up gave a method
    with costly steps up to a step more than its budget (TP10 8% over, USER-LLM 1%)."""
    if budget.flops is None or not flops_per_step:
        return budget.steps
    return max(1, min(budget.steps, math.floor(budget.flops / flops_per_step)))


def train(ctx: TrialContext, model: torch.nn.Module, step_loss: StepLoss,
          n_examples: int, budget: Budget | None = None, desc: str = "train", max_grad_norm: float = 1.0,
          lr_of: Callable[[str], float] | None = None, predict: Predictor | None = None,
          llm: bool = False) -> TrainRun:
    """Run ``budget.steps`` optimisation steps of ``step_loss(batch_indices)`` (under
    ``bench.precision.autocast(ctx, llm)``; in micro-batches where ``budget.micro_batch_size`` asks, see
    ``backward_in_parts``), or fewer where ``budget.flops`` is given: the first step's
    FLOPs are counted and the run gets as many steps as the budget's FLOPs buy. The learning-rate schedule
    spans those steps. ``budget.seconds`` is a guard only: where it stops the run, the result depends on
    the machine's speed and the record says so (stopped: seconds).

    Every run counts its first step's FLOPs (torch's FlopCounterMode; ``TrainRun.flops`` = that times the
    steps taken) and the examples it trained on: one currency for every method.

    With ``predict`` (the method's own predict over examples) and a harness validation in ``ctx``, the
    harness scores it every ``budget.eval_every`` steps and after the last step (the curve goes to
    ``ctx.validation``), training stops after ``budget.patience`` checks without improvement, and the
    trainable weights of the best check are restored at the end."""
    from bench.accounting import flop_counter

    budget = budget or ctx.budget
    validation = ctx.validation if predict is not None else None
    optimizer = make_optimizer(model, budget, lr_of=lr_of)
    trainable = [p for p in model.parameters() if p.requires_grad]
    total, flops_per_step = budget.steps, None
    schedule = WarmupCosine(optimizer, total, budget.warmup)
    model.train()
    losses: list[torch.Tensor] = []  # detached on the device: no host sync per step
    best_state, seconds, seen, stopped = None, 0.0, 0, "steps"
    batches = batch_indices(n_examples, budget.batch_size, budget.steps, ctx.seed)
    bar = ctx.progress(batches, total=budget.steps, desc=desc)
    for step, index in enumerate(bar, start=1):
        tick = time.perf_counter()
        counter = flop_counter() if step == 1 else None
        optimizer.zero_grad(set_to_none=True)
        with counter or nullcontext():
            loss = backward_in_parts(step_loss, index, budget, trainable, lambda: autocast(ctx, llm))
        if counter is not None:
            flops_per_step = int(counter.get_total_flops())
            # the schedule spans the steps the FLOPs buy (a new WarmupCosine here would take the warm-up's
            # zero learning rate of step 0 as its base: no step would ever learn)
            total = schedule.total = planned_steps(budget, flops_per_step)
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        losses.append(loss)
        seconds += time.perf_counter() - tick
        schedule.update(step)
        seen += len(index)
        last = step == total
        out_of_time = budget.seconds is not None and seconds >= budget.seconds and not last
        if step % 50 == 1 or last:
            loss = float(losses[-1])
            ctx.report({f"{desc}_loss": loss, f"{desc}_step": step, "logged": {f"{desc}_loss": loss, f"{desc}_step": step}})
            release_free_heap()
        if validation is not None and (step % (budget.eval_every or total) == 0 or last or out_of_time):
            model.eval()
            with torch.no_grad():
                recent = losses[-(budget.eval_every or total):]
                improved = validation.check(predict, step, seconds, seen, float(torch.stack(recent).mean()))
            model.train()
            if improved:
                best_state = _trainable_state(model)
            elif budget.patience is not None and validation.checks_since_best() >= budget.patience:
                stopped = "patience"
                break
        if out_of_time:
            stopped = "seconds"
            break
        if last:
            stopped = "flops" if total < budget.steps else "steps"
            break
    if best_state is not None and validation.best is not validation.points[-1]:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    if validation is not None:
        validation.stop(stopped)
    model.eval()
    return TrainRun(torch.stack(losses).float().tolist() if losses else [], seconds, stopped, total, flops_per_step,
                    seen)
