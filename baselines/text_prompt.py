"""TextPrompt baseline (paper section 4.2): the user's recent events written out in the prompt, the LLM
fine-tuned (all weights, or peft LoRA on the attention projections) to answer the task's question.
next_item and fav_category answers are decoded by beam search constrained to the catalog's titles or
the category names; review_gen is free generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.accounting import analytic_train_flops, count_parameters, flop_sample
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.models.answerer import LLMAnswerer
from bench.models.llm import LLMParams
from bench.models.training import measure_train_flops, train
from bench.precision import autocast, fp32_trainables
from bench.registry import Method, register_method


@register_method("text_prompt")
class TextPrompt(Method):
    tasks = ("next_item", "fav_category", "review_gen")
    reads = ("text", "LLM prior")
    supervision = "label text"
    uses_llm = True

    @dataclass(frozen=True)
    class Params(LLMParams):
        strategy: Literal["full", "lora"] = "lora"
        prompt_events: int = 10  # TP10 / TP50 of the paper's table 7

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.prompt_events < 1:
                raise ValueError(f"prompt_events must be >= 1, got {self.prompt_events}")

    def fit(self, ctx: TrialContext) -> None:
        p = self.params
        self.llm = LLMAnswerer(ctx, p.llm, p.strategy == "full", p.lora_rank if p.strategy == "lora" else None,
                               p.prompt_events, p.beams, p.max_new_tokens)
        self.model = fp32_trainables(self.llm.lm)
        train_examples = ctx.train
        labels = ctx.labels(train_examples)

        if ctx.budget.checkpointing:
            self.llm.lm.activation_checkpointing_enable({"use_reentrant": False})
        sample = flop_sample(len(train_examples), ctx.seed)
        self.measured_flops = measure_train_flops(
            lambda index: self.llm.loss(ctx, train_examples, index, labels, count=False), sample, ctx.budget,
            lambda: autocast(ctx, llm=True)) / len(sample)
        self.model.zero_grad(set_to_none=True)
        self.run = train(ctx, self.model, lambda index: self.llm.loss(ctx, train_examples, index, labels),
                         len(train_examples), predict=lambda ex: self.predict(ctx, ex), llm=True)

    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        return self.llm.answer(ctx, examples)

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        train_tokens = self.llm.input_tokens.mean("train")
        return {"params_total": total, "params_trainable": trainable, "llm_params": self.llm.llm_params,
                "llm_input_tokens": self.llm.input_tokens.of("test"), "train_tokens_mean": train_tokens,
                "flops_per_train_example_6nd": analytic_train_flops(self.llm.llm_params, train_tokens),
                "flops_per_train_example_measured": self.measured_flops, **self.run.accounting()}
