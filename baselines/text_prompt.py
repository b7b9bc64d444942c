"""TextPrompt baseline (paper section 4.2): the user's recent events written out in the prompt, the LLM
fine-tuned (all weights, or peft LoRA on the attention projections) to answer the task's question.
next_item and fav_category answers are decoded by beam search constrained to the catalog's titles or
the category names; review_gen is free generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bench.accounting import InputTokens, analytic_train_flops, count_parameters, flop_sample, measure_flops
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.models.decoding import candidate_trie, decode_answers, decode_batch_size, gather_predictions
from bench.models.llm import EMBEDDED, attention_projection_names, check_llm_name, load_llm
from bench.models.lm_inputs import encode_prompts, lm_batch
from bench.models.prompts import PromptWriter, answer_texts
from bench.models.training import train
from bench.precision import autocast, fp32_trainables, llm_storage_dtype
from bench.registry import Method, register_method


@register_method("text_prompt")
class TextPrompt(Method):
    tasks = ("next_item", "fav_category", "review_gen")
    uses_llm = True

    @dataclass(frozen=True)
    class Params:
        llm: str = EMBEDDED  # "smollm2-135m", "tiny-random" (tests) or a local HF causal-LM folder
        strategy: Literal["full", "lora"] = "lora"
        lora_rank: int = 8
        prompt_events: int = 10  # TP10 / TP50 of the paper's table 7
        beams: int = 10
        max_new_tokens: int = 48  # review_gen

        def __post_init__(self) -> None:
            check_llm_name(self.llm)
            if self.prompt_events < 1:
                raise ValueError(f"prompt_events must be >= 1, got {self.prompt_events}")
            if self.lora_rank < 1:
                raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
            if self.beams < 1 or self.max_new_tokens < 1:
                raise ValueError("beams and max_new_tokens must be >= 1")

    def fit(self, ctx: TrialContext) -> None:
        p = self.params
        self.model, self.tokenizer = load_llm(p.llm, ctx.shared_cache, ctx.device,
                                              llm_storage_dtype(ctx, p.strategy == "full"))
        if p.strategy == "lora":
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=p.lora_rank, lora_alpha=2 * p.lora_rank, lora_dropout=0.05,
                                target_modules=attention_projection_names(self.model), task_type="CAUSAL_LM")
            self.model = fp32_trainables(get_peft_model(self.model, config))
        self.llm_params = count_parameters([self.model])[0]  # the LLM with its LoRA adapters
        self.trie = candidate_trie(ctx, self.tokenizer)
        self.prompts = PromptWriter(ctx.dataset, ctx.task.name, min(p.prompt_events, ctx.seq_len))
        train_examples = ctx.train
        labels = ctx.labels(train_examples)
        self.input_tokens = InputTokens()

        def batch(index: np.ndarray) -> dict[str, torch.Tensor]:
            answers = answer_texts(ctx.dataset, ctx.task.name, labels[index])
            return lm_batch(self.tokenizer, self.prompts(ctx.dataset, train_examples, index), answers, ctx.device)

        def step_loss(index: np.ndarray) -> torch.Tensor:
            inputs = batch(index)
            self.input_tokens.add("train", inputs["attention_mask"])
            return self.model(**inputs).loss

        sample = flop_sample(len(train_examples), ctx.seed)
        with autocast(ctx, llm=True):
            self.measured_flops = measure_flops(lambda: self.model(**batch(sample)).loss.backward()) / len(sample)
        self.model.zero_grad(set_to_none=True)
        self.run = train(ctx, self.model, step_loss, len(train_examples), predict=lambda ex: self.predict(ctx, ex),
                         llm=True)

    @torch.no_grad()
    def predict(self, ctx: TrialContext, examples: Examples) -> Predictions:
        self.model.eval()
        answers, p = [], self.params
        size = decode_batch_size(ctx, self.model, self.tokenizer, self.trie, self.prompts, examples, p.beams,
                                 p.max_new_tokens)
        for index in ctx.eval_batches(len(examples), size, desc="decode"):
            encoded = encode_prompts(self.tokenizer, self.prompts(ctx.dataset, examples, index), ctx.device)
            self.input_tokens.add(examples.split, encoded["attention_mask"])
            with autocast(ctx, llm=True):
                answers.append(decode_answers(ctx, examples, index, self.model, self.tokenizer, self.trie, encoded,
                                              self.params.beams, self.params.max_new_tokens))
        return gather_predictions(ctx, answers)

    def accounting(self, ctx: TrialContext) -> dict:
        total, trainable = count_parameters([self.model])
        train_tokens = self.input_tokens.mean("train")
        return {"params_total": total, "params_trainable": trainable, "llm_params": self.llm_params,
                "llm_input_tokens": self.input_tokens.of("test"), "train_tokens_mean": train_tokens,
                "flops_per_train_example_6nd": analytic_train_flops(self.llm_params, train_tokens),
                "flops_per_train_example_measured": self.measured_flops, **self.run.accounting()}
