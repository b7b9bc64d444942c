"""USER-LLM's autoregressive user encoder alone (method ``ar_encoder``): trained on the same next-event
objective USER-LLM pretrains it with, and ranking items (next_item) or categories (fav_category) with
its own heads, tied to the input embeddings, from its last output. The number that shows how much the
LLM adds on top of its encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.accounting import count_parameters
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.memory import score_bytes
from bench.models.event_encoders import AutoregressiveEncoder, EncoderParams
from bench.models.features import FeatureSpace, event_batch
from bench.registry import Method, register_method
from userllm.pretraining import pretrain


@register_method("ar_encoder")
class AREncoderAlone(Method):
    tasks = ("next_item", "fav_category")
    supervision = "all positions"
    windows = ("exact", "prefixes")

    @classmethod
    def inputs(cls, params: Any) -> tuple[str, ...]:
        return params.features_read()

    @dataclass(frozen=True)
    class Params(EncoderParams):
        """USER-LLM's AR encoder sizes (paper: 6 layers, 128 dims, 8 heads)."""

    def fit(self, ctx: TrialContext) -> None:
        p = self.params
        if p.features == "ids" and ctx.task.feature != "item":
            raise ValueError(f"ar_encoder with features 'ids' predicts items only; {ctx.task.name} needs its "
                             f"{ctx.task.feature} head (features 'all')")
        config = p.encoder_config(max_len=max(512, ctx.seq_len + 1))
        self.encoder = AutoregressiveEncoder(FeatureSpace.of(ctx.dataset), config).to(ctx.device)
        self.run = pretrain(ctx, self.encoder, ctx.budget, predict=lambda ex: self.predict(ctx, ex))

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        head = ctx.task.feature
        scores = []
        size = ctx.eval_batch_size(score_bytes(ctx.task.n_candidates(ctx.dataset)))
        for index in ctx.eval_batches(len(examples), size, desc="rank"):
            batch = event_batch(ctx.dataset, examples.positions(index)).to(ctx.device)
            last = self.encoder(batch)[:, -1]  # scored in fp32 on every device: bf16 scores tie (issue #28)
            scores.append(self.encoder.feature_logits(last)[head].float().cpu())
        return Predictions(scores=torch.cat(scores).numpy())

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.encoder])
        return {"params_total": total, "params_trainable": trainable, **self.run.accounting()}
