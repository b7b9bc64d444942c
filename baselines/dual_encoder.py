"""Dual Encoder baseline (paper appendix A): a Transformer user tower over the window and a label tower
over the next item (or the favourite category); softmax over dot-product similarities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from bench.accounting import count_parameters
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.memory import score_bytes
from bench.models.event_encoders import IGNORE, DualEncoder, EncoderParams, LabelSoftmax
from bench.models.features import FeatureSpace, event_batch, to_device
from bench.models.training import train
from bench.registry import Method, register_method


@register_method("dual_encoder")
class DualEncoderBaseline(Method):
    tasks = ("next_item", "fav_category")
    windows = ("exact", "prefixes")

    @classmethod
    def inputs(cls, params: Any) -> tuple[str, ...]:
        return params.features_read()

    @classmethod
    def targets(cls, params: Any) -> str:
        return "all positions" if params.positions == "all" else "last"

    @dataclass(frozen=True)
    class Params(EncoderParams):
        softmax: Literal["auto", "full", "sampled"] = "auto"  # auto: full up to 65,536 candidates
        negatives: int = 4096  # shared negatives of the sampled softmax
        positions: Literal["last", "all"] = "last"  # all: every prefix of a window predicts its next item

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.negatives < 1:
                raise ValueError(f"negatives must be >= 1, got {self.negatives}")
            if self.positions == "all" and self.softmax == "sampled":
                raise ValueError("positions 'all' trains with the full softmax; use softmax 'auto' or 'full'")

    def fit(self, ctx: TrialContext) -> None:
        p = self.params
        space = FeatureSpace.of(ctx.dataset)
        config = p.encoder_config(max_len=max(512, ctx.seq_len))
        label = ctx.task.feature
        self.model = DualEncoder(space, config, label=label).to(ctx.device)
        train_examples = ctx.train
        labels = torch.from_numpy(ctx.labels(train_examples).astype(np.int64))
        objective = LabelSoftmax(labels, ctx.task.n_candidates(ctx.dataset), p.softmax, p.negatives, ctx.device,
                                 ctx.torch_generator())

        def step_loss(index: np.ndarray) -> torch.Tensor:
            batch = event_batch(ctx.dataset, train_examples.positions(index), train_examples.padding(index))
            return objective(self.model, batch.to(ctx.device), to_device(labels[index], ctx.device))

        def prefix_loss(index: np.ndarray) -> torch.Tensor:
            positions, padding = train_examples.positions(index), train_examples.padding(index)
            batch = event_batch(ctx.dataset, positions, padding).to(ctx.device)
            next_items = np.where(padding, IGNORE, ctx.dataset.item[positions + 1]).astype(np.int64)
            return self.model.prefix_loss(batch, to_device(torch.from_numpy(next_items), ctx.device))

        if p.positions == "all":
            if label != "item":
                raise ValueError("dual_encoder positions 'all' is for next_item (a prefix's next item is its label)")
            step_loss = prefix_loss

        self.run = train(ctx, self.model, step_loss, len(train_examples), predict=lambda ex: self.predict(ctx, ex))

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        scores = []
        size = ctx.eval_batch_size(score_bytes(ctx.task.n_candidates(ctx.dataset)))
        for index in ctx.eval_batches(len(examples), size, desc="rank"):
            batch = event_batch(ctx.dataset, examples.positions(index))
            # scored in fp32 on every device: bf16 scores tie within a row's top 10 (docs/findings.md)
            scores.append(self.model.logits(batch.to(ctx.device)).float().cpu())
        return Predictions(scores=torch.cat(scores).numpy())

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        return {"params_total": total, "params_trainable": trainable, **self.run.accounting()}
