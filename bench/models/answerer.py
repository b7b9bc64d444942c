"""The LLM side every LLM method shares: a causal LM (with LoRA adapters where asked), its tokenizer,
the task's candidate trie, the prompt writer, and the decode loop that turns prompts (and whatever else
the model reads, e.g. USER-LLM's user states) into the task's answers. TextPrompt and USER-LLM keep
only what differs: how a user becomes a prompt or a state."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bench.accounting import InputTokens, count_parameters
from bench.context import TrialContext
from bench.data.windows import Examples
from bench.evaluation import Predictions
from bench.models.decoding import candidate_trie, decode_answers, decode_batch_size, gather_predictions
from bench.models.llm import load_llm, with_lora
from bench.models.lm_inputs import answer_loss, encode_prompts, lm_batch
from bench.models.prompts import PromptWriter
from bench.models.training import SummedLoss
from bench.precision import autocast, llm_storage_dtype

ModelInputs = Callable[[np.ndarray], dict[str, torch.Tensor]]  # example index -> extra forward arguments


class LLMAnswerer:
    """``llm`` loaded for ``ctx`` (stored in full precision where its own weights train, ``full_weights``),
    with LoRA adapters of rank ``lora_rank`` on its attention projections where given; prompts with the
    ``prompt_events`` most recent events as text; answers by constrained beam search over the task's
    candidates (``beams``) or free generation (``max_new_tokens``). ``slots``: leading positions a method
    fills with its own embeddings (USER-LLM's soft prompt). Counts the LLM's input tokens by split."""

    def __init__(self, ctx: TrialContext, llm: str, full_weights: bool, lora_rank: int | None, prompt_events: int,
                 beams: int, max_new_tokens: int) -> None:
        self.lm, self.tokenizer = load_llm(llm, ctx.shared_cache, ctx.device, llm_storage_dtype(ctx, full_weights))
        if lora_rank is not None:
            self.lm = with_lora(self.lm, lora_rank)
        self.llm_params = count_parameters([self.lm])[0]  # the LLM with its LoRA adapters
        self.trie = candidate_trie(ctx, self.tokenizer)
        self.prompts = PromptWriter(ctx.dataset, ctx.task, min(prompt_events, ctx.seq_len))
        self.beams, self.max_new_tokens = beams, max_new_tokens
        self.slots = 0
        self.input_tokens = InputTokens()

    def loss(self, ctx: TrialContext, examples: Examples, index: np.ndarray, labels: np.ndarray,
             count: bool = True, model_inputs: ModelInputs | None = None) -> SummedLoss:
        """The answer loss of ``examples[index]`` (``bench.models.lm_inputs.answer_loss``); ``model_inputs``
        adds the batch's extra forward arguments."""
        batch = self.train_batch(ctx, examples, index, labels, count)
        return answer_loss(self.lm, batch | (model_inputs(index) if model_inputs is not None else {}))

    def train_batch(self, ctx: TrialContext, examples: Examples, index: np.ndarray, labels: np.ndarray,
                    count: bool = True) -> dict[str, torch.Tensor]:
        """Prompt + answer tokens of ``examples[index]`` (loss on the answer), counted as training input."""
        answers = ctx.task.answer_texts(ctx.dataset, labels[index])
        inputs = lm_batch(self.tokenizer, self.prompts(ctx.dataset, examples, index), answers, ctx.device,
                          slots=self.slots)
        if count:
            self.input_tokens.add("train", inputs["attention_mask"])
        return inputs

    @torch.no_grad()
    def answer(self, ctx: TrialContext, examples: Examples, model_inputs: ModelInputs | None = None,
               renormalize: bool = False) -> Predictions:
        """The task's answers for ``examples`` in batches that fit memory; ``model_inputs`` adds each batch's
        extra forward arguments; ``renormalize``: see ``bench.models.decoding.constrained_beam_search``."""
        self.lm.eval()
        answers = []
        size = decode_batch_size(ctx, self.lm, self.tokenizer, self.trie, self.prompts, examples, self.beams,
                                 self.max_new_tokens, self.slots)
        for index in ctx.eval_batches(len(examples), size, desc="decode"):
            encoded = encode_prompts(self.tokenizer, self.prompts(ctx.dataset, examples, index), ctx.device,
                                     slots=self.slots)
            self.input_tokens.add(examples.split, encoded["attention_mask"])
            with autocast(ctx, llm=True):
                extra = model_inputs(index) if model_inputs is not None else {}
                answers.append(decode_answers(ctx, examples, index, self.lm, self.tokenizer, self.trie, encoded,
                                              self.beams, self.max_new_tokens, renormalize, **extra))
        return gather_predictions(ctx, answers)
