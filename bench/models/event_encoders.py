"""User sequence encoders shared by methods (the paper's appendix A): per-event features embedded and
fused early, a Transformer over the sequence, and the two training heads.

- ``AutoregressiveEncoder``: causal Transformer, one output embedding per event, per-feature heads tied
  to the input embeddings, cross-entropy summed over features (next item, category, rating).
- ``DualEncoder``: user tower (the same Transformer) and label tower (item or category embeddings
  through an MLP), softmax over dot-product similarities.

They live in the harness package because both the Dual Encoder baseline and USER-LLM use them, and
method packages never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.features import RATING_BUCKETS, EventBatch, FeatureSpace

IGNORE = -100  # a target no loss counts (a padded slot of a prefix)


@dataclass(frozen=True)
class EncoderParams:
    """Transformer size (paper: 6 layers, 128 dims, 8 heads), as a method takes it from a suite
    (``params``) and checks it."""

    layers: int = 6
    dim: int = 128
    heads: int = 8
    dropout: float = 0.1
    # ids: item ids only, categories and ratings neither read nor predicted (a control); left out of trial ids at "all"
    features: Literal["all", "ids"] = field(default="all", metadata={"omit_at_default": True})

    def __post_init__(self) -> None:
        if self.layers < 1 or self.dim < 8 or self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"encoder needs layers >= 1, dim >= 8 and dim divisible by heads; got "
                             f"layers={self.layers}, dim={self.dim}, heads={self.heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"encoder dropout must be in [0, 1), got {self.dropout}")
        if self.features not in ("all", "ids"):
            raise ValueError(f"features must be 'all' or 'ids', got {self.features!r}")

    def features_read(self) -> tuple[str, ...]:
        """The event features the encoder reads (``bench.registry.INPUTS``)."""
        return ("item ids",) if self.features == "ids" else ("item ids", "categories", "ratings")

    def encoder_config(self, max_len: int = 512) -> EncoderConfig:
        return EncoderConfig(self.layers, self.dim, self.heads, self.dropout, self.features, max_len=max_len)


@dataclass(frozen=True)
class EncoderConfig(EncoderParams):
    """An encoder's size and its longest input, with the split of width between features."""

    max_len: int = 512

    @property
    def widths(self) -> tuple[int, int, int]:
        """Widths of the item, category and rating embeddings; they concatenate to ``dim`` (item ids
        only: the item embedding is the whole width)."""
        small = self.dim // 4 if self.features == "all" else 0
        return self.dim - 2 * small, small, small


class EventEmbedding(nn.Module):
    """Early fusion: item, category-bag and rating embeddings concatenated into one vector per event (the
    item embedding alone where ``config.features`` is "ids")."""

    def __init__(self, space: FeatureSpace, config: EncoderConfig) -> None:
        super().__init__()
        item_dim, cat_dim, rating_dim = config.widths
        self.ids_only = config.features == "ids"
        self.item = nn.Embedding(space.n_items, item_dim)
        self.category = nn.Embedding(space.n_categories + 1, cat_dim, padding_idx=space.n_categories)
        self.rating = nn.Embedding(RATING_BUCKETS, rating_dim)
        self.register_buffer("item_categories", space.item_categories, persistent=False)
        for table in (self.item, self.category, self.rating):
            nn.init.normal_(table.weight, std=0.02)

    def category_bag(self, items: torch.Tensor) -> torch.Tensor:
        """Mean of each item's category embeddings."""
        cats = self.item_categories[items]
        mask = (cats != self.category.padding_idx).unsqueeze(-1)
        return (self.category(cats) * mask).sum(-2) / mask.sum(-2).clamp(min=1)

    def forward(self, batch: EventBatch) -> torch.Tensor:
        if self.ids_only:
            return self.item(batch.items)
        return torch.cat([self.item(batch.items), self.category_bag(batch.items), self.rating(batch.ratings)], -1)


class SequenceTower(nn.Module):
    """Learned positions + pre-norm Transformer; causal so that output t sees events <= t."""

    def __init__(self, space: FeatureSpace, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = EventEmbedding(space, config)
        self.position = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.position.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, batch: EventBatch) -> torch.Tensor:
        """Per-event outputs [b, n, dim]."""
        n = batch.items.shape[1]
        if n > self.config.max_len:
            raise ValueError(f"sequence of {n} events is longer than the encoder's max_len {self.config.max_len}")
        x = self.embed(batch) + self.position.weight[:n]
        causal = nn.Transformer.generate_square_subsequent_mask(n, device=x.device, dtype=x.dtype)
        return self.norm(self.transformer(x, mask=causal, is_causal=True))


class AutoregressiveEncoder(nn.Module):
    """The paper's AR user encoder: per-event embeddings, trained to predict every next event's features."""

    def __init__(self, space: FeatureSpace, config: EncoderConfig) -> None:
        super().__init__()
        self.tower = SequenceTower(space, config)
        item_dim, cat_dim, rating_dim = config.widths
        heads = {"item": nn.Linear(config.dim, item_dim)}
        if config.features == "all":
            heads |= {"category": nn.Linear(config.dim, cat_dim), "rating": nn.Linear(config.dim, rating_dim)}
        self.heads = nn.ModuleDict(heads)
        self.register_buffer("primary_category", space.primary_category, persistent=False)
        self.output_dim = config.dim

    def forward(self, batch: EventBatch) -> torch.Tensor:
        """One embedding per event [b, n, dim]."""
        return self.tower(batch)

    def feature_logits(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits over each read feature's vocabulary, output weights tied to the input embeddings."""
        embed = self.tower.embed
        tables = {"item": embed.item.weight, "category": embed.category.weight[:-1], "rating": embed.rating.weight}
        return {name: head(hidden) @ tables[name].T for name, head in self.heads.items()}

    def loss(self, batch: EventBatch) -> torch.Tensor:
        """Next-event cross-entropy summed over features, over positions 0..n-2 predicting 1..n-1 (of a
        right-padded prefix, up to its last real slot)."""
        hidden = self(EventBatch(batch.items[:, :-1], batch.ratings[:, :-1]))
        logits = self.feature_logits(hidden)
        targets = {"item": batch.items[:, 1:], "category": self.primary_category[batch.items[:, 1:]],
                   "rating": batch.ratings[:, 1:]}
        if batch.last is not None:  # targets past a row's last real slot are padding
            pad = torch.arange(targets["item"].shape[1], device=hidden.device)[None, :] >= batch.last[:, None]
            targets = {k: v.masked_fill(pad, IGNORE) for k, v in targets.items()}
        return sum(F.cross_entropy(logits[k].flatten(0, 1).float(), targets[k].flatten(), ignore_index=IGNORE)
                   for k in logits)


class DualEncoder(nn.Module):
    """User tower over the window, label tower over candidates; similarity logits over all candidates.

    ``label`` is "item" (next item) or "category" (favourite category). Scoring uses the user tower's
    last output; ``forward`` gives all of them (USER-LLM keeps the last k).
    """

    def __init__(self, space: FeatureSpace, config: EncoderConfig, label: str = "item") -> None:
        super().__init__()
        if label not in ("item", "category"):
            raise ValueError(f"label tower must be 'item' or 'category', got {label!r}")
        self.tower = SequenceTower(space, config)
        self.label_kind = label
        n_labels = space.n_items if label == "item" else space.n_categories
        self.label_embedding = nn.Embedding(n_labels, config.dim)
        nn.init.normal_(self.label_embedding.weight, std=0.02)
        self.label_mlp = nn.Sequential(nn.Linear(config.dim, config.dim), nn.GELU(), nn.Linear(config.dim, config.dim))
        self.user_head = nn.Linear(config.dim, config.dim)
        self.output_dim = config.dim

    def forward(self, batch: EventBatch) -> torch.Tensor:
        """The user tower's per-event outputs [b, n, dim]."""
        return self.tower(batch)

    def user_vector(self, batch: EventBatch) -> torch.Tensor:
        return self.user_head(batch.last_outputs(self.tower(batch)))

    def label_vectors(self) -> torch.Tensor:
        return self.label_mlp(self.label_embedding.weight)

    def logits(self, batch: EventBatch) -> torch.Tensor:
        """Similarity of each user to every candidate [b, n_labels]."""
        return self.user_vector(batch) @ self.label_vectors().T

    def prefix_loss(self, batch: EventBatch, next_items: torch.Tensor) -> torch.Tensor:
        """Every prefix of the window predicts its next item ([b, n]; the last is the window's label;
        ``IGNORE`` at padded slots), full softmax over the candidates: the same events as ``loss``, n
        times the supervision."""
        users = self.user_head(self.tower(batch))
        logits = users @ self.label_vectors().T
        return F.cross_entropy(logits.flatten(0, 1).float(), next_items.flatten(), ignore_index=IGNORE)

    def loss(self, batch: EventBatch, labels: torch.Tensor, log_q: torch.Tensor | None = None,
             negatives: torch.Tensor | None = None) -> torch.Tensor:
        """Full softmax over all candidates, or (``negatives`` given) a sampled softmax over the batch's
        labels plus shared negatives with logQ correction (Yi et al. 2019) for large catalogs."""
        if negatives is None:
            return F.cross_entropy(self.logits(batch).float(), labels)
        user = self.user_vector(batch)
        candidates = torch.cat([labels, negatives])
        vectors = self.label_mlp(self.label_embedding(candidates))
        logits = (user @ vectors.T).float() - log_q[candidates]
        same = labels.unsqueeze(1) == candidates.unsqueeze(0)
        same[torch.arange(len(labels)), torch.arange(len(labels))] = False
        return F.cross_entropy(logits.masked_fill(same, float("-inf")), torch.arange(len(labels), device=labels.device))


FULL_SOFTMAX_LIMIT = 65_536


class LabelSoftmax:
    """A DualEncoder's training loss against the labels of its training examples: the full softmax up to
    65,536 candidates (``softmax="auto"``), above that a sampled softmax with ``negatives`` shared
    negatives drawn by label frequency and logQ correction."""

    def __init__(self, labels: torch.Tensor, n_labels: int, softmax: str = "auto", negatives: int = 4096,
                 device: str = "cpu", generator: torch.Generator | None = None) -> None:
        self.sampled = softmax == "sampled" or (softmax == "auto" and n_labels > FULL_SOFTMAX_LIMIT)
        self.frequency = torch.bincount(labels, minlength=n_labels).float() + 1
        self.log_q = (self.frequency / self.frequency.sum()).log().to(device)
        self.negatives, self.device, self.generator = negatives, device, generator

    def __call__(self, model: DualEncoder, batch: EventBatch, target: torch.Tensor) -> torch.Tensor:
        if not self.sampled:
            return model.loss(batch, target)
        negatives = torch.multinomial(self.frequency, self.negatives, replacement=True, generator=self.generator)
        return model.loss(batch, target, log_q=self.log_q, negatives=negatives.to(self.device))
