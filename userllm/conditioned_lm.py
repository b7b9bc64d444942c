"""USER-LLM as one module: user encoder -> optional Perceiver -> fused into a causal LM; and the
training strategies of the paper's table 5 as ``requires_grad`` settings."""

from __future__ import annotations

import torch
from torch import nn

from bench.models.features import EventBatch
from userllm.fusion import UserFusion

STRATEGIES = ("full", "lora", "enc", "proj")


class UserLLMModel(nn.Module):
    """``encoder`` (AR or DE user tower) whose last ``kept`` outputs go on, ``perceiver`` (or None) and
    ``lm`` (a user-conditioned LM)."""

    def __init__(self, encoder: nn.Module, kept: int, perceiver: nn.Module | None, lm: nn.Module) -> None:
        super().__init__()
        self.encoder, self.kept, self.perceiver, self.lm = encoder, kept, perceiver, lm

    @property
    def fusion(self) -> UserFusion:
        return self.lm.user_fusion

    def user_states(self, batch: EventBatch) -> torch.Tensor:
        """The user embeddings the LLM sees [b, n_embeddings, encoder_dim]."""
        states = self.encoder(batch)[:, -self.kept:]
        return states if self.perceiver is None else self.perceiver(states)

    def llm_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The LLM's own parameters (with LoRA adapters), without the fusion modules."""
        return [(n, p) for n, p in self.lm.named_parameters() if not n.startswith("user_fusion.")]


def apply_strategy(model: UserLLMModel, strategy: str) -> None:
    """full: everything; lora: LoRA adapters + encoder + fusion/Perceiver; enc: encoder + fusion/Perceiver
    (LLM frozen); proj: fusion/Perceiver only (LLM and encoder frozen)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    for name, param in model.llm_named_parameters():
        param.requires_grad = strategy == "full" or (strategy == "lora" and "lora_" in name)
    model.encoder.requires_grad_(strategy != "proj")
    model.fusion.requires_grad_(True)
    if model.perceiver is not None:
        model.perceiver.requires_grad_(True)
