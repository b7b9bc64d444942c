"""What batch sizes and torch.compile buy the LLM methods on this machine (ml-100k next item, N=50,
the real SmolLM2-135M, the quickstart's USER-LLM and TP10-LoRA; the encoder is not pretrained, which
changes no cost).

- decode: seconds per validation user (64 for USER-LLM, 16 for TextPrompt) of the harness's constrained beam search at several
  ``eval_batch_size`` values, with the answers checked equal across them;
- train: seconds per training example of one forward + backward at several batch sizes, and the share
  of it spent building the batch's inputs (prompts, tokens, padding; USER-LLM's encoder forward);
- compile: USER-LLM's forward + backward, eager against ``torch.compile`` of its LLM's forward (first-step compile time
  reported apart).

Run by hand, on an otherwise idle machine (about 12 minutes on 2 cores):

    .venv/bin/python benchmarks/llm_batch_sizes.py --part decode train compile
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from next_item_fit import next_item_context, split_of

from bench.registry import Method, build_params, load_methods
from bench.trial import seed_everything

USER_LLM = {"encoder.kind": "ar", "fusion": "cross_attention", "strategy": "enc", "pretrained": False, "encoder.layers": 2,
            "encoder.dim": 64, "encoder.heads": 4, "xattn_every": 4, "user_embeddings": 1, "beams": 10}
TP10 = {"strategy": "lora", "lora_rank": 8, "prompt_events": 10, "beams": 10}


def fitted(name: str, params: dict, ctx) -> Method:
    method_class = load_methods()[name]
    method = method_class(build_params(method_class, params, "params"))
    seed_everything(0)
    method.fit(ctx)
    return method


def inputs_of(name: str, method: Method, ctx) -> Callable[[np.ndarray], dict]:
    """The method's training inputs for training examples ``index``, as its own step builds them."""
    examples = ctx.train
    labels = ctx.labels(examples)
    if name == "userllm":
        return lambda index: method.lm_inputs(ctx, examples, index, labels, count=False)
    return lambda index: method.llm.train_batch(ctx, examples, index, labels, count=False)


def loss_of(name: str, method: Method, ctx) -> Callable[[np.ndarray], torch.Tensor]:
    """The method's training loss on training examples ``index``."""
    inputs, module = inputs_of(name, method, ctx), method.fitted.model.lm if name == "userllm" else method.model
    return lambda index: module(**inputs(index)).loss


def seconds(run: Callable[[], object], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats


def decode(name: str, method: Method, ctx, users: int, sizes: list[int]) -> None:
    valid = split_of(ctx).valid.subset(slice(0, users))
    reference = None
    for size in sizes:
        sized = replace(ctx, budget=replace(ctx.budget, eval_batch_size=size))
        started = time.perf_counter()
        ranked = method.predict(sized, valid).ranked
        spent = time.perf_counter() - started
        same = "reference" if reference is None else f"same answers: {np.array_equal(ranked, reference)}"
        reference = ranked if reference is None else reference
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{name} decode, eval_batch_size {size:3d}: {spent / users:.3f} s per user ({same}; "
              f"peak RSS so far {rss:.1f} GiB)", flush=True)


def train(name: str, method: Method, ctx, sizes: list[int], repeats: int) -> None:
    loss = loss_of(name, method, ctx)
    rng = np.random.default_rng(0)
    for size in sizes:
        index = rng.choice(len(ctx.train), size, replace=False)
        loss(index).backward()  # warm-up
        spent = seconds(lambda: loss(index).backward(), repeats)
        with torch.no_grad():  # USER-LLM's inputs include the encoder's forward
            building = seconds(lambda: inputs_of(name, method, ctx)(index), repeats)
        print(f"{name} train, batch {size:3d}: {spent:.2f} s per step, {spent / size:.3f} s per example; building "
              f"its inputs {1e3 * building:.1f} ms ({100 * building / spent:.2f}% of the step)", flush=True)


def compiled(name: str, method: Method, ctx, repeats: int) -> None:
    loss = loss_of(name, method, ctx)
    index = np.random.default_rng(0).choice(len(ctx.train), ctx.budget.batch_size, replace=False)
    loss(index).backward()
    eager = seconds(lambda: loss(index).backward(), repeats)
    module = method.fitted.model.lm if name == "userllm" else method.model
    forward = module.forward
    module.forward = torch.compile(forward)
    started = time.perf_counter()
    loss(index).backward()
    first = time.perf_counter() - started
    fast = seconds(lambda: loss(index).backward(), repeats)
    module.forward = forward
    print(f"{name} forward + backward at batch {len(index)}: eager {eager:.2f} s, torch.compile {fast:.2f} s "
          f"(first compiled step {first:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=["decode", "train", "compile"], default=["decode"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, params, users, eval_sizes, train_sizes in (("userllm", USER_LLM, 64, [4, 8, 16, 32, 64], [8, 16, 32]),
                                                          ("text_prompt", TP10, 16, [4, 8, 16], [4, 8])):
        ctx = next_item_context(steps=1, eval_batch_size=8)
        method = fitted(name, params, ctx)
        if "decode" in args.part:
            decode(name, method, ctx, users, eval_sizes)
        method_train = method.fitted.model if name == "userllm" else method.model
        method_train.train()
        if "train" in args.part:
            train(name, method, ctx, train_sizes, args.repeats)
        if "compile" in args.part and name == "userllm":  # TextPrompt's step is the same LLM's forward + backward
            compiled(name, method, ctx, args.repeats)


if __name__ == "__main__":
    main()
