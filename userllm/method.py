"""The registered ``userllm`` method: user encoder (AR or DE, pretrained or random) -> optional
Perceiver -> cross-attention or soft-prompt fusion into a causal LM, trained with one of the paper's
strategies and answering by the same constrained decoding as the TextPrompt baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bench.accounting import (FLOP_SAMPLE, InputTokens, analytic_train_flops, count_parameters, flop_sample,
                              measure_flops)
from bench.context import Budget, TrialContext
from bench.data.windows import Examples
from bench.decoding import candidate_trie, decode_answers, gather_predictions
from bench.encoders import EncoderConfig
from bench.evaluation import Predictions
from bench.features import FeatureSpace, event_batch
from bench.llm import EMBEDDED, attention_projection_names, check_llm_name, llm_layer_count, load_llm
from bench.lm_inputs import encode_prompts, lm_batch
from bench.prompts import answer_texts, history_prompt, task_question
from bench.registry import Method, register_method
from bench.precision import autocast, fp32_trainables, llm_storage_dtype
from bench.training import train
from userllm.encoders import build_user_encoder, pretrained_encoder
from userllm.fusion import CrossAttentionFusion, SoftPromptFusion, condition_lm, decoder_layers
from userllm.model import UserLLMModel, apply_strategy
from userllm.perceiver import PerceiverResampler


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
        beams: int = 10
        max_new_tokens: int = 48  # review_gen

        def __post_init__(self) -> None:
            check_llm_name(self.llm)
            self.encoder_config(0)
            checks = {"perceiver_latents": 1, "perceiver_layers": 1, "xattn_every": 1, "xattn_ffn_mult": 1,
                      "task_prompt": 0, "short_context": 0, "lora_rank": 1,
                      "pretrain_steps": 1, "pretrain_batch_size": 1, "beams": 1, "max_new_tokens": 1}
            if self.user_embeddings is not None:
                checks["user_embeddings"] = 1
            for name, low in checks.items():
                if getattr(self, name) < low:
                    raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
            for name in ("pretrain_lr", "llm_lr", "encoder_lr", "gate_lr"):
                if getattr(self, name) is not None and getattr(self, name) <= 0:
                    raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
            if self.fusion == "cross_attention" and self.xattn_every > llm_layer_count(self.llm):
                raise ValueError(f"xattn_every={self.xattn_every} is larger than the LLM's "
                                 f"{llm_layer_count(self.llm)} decoder layers")

        def kept_embeddings(self, seq_len: int) -> int:
            """How many of the encoder's last outputs the LLM (or the Perceiver) sees."""
            return min(self.user_embeddings or (seq_len if self.encoder == "ar" else 1), seq_len)

        def encoder_config(self, seq_len: int) -> EncoderConfig:
            return EncoderConfig(self.encoder_layers, self.encoder_dim, self.encoder_heads, self.encoder_dropout,
                                 max_len=max(512, seq_len + 1))

    def _prompts(self, ctx: TrialContext, examples: Examples, index: np.ndarray) -> list[str]:
        events = min(self.params.short_context, ctx.seq_len)
        if events:
            return [history_prompt(ctx.dataset, examples, int(i), ctx.task.name, events) for i in index]
        return [task_question(ctx.dataset, int(label), ctx.task.name) for label in examples.label_positions[index]]

    def _build(self, ctx: TrialContext) -> UserLLMModel:
        p = self.params
        lm, self.tokenizer = load_llm(p.llm, ctx.shared_cache, ctx.device, llm_storage_dtype(ctx, p.strategy == "full"))
        if p.strategy == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(r=p.lora_rank, lora_alpha=2 * p.lora_rank, lora_dropout=0.05,
                                target_modules=attention_projection_names(lm))
            lm = inject_adapter_in_model(config, lm)
        self.llm_params = count_parameters([lm])[0]  # the LLM with its LoRA adapters, before the fusion
        config = p.encoder_config(ctx.seq_len)
        encoder = build_user_encoder(p.encoder, FeatureSpace.of(ctx.dataset), config)
        self.pretraining: dict = {"encoder_pretrained": p.pretrained}
        if p.pretrained:
            budget = Budget(steps=p.pretrain_steps, batch_size=p.pretrain_batch_size, lr=p.pretrain_lr,
                            weight_decay=p.pretrain_weight_decay)
            self.pretraining |= pretrained_encoder(ctx, encoder.to(ctx.device), p.encoder, config, budget)
        perceiver = (PerceiverResampler(config.dim, config.heads, p.perceiver_latents, p.perceiver_layers)
                     if p.perceiver else None)
        kept = p.kept_embeddings(ctx.seq_len)
        self.embedding_tokens = p.perceiver_latents if p.perceiver else kept
        text = lm.config
        if p.fusion == "cross_attention":
            fusion = CrossAttentionFusion(decoder_layers(lm), text.hidden_size, config.dim, text.num_attention_heads,
                                          p.xattn_every, p.xattn_ffn_mult)
        else:
            std = float(lm.get_input_embeddings().weight.detach().float().std())
            fusion = SoftPromptFusion(text.hidden_size, config.dim, self.embedding_tokens, p.task_prompt, std)
        model = UserLLMModel(encoder, kept, perceiver, condition_lm(lm, fusion))
        apply_strategy(model, p.strategy)
        return fp32_trainables(model.to(ctx.device))

    def lm_inputs(self, ctx: TrialContext, examples: Examples, index: np.ndarray, labels: np.ndarray) -> dict:
        """The model's training inputs for the selected examples: prompt + answer tokens (labels on the
        answer) and the users' embeddings."""
        answers = answer_texts(ctx.dataset, ctx.task.name, labels[index])
        tokens = lm_batch(self.tokenizer, self._prompts(ctx, examples, index), answers, ctx.device,
                          slots=self.model.fusion.slots)
        batch = event_batch(ctx.dataset, examples.positions(index)).to(ctx.device)
        return tokens | {"user_states": self.model.user_states(batch)}

    def fit(self, ctx: TrialContext) -> None:
        self.model = self._build(ctx)
        self.trie = candidate_trie(ctx, self.tokenizer)
        examples = ctx.split.train
        labels = ctx.labels(examples)
        self.input_tokens = InputTokens()

        def step_loss(index: np.ndarray) -> torch.Tensor:
            inputs = self.lm_inputs(ctx, examples, index, labels)
            self.input_tokens.add("train", inputs["attention_mask"])
            return self.model.lm(**inputs).loss

        def sample_loss() -> None:
            self.model.lm(**self.lm_inputs(ctx, examples, flop_sample(len(examples), ctx.seed), labels)).loss.backward()

        with autocast(ctx, llm=True):
            self.measured_flops = measure_flops(sample_loss) / min(FLOP_SAMPLE, len(examples))
        self.model.zero_grad(set_to_none=True)
        self.run = train(ctx, self.model, step_loss, len(examples), lr_of=self.learning_rates(ctx),
                         predict=lambda ex: self.predict(ctx, ex), llm=True)

    def learning_rates(self, ctx: TrialContext) -> Callable[[str], float]:
        """Parameter name -> learning rate: ``llm_lr`` for the LLM's own weights (not LoRA adapters),
        ``encoder_lr`` for the user encoder's, ``gate_lr`` for the fusion gates, the budget's for the rest."""
        llm_names = {f"lm.{name}" for name, _ in self.model.llm_named_parameters() if "lora_" not in name}
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
        scores beams renormalized over the trie (``bench.decoding.constrained_beam_search``; the harness uses the
        default, ``benchmarks/beam_scoring.py`` compares the two)."""
        self.model.eval()
        answers = []
        for index in ctx.eval_batches(len(examples), desc="decode"):
            encoded = encode_prompts(self.tokenizer, self._prompts(ctx, examples, index), ctx.device,
                                     slots=self.model.fusion.slots)
            self.input_tokens.add(examples.split, encoded["attention_mask"])
            with autocast(ctx, llm=True):
                states = self.model.user_states(event_batch(ctx.dataset, examples.positions(index)).to(ctx.device))
                answers.append(decode_answers(ctx, examples, index, self.model.lm, self.tokenizer, self.trie,
                                              encoded, self.params.beams, self.params.max_new_tokens,
                                              renormalize, user_states=states))
        return gather_predictions(ctx, answers)

    def accounting(self, ctx: TrialContext) -> dict:
        """Parameters by part; 6ND FLOPs of the LLM side of the forward pass (the LLM with its LoRA
        adapters plus the fusion: cross-attention blocks or soft-prompt projection) over its input
        tokens, with the encoder's (D = N events) and the Perceiver's (D = N inputs + latents) beside."""
        total, trainable = count_parameters([self.model])
        parts = {"encoder": [self.model.encoder], "fusion": [self.model.fusion],
                 "perceiver": [self.model.perceiver] if self.model.perceiver is not None else []}
        train_tokens = self.input_tokens.mean("train")
        facts = {"params_total": total, "params_trainable": trainable, "llm_params": self.llm_params,
                 "llm_input_tokens": self.input_tokens.of("test"), "embedding_tokens": self.embedding_tokens,
                 "train_tokens_mean": train_tokens, "flops_per_train_example_measured": self.measured_flops,
                 **self.run.accounting(), **self.pretraining}
        for name, modules in parts.items():
            facts[f"{name}_params"], facts[f"{name}_params_trainable"] = count_parameters(modules)
        facts["flops_per_train_example_6nd"] = analytic_train_flops(self.llm_params + facts["fusion_params"],
                                                                    train_tokens)
        facts["encoder_flops_per_train_example_6nd"] = analytic_train_flops(facts["encoder_params"], ctx.seq_len)
        if self.model.perceiver is not None:
            facts["perceiver_flops_per_train_example_6nd"] = analytic_train_flops(
                facts["perceiver_params"], self.params.kept_embeddings(ctx.seq_len) + self.params.perceiver_latents)
        if isinstance(self.model.fusion, CrossAttentionFusion):
            facts["gates"] = self.model.fusion.gates()
        return facts
