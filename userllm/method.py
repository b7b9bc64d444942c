"""The registered ``userllm`` method: user encoder (AR or DE, pretrained or random) -> optional
Perceiver -> cross-attention or soft-prompt fusion into a causal LM, trained with one of the paper's
strategies and answering by the same constrained decoding as the TextPrompt baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from bench.accounting import analytic_train_flops, count_parameters, flop_sample
from bench.context import Budget, Pretraining, TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.models.answerer import LLMAnswerer
from bench.models.event_encoders import EncoderParams
from bench.models.features import FeatureSpace, event_batch
from bench.models.llm import LLMParams, llm_layer_count
from bench.models.training import SummedLoss, TrainRun, measure_train_flops, train
from bench.precision import autocast, fp32_trainables
from bench.registry import Method, register_method
from userllm.alignment import align_to_catalog
from userllm.conditioned_lm import UserLLMModel, apply_strategy
from userllm.fusion import CrossAttentionFusion, SoftPromptFusion, condition_lm, decoder_layers
from userllm.perceiver import PerceiverResampler
from userllm.pretraining import build_user_encoder, pretrained_encoder


@dataclass(frozen=True)
class UserEncoderParams(EncoderParams):
    """USER-LLM's user encoder: its kind (autoregressive or dual-encoder tower) and its size, with the
    names ``ar_encoder`` and ``dual_encoder`` take."""

    kind: Literal["ar", "de"] = "ar"


@dataclass
class Fitted:
    """What ``fit`` produces, in one place: the model and what ``predict`` and ``accounting`` read."""

    model: UserLLMModel
    llm: LLMAnswerer  # the LLM (conditioned on user states), tokenizer, trie, prompts, decode loop, token counts
    embedding_tokens: int  # user embeddings the LLM attends to (Perceiver latents or the kept outputs)
    pretraining: dict  # how the encoder was pretrained (or that it was not)
    measured_flops: float | None = None  # per training example
    alignment: TrainRun | None = None  # catalog alignment before training (align_steps)
    run: TrainRun | None = None


def fine_tuning_budget(budget: Budget, pretraining: dict) -> Budget:
    """``budget`` less what the encoder's pretraining spent: a ``flops`` budget counts pretraining too
    (cached or not, every trial is charged it), so the fine-tuning gets what is left."""
    spent = pretraining.get("pretrain_flops_measured")
    if budget.flops is None or not spent:
        return budget
    if spent >= budget.flops:
        raise ValueError(f"budget.flops={budget.flops:.3g} is spent by the encoder's pretraining ({spent:.3g} FLOPs, "
                         "counted in every trial that uses it); raise budget.flops or lower pretrain.steps")
    return replace(budget, flops=budget.flops - spent)


@register_method("userllm")
class UserLLM(Method):
    tasks = ("next_item", "fav_category", "review_gen")
    @classmethod
    def inputs(cls, params: Any) -> tuple[str, ...]:
        """The encoder's event features, and the LLM's prior (it answers with item titles as text)."""
        return (*params.encoder.features_read(), "LLM prior")

    @classmethod
    def targets(cls, params: Any) -> str:
        return "label text, pretrained encoder" if params.pretrained else "label text"
    uses_llm = True

    @dataclass(frozen=True)
    class Params(LLMParams):
        encoder: UserEncoderParams = field(default_factory=UserEncoderParams)  # kind (ar, de) and size
        fusion: Literal["cross_attention", "soft_prompt"] = "cross_attention"
        strategy: Literal["full", "lora", "enc", "proj"] = "enc"
        pretrained: bool = True  # PT vs RD of the paper's table 5
        perceiver: bool = False
        perceiver_latents: int = 16
        perceiver_layers: int = 6
        xattn_every: int = 4  # a gated block before decoder layers 0, k, 2k, ...
        xattn_ffn_mult: int = 4
        task_prompt: int = 10  # learned soft-prompt tokens after the user embeddings
        short_context: int = 0  # K most recent events also written as text (AR50TP10: 10)
        user_embeddings: int | None = None  # the encoder's last k outputs go to the LLM (None: all N for AR, 1 for DE)
        llm_lr: float | None = None  # the LLM's own weights under strategy full (None: the budget's lr)
        encoder_lr: float | None = None  # the user encoder's weights when trained (None: the budget's lr)
        gate_lr: float | None = None  # the cross-attention blocks' tanh gates (None: the budget's lr)
        pretrain: Pretraining = field(default_factory=Pretraining)  # the encoder's pretraining (when pretrained)
        align_steps: int = 0  # catalog alignment first (userllm/alignment.py); its time counts in budget.seconds

        renamed: ClassVar[dict[str, str]] = {  # spellings before the parameters nested (2026-12)
            **{f"encoder_{name}": f"encoder.{name}" for name in ("layers", "dim", "heads", "dropout")},
            **{f"pretrain_{name}": f"pretrain.{name}" for name in ("steps", "batch_size", "lr", "weight_decay")}}

        def __post_init__(self) -> None:
            super().__post_init__()
            checks = {"perceiver_latents": 1, "perceiver_layers": 1, "xattn_every": 1, "xattn_ffn_mult": 1,
                      "task_prompt": 0, "short_context": 0, "align_steps": 0}
            if self.user_embeddings is not None:
                checks["user_embeddings"] = 1
            for name, low in checks.items():
                if getattr(self, name) < low:
                    raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
            for name in ("llm_lr", "encoder_lr", "gate_lr"):
                if getattr(self, name) is not None and getattr(self, name) <= 0:
                    raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
            if self.align_steps and (self.encoder.kind != "ar" or self.user_embeddings != 1):
                raise ValueError("align_steps needs encoder.kind 'ar' and user_embeddings 1 (one user state, read "
                                 f"by the AR encoder's tied heads), got encoder.kind {self.encoder.kind!r}, "
                                 f"user_embeddings {self.user_embeddings}")
            if self.fusion == "cross_attention" and self.xattn_every > llm_layer_count(self.llm):
                raise ValueError(f"xattn_every={self.xattn_every} is larger than the LLM's "
                                 f"{llm_layer_count(self.llm)} decoder layers")

        def kept_embeddings(self, seq_len: int) -> int:
            """How many of the encoder's last outputs the LLM (or the Perceiver) sees."""
            return min(self.user_embeddings or (seq_len if self.encoder.kind == "ar" else 1), seq_len)

    def _build(self, ctx: TrialContext) -> Fitted:
        """The untrained model (its encoder pretrained or loaded where asked), tokenizer and trie."""
        p = self.params
        llm = LLMAnswerer(ctx, p.llm, p.strategy == "full", p.lora_rank if p.strategy == "lora" else None,
                          p.short_context, p.beams, p.max_new_tokens)
        lm = llm.lm
        config = p.encoder.encoder_config(max_len=max(512, ctx.seq_len + 1))
        encoder = build_user_encoder(p.encoder.kind, FeatureSpace.of(ctx.dataset), config)
        pretraining: dict = {"encoder_pretrained": p.pretrained}
        if p.pretrained:
            pretraining |= pretrained_encoder(ctx, encoder.to(ctx.device), p.encoder.kind, config, p.pretrain.budget())
        perceiver = (PerceiverResampler(config.dim, config.heads, p.perceiver_latents, p.perceiver_layers)
                     if p.perceiver else None)
        kept = p.kept_embeddings(ctx.seq_len)
        embedding_tokens = p.perceiver_latents if p.perceiver else kept
        text = lm.config
        if p.fusion == "cross_attention":
            fusion = CrossAttentionFusion(decoder_layers(lm), text.hidden_size, config.dim, text.num_attention_heads,
                                          p.xattn_every, p.xattn_ffn_mult)
        else:
            std = float(lm.get_input_embeddings().weight.detach().float().std())
            fusion = SoftPromptFusion(text.hidden_size, config.dim, embedding_tokens, p.task_prompt, std)
        model = UserLLMModel(encoder, kept, perceiver, condition_lm(lm, fusion))
        apply_strategy(model, p.strategy)
        llm.lm, llm.slots = model.lm, fusion.slots
        return Fitted(fp32_trainables(model.to(ctx.device)), llm, embedding_tokens, pretraining)

    def lm_inputs(self, ctx: TrialContext, examples: Examples, index: np.ndarray, labels: np.ndarray,
                  count: bool = True) -> dict:
        """The model's training inputs for the selected examples: prompt + answer tokens (labels on the
        answer; counted as training input unless ``count`` is false) and the users' embeddings."""
        tokens = self.fitted.llm.train_batch(ctx, examples, index, labels, count=count)
        return tokens | self.user_states(ctx, examples, index)

    def user_states(self, ctx: TrialContext, examples: Examples, index: np.ndarray) -> dict[str, torch.Tensor]:
        """The users' embeddings of ``examples[index]``, as the conditioned LM's ``user_states`` argument."""
        batch = event_batch(ctx.dataset, examples.positions(index)).to(ctx.device)
        return {"user_states": self.fitted.model.user_states(batch)}

    def fit(self, ctx: TrialContext) -> None:
        if ctx.budget.checkpointing:
            raise ValueError("budget.checkpointing: userllm does not checkpoint (its cross-attention reads the user "
                             "states only during the forward pass, and its LLM sees a short fixed query); leave it "
                             "false")
        self.fitted = fitted = self._build(ctx)
        examples = ctx.train
        labels = ctx.labels(examples)

        def step_loss(index: np.ndarray, count: bool = True) -> SummedLoss:
            return fitted.llm.loss(ctx, examples, index, labels, count,
                                   lambda part: self.user_states(ctx, examples, part))

        sample = flop_sample(len(examples), ctx.seed)
        fitted.measured_flops = measure_train_flops(lambda index: step_loss(index, count=False), sample, ctx.budget,
                                                    lambda: autocast(ctx, llm=True)) / len(sample)
        fitted.model.zero_grad(set_to_none=True)
        lr_of, budget = self.learning_rates(ctx), fine_tuning_budget(ctx.budget, fitted.pretraining)
        if self.params.align_steps:
            fitted.alignment = align_to_catalog(ctx, fitted.model, fitted.llm.tokenizer, self.params.align_steps, lr_of,
                                                lambda mask: fitted.llm.input_tokens.add("align", mask))
            if budget.seconds is not None:  # the same wall-clock in all: alignment's time is the training's
                budget = replace(budget, seconds=max(1e-3, budget.seconds - fitted.alignment.seconds))
        fitted.run = train(ctx, fitted.model, step_loss, len(examples), budget=budget, lr_of=lr_of,
                           predict=lambda ex: self.predict(ctx, ex), llm=True)

    def learning_rates(self, ctx: TrialContext) -> Callable[[str], float]:
        """Parameter name -> learning rate: ``llm_lr`` for the LLM's own weights (not LoRA adapters),
        ``encoder_lr`` for the user encoder's, ``gate_lr`` for the fusion gates, the budget's for the rest."""
        llm_names = {f"lm.{name}" for name, _ in self.fitted.model.llm_named_parameters() if "lora_" not in name}
        llm_lr = self.params.llm_lr or ctx.budget.lr
        encoder_lr = self.params.encoder_lr or ctx.budget.lr
        gate_lr = self.params.gate_lr or ctx.budget.lr

        def lr_of(name: str) -> float:
            if name in llm_names:
                return llm_lr
            if name.startswith("encoder."):
                return encoder_lr
            return gate_lr if name.endswith("_gate") else ctx.budget.lr
        return lr_of

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples, renormalize: bool = False) -> Predictions:
        """Ranked ids (or texts) for ``examples`` by the shared constrained decoding; ``renormalize``
        scores beams renormalized over the trie (``bench.models.decoding.constrained_beam_search``; the harness uses the
        default, ``benchmarks/beam_scoring.py`` compares the two)."""
        self.fitted.model.eval()
        return self.fitted.llm.answer(ctx, examples, lambda index: self.user_states(ctx, examples, index), renormalize)

    def accounting(self, ctx: TrialContext) -> dict:
        """Parameters by part; 6ND FLOPs of the LLM side of the forward pass (the LLM with its LoRA
        adapters plus the fusion: cross-attention blocks or soft-prompt projection) over its input
        tokens, with the encoder's (D = N events) and the Perceiver's (D = N inputs + latents) beside."""
        fitted, model = self.fitted, self.fitted.model
        total, trainable = count_parameters([model])
        parts = {"encoder": [model.encoder], "fusion": [model.fusion],
                 "perceiver": [model.perceiver] if model.perceiver is not None else []}
        train_tokens = fitted.llm.input_tokens.mean("train")
        facts = {"params_total": total, "params_trainable": trainable, "llm_params": fitted.llm.llm_params,
                 "llm_input_tokens": fitted.llm.input_tokens.of("test"), "embedding_tokens": fitted.embedding_tokens,
                 "train_tokens_mean": train_tokens, "flops_per_train_example_measured": fitted.measured_flops,
                 **fitted.run.accounting(), **fitted.pretraining}
        if fitted.alignment is not None:
            facts |= {"align_steps": len(fitted.alignment.losses), "align_seconds": fitted.alignment.seconds,
                      "align_loss_first": fitted.alignment.losses[0], "align_loss_last": fitted.alignment.losses[-1]}
        for name, modules in parts.items():
            facts[f"{name}_params"], facts[f"{name}_params_trainable"] = count_parameters(modules)
        facts["flops_per_train_example_6nd"] = analytic_train_flops(fitted.llm.llm_params + facts["fusion_params"],
                                                                    train_tokens)
        facts["encoder_flops_per_train_example_6nd"] = analytic_train_flops(facts["encoder_params"], ctx.seq_len)
        if model.perceiver is not None:
            facts["perceiver_flops_per_train_example_6nd"] = analytic_train_flops(
                facts["perceiver_params"], self.params.kept_embeddings(ctx.seq_len) + self.params.perceiver_latents)
        if isinstance(model.fusion, CrossAttentionFusion):
            facts["gates"] = model.fusion.gates()
        return facts
