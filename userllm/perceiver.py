"""Perceiver resampler (paper section 3.2, after Flamingo): a fixed set of learned latent queries
cross-attends to the encoder's N outputs, compressing any history length to ``latents`` embeddings."""

from __future__ import annotations

import torch
from torch import nn


class PerceiverLayer(nn.Module):
    """Latents attend to [inputs; latents], then a feed-forward; both residual, pre-norm."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.input_norm = nn.LayerNorm(dim)
        self.latent_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, latents: torch.Tensor, inputs: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        queries = self.latent_norm(latents)
        keys = torch.cat([self.input_norm(inputs), queries], 1)
        attended, _ = self.attention(queries, keys, keys, key_padding_mask=padding, need_weights=False)
        latents = latents + attended
        return latents + self.ff(latents)


class PerceiverResampler(nn.Module):
    """[b, n, dim] encoder outputs (optionally with a mask, True = real event) -> [b, latents, dim]."""

    def __init__(self, dim: int, heads: int, latents: int = 16, layers: int = 6) -> None:
        super().__init__()
        if latents < 1 or layers < 1:
            raise ValueError(f"perceiver needs latents >= 1 and layers >= 1, got latents={latents}, layers={layers}")
        self.latents = nn.Parameter(torch.randn(latents, dim) * 0.02)
        self.layers = nn.ModuleList(PerceiverLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = inputs.shape
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)
        real = torch.ones(b, n, dtype=torch.bool, device=inputs.device) if mask is None else mask.bool()
        padding = ~torch.cat([real, torch.ones(b, latents.shape[1], dtype=torch.bool, device=inputs.device)], 1)
        for layer in self.layers:
            latents = layer(latents, inputs, padding)
        return self.norm(latents)
