"""The registered ``userllm`` method: user encoder (AR or DE, pretrained or random) -> optional
Perceiver -> cross-attention or soft-prompt fusion into a causal LM, trained with one of the paper's
strategies and answering by the same constrained decoding as the TextPrompt baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from bench.accounting import (
    FLOP_SAMPLE,
    InputTokens,
    analytic_train_flops,
    count_parameters,
    flop_sample,
    measure_flops,
)
from bench.context import Budget, TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.models.decoding import candidate_trie, decode_answers, decode_batch_size, gather_predictions
from bench.models.event_encoders import EncoderConfig
from bench.models.features import FeatureSpace, event_batch
from bench.models.llm import EMBEDDED, attention_projection_names, check_llm_name, llm_layer_count, load_llm
from bench.models.lm_inputs import encode_prompts, lm_batch
from bench.models.prompts import PromptWriter, answer_texts
from bench.models.training import TrainRun, train
from bench.precision import autocast, fp32_trainables, llm_storage_dtype
from bench.registry import Method, register_method
from userllm.alignment import align_to_catalog
from userllm.conditioned_lm import UserLLMModel, apply_strategy
from userllm.fusion import CrossAttentionFusion, SoftPromptFusion, condition_lm, decoder_layers
from userllm.perceiver import PerceiverResampler
from userllm.pretraining import build_user_encoder, pretrained_encoder


@dataclass
class Fitted:
    """What ``fit`` produces, in one place: the model and what ``predict`` and ``accounting`` read."""

    model: UserLLMModel
    tokenizer: Any
    trie: Any  # the catalog's (or the categories') token trie for constrained decoding
    prompts: PromptWriter  # the question, after the short_context most recent events as text
    llm_params: int  # the LLM with its LoRA adapters, before the fusion
    embedding_tokens: int  # user embeddings the LLM attends to (Perceiver latents or the kept outputs)
    pretraining: dict  # how the encoder was pretrained (or that it was not)
    input_tokens: InputTokens = field(default_factory=InputTokens)  # LLM input tokens, by split
    measured_flops: float | None = None  # per training example
    alignment: TrainRun | None = None  # catalog alignment before training (align_steps)
    run: TrainRun | None = None


@register_method("userllm")
class UserLLM(Method):
    tasks = ("next_item", "fav_category", "review_gen")
    uses_llm = True

    @dataclass(frozen=True)
    class Params:
        llm: str = EMBEDDED  # "smollm2-135m", "tiny-random" (tests) or a local HF causal-LM folder
        encoder: Literal["ar", "de"] = "ar"
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
        lora_rank: int = 8
        llm_lr: float | None = None  # the LLM's own weights under strategy full (None: the budget's lr)
        encoder_lr: float | None = None  # the user encoder's weights when trained (None: the budget's lr)
        gate_lr: float | None = None  # the cross-attention blocks' tanh gates (None: the budget's lr)
        encoder_layers: int = 6
        encoder_dim: int = 128
        encoder_heads: int = 8
        encoder_dropout: float = 0.1
        pretrain_steps: int = 1000
        pretrain_batch_size: int = 64
        pretrain_lr: float = 1e-3
        pretrain_weight_decay: float = 1e-3
        align_steps: int = 0  # catalog alignment first (userllm/alignment.py); its time counts in budget.seconds
        beams: int = 10
        max_new_tokens: int = 48  # review_gen

        def __post_init__(self) -> None:
            check_llm_name(self.llm)
            self.encoder_config(0)
            checks = {"perceiver_latents": 1, "perceiver_layers": 1, "xattn_every": 1, "xattn_ffn_mult": 1,
                      "task_prompt": 0, "short_context": 0, "lora_rank": 1,
                      "pretrain_steps": 1, "pretrain_batch_size": 1, "beams": 1, "max_new_tokens": 1,
                      "align_steps": 0}
            if self.user_embeddings is not None:
                checks["user_embeddings"] = 1
            for name, low in checks.items():
                if getattr(self, name) < low:
                    raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
            for name in ("pretrain_lr", "llm_lr", "encoder_lr", "gate_lr"):
                if getattr(self, name) is not None and getattr(self, name) <= 0:
                    raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
            if self.align_steps and (self.encoder != "ar" or self.user_embeddings != 1):
                raise ValueError("align_steps needs encoder 'ar' and user_embeddings 1 (one user state, read by "
                                 f"the AR encoder's tied heads), got encoder {self.encoder!r}, "
                                 f"user_embeddings {self.user_embeddings}")
            if self.fusion == "cross_attention" and self.xattn_every > llm_layer_count(self.llm):
                raise ValueError(f"xattn_every={self.xattn_every} is larger than the LLM's "
                                 f"{llm_layer_count(self.llm)} decoder layers")

        def kept_embeddings(self, seq_len: int) -> int:
            """How many of the encoder's last outputs the LLM (or the Perceiver) sees."""
            return min(self.user_embeddings or (seq_len if self.encoder == "ar" else 1), seq_len)

        def encoder_config(self, seq_len: int) -> EncoderConfig:
            return EncoderConfig(self.encoder_layers, self.encoder_dim, self.encoder_heads, self.encoder_dropout,
                                 max_len=max(512, seq_len + 1))

    def _build(self, ctx: TrialContext) -> Fitted:
        """The untrained model (its encoder pretrained or loaded where asked), tokenizer and trie."""
        p = self.params
        lm, tokenizer = load_llm(p.llm, ctx.shared_cache, ctx.device, llm_storage_dtype(ctx, p.strategy == "full"))
        if p.strategy == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=p.lora_rank, lora_alpha=2 * p.lora_rank, lora_dropout=0.05,
                                target_modules=attention_projection_names(lm))
            lm = inject_adapter_in_model(config, lm)
        llm_params = count_parameters([lm])[0]
        config = p.encoder_config(ctx.seq_len)
        encoder = build_user_encoder(p.encoder, FeatureSpace.of(ctx.dataset), config)
        pretraining: dict = {"encoder_pretrained": p.pretrained}
        if p.pretrained:
            budget = Budget(steps=p.pretrain_steps, batch_size=p.pretrain_batch_size, lr=p.pretrain_lr,
                            weight_decay=p.pretrain_weight_decay)
            pretraining |= pretrained_encoder(ctx, encoder.to(ctx.device), p.encoder, config, budget)
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
        prompts = PromptWriter(ctx.dataset, ctx.task.name, min(p.short_context, ctx.seq_len))
        return Fitted(fp32_trainables(model.to(ctx.device)), tokenizer, candidate_trie(ctx, tokenizer), prompts,
                      llm_params, embedding_tokens, pretraining)

    def lm_inputs(self, ctx: TrialContext, examples: Examples, index: np.ndarray, labels: np.ndarray) -> dict:
        """The model's training inputs for the selected examples: prompt + answer tokens (labels on the
        answer) and the users' embeddings."""
        model = self.fitted.model
        answers = answer_texts(ctx.dataset, ctx.task.name, labels[index])
        tokens = lm_batch(self.fitted.tokenizer, self.fitted.prompts(ctx.dataset, examples, index), answers, ctx.device,
                          slots=model.fusion.slots)
        batch = event_batch(ctx.dataset, examples.positions(index)).to(ctx.device)
        return tokens | {"user_states": model.user_states(batch)}

    def fit(self, ctx: TrialContext) -> None:
        self.fitted = fitted = self._build(ctx)
        examples = ctx.train
        labels = ctx.labels(examples)

        def step_loss(index: np.ndarray) -> torch.Tensor:
            inputs = self.lm_inputs(ctx, examples, index, labels)
            fitted.input_tokens.add("train", inputs["attention_mask"])
            return fitted.model.lm(**inputs).loss

        def sample_loss() -> None:
            fitted.model.lm(**self.lm_inputs(ctx, examples, flop_sample(len(examples), ctx.seed), labels)).loss.backward()

        with autocast(ctx, llm=True):
            fitted.measured_flops = measure_flops(sample_loss) / min(FLOP_SAMPLE, len(examples))
        fitted.model.zero_grad(set_to_none=True)
        lr_of, budget = self.learning_rates(ctx), ctx.budget
        if self.params.align_steps:
            fitted.alignment = align_to_catalog(ctx, fitted.model, fitted.tokenizer, self.params.align_steps, lr_of,
                                                lambda mask: fitted.input_tokens.add("align", mask))
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
        fitted = self.fitted
        fitted.model.eval()
        answers, p = [], self.params
        size = decode_batch_size(ctx, fitted.model.lm, fitted.tokenizer, fitted.trie, fitted.prompts, examples,
                                 p.beams, p.max_new_tokens, fitted.model.fusion.slots)
        for index in ctx.eval_batches(len(examples), size, desc="decode"):
            encoded = encode_prompts(fitted.tokenizer, fitted.prompts(ctx.dataset, examples, index), ctx.device,
                                     slots=fitted.model.fusion.slots)
            fitted.input_tokens.add(examples.split, encoded["attention_mask"])
            with autocast(ctx, llm=True):
                states = fitted.model.user_states(event_batch(ctx.dataset, examples.positions(index)).to(ctx.device))
                answers.append(decode_answers(ctx, examples, index, fitted.model.lm, fitted.tokenizer, fitted.trie,
                                              encoded, self.params.beams, self.params.max_new_tokens,
                                              renormalize, user_states=states))
        return gather_predictions(ctx, answers)

    def accounting(self, ctx: TrialContext) -> dict:
        """Parameters by part; 6ND FLOPs of the LLM side of the forward pass (the LLM with its LoRA
        adapters plus the fusion: cross-attention blocks or soft-prompt projection) over its input
        tokens, with the encoder's (D = N events) and the Perceiver's (D = N inputs + latents) beside."""
        fitted, model = self.fitted, self.fitted.model
        total, trainable = count_parameters([model])
        parts = {"encoder": [model.encoder], "fusion": [model.fusion],
                 "perceiver": [model.perceiver] if model.perceiver is not None else []}
        train_tokens = fitted.input_tokens.mean("train")
        facts = {"params_total": total, "params_trainable": trainable, "llm_params": fitted.llm_params,
                 "llm_input_tokens": fitted.input_tokens.of("test"), "embedding_tokens": fitted.embedding_tokens,
                 "train_tokens_mean": train_tokens, "flops_per_train_example_measured": fitted.measured_flops,
                 **fitted.run.accounting(), **fitted.pretraining}
        if fitted.alignment is not None:
            facts |= {"align_steps": len(fitted.alignment.losses), "align_seconds": fitted.alignment.seconds,
                      "align_loss_first": fitted.alignment.losses[0], "align_loss_last": fitted.alignment.losses[-1]}
        for name, modules in parts.items():
            facts[f"{name}_params"], facts[f"{name}_params_trainable"] = count_parameters(modules)
        facts["flops_per_train_example_6nd"] = analytic_train_flops(fitted.llm_params + facts["fusion_params"],
                                                                    train_tokens)
        facts["encoder_flops_per_train_example_6nd"] = analytic_train_flops(facts["encoder_params"], ctx.seq_len)
        if model.perceiver is not None:
            facts["perceiver_flops_per_train_example_6nd"] = analytic_train_flops(
                facts["perceiver_params"], self.params.kept_embeddings(ctx.seq_len) + self.params.perceiver_latents)
        if isinstance(model.fusion, CrossAttentionFusion):
            facts["gates"] = model.fusion.gates()
        return facts
