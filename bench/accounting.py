"""Cost accounting: parameters, LLM input tokens, FLOPs (the paper's 6ND and measured), wall time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def count_parameters(modules: Iterable[Any]) -> tuple[int, int]:
    """(total, trainable) parameter counts over torch modules, each tensor counted once."""
    seen: dict[int, Any] = {}
    for module in modules:
        for param in module.parameters():
            seen.setdefault(id(param), param)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return total, trainable


def token_stats(counts: Iterable[int] | np.ndarray) -> dict[str, float]:
    """Mean and max of per-example token counts."""
    values = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts, dtype=np.float64)
    if values.size == 0:
        return {"mean": 0.0, "max": 0.0}
    return {"mean": float(values.mean()), "max": float(values.max())}


class InputTokens:
    """Per-example LLM input token counts (attention-mask sums) kept apart by split, so that a test
    figure is never mixed with the validation checks' or the training batches'."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def add(self, split: str, attention_mask: Any) -> None:
        self.counts.setdefault(split, []).extend(attention_mask.sum(1).tolist())

    def of(self, split: str) -> list[int]:
        return self.counts.get(split, [])

    def mean(self, split: str) -> float:
        counts = self.of(split)
        return float(np.mean(counts)) if counts else 0.0


def total_training(facts: dict[str, Any]) -> dict[str, Any]:
    """A trained method's whole training in one currency: fine-tuning plus pretraining examples and
    measured FLOPs (``bench.models.training.TrainRun.accounting``'s ``train_*`` and ``pretrain_*``);
    nothing for a method that trains nothing."""
    parts = [prefix for prefix in ("train", "pretrain") if facts.get(f"{prefix}_examples")]
    if not parts:
        return {}
    flops = [facts.get(f"{prefix}_flops_measured") for prefix in parts]
    return {"total_train_examples": sum(facts[f"{prefix}_examples"] for prefix in parts),
            "total_train_flops": None if None in flops else sum(flops), "train_flops_basis": "measured"}


FLOP_SAMPLE = 8


def flop_sample(n_examples: int, seed: int, size: int = FLOP_SAMPLE) -> np.ndarray:
    """A seeded random sample of training-example indices to measure FLOPs per example on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_examples, min(size, n_examples), replace=False))


def analytic_train_flops(n_params: int, tokens: float) -> float:
    """FLOPs to train on one example of ``tokens`` tokens: 6 * N * D (Kaplan et al. 2020; the paper's table 3)."""
    return 6.0 * n_params * tokens


def cpu_sdpa_mapping() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for CPU SDPA kernels, which torch's FlopCounterMode does not count by itself."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


class _TotalOnly:
    """A stand-in for FlopCounterMode's module tracker: every FLOP counted as the total's ("Global"). The
    tracker hooks each module's inputs for the per-module breakdown, which the harness does not use, and
    fails on a parameter passed as a module's input under no_grad (USER-LLM's Perceiver latents while
    decoding: "Expected gradient function to be set")."""

    parents = ("Global",)

    def __enter__(self) -> _TotalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def flop_counter() -> Any:
    """torch's FlopCounterMode counting totals only, with the CPU SDPA kernels' formulas."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=cpu_sdpa_mapping())
    counter.mod_tracker = _TotalOnly()
    return counter


def measure_flops(step: Callable[[], Any]) -> int:
    """FLOPs that ``step`` (e.g. one forward + backward on a real batch, or one prediction) performs, as
    torch counts them."""
    with flop_counter() as counter:
        step()
    return int(counter.get_total_flops())
