"""TextPrompt and the shared LLM code: tiny random Llama for speed, the real embedded LLM once for
constrained decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.context import Budget
from bench.data import build_split
from bench.errors import ConfigError
from bench.models.decoding import CandidateTrie, constrained_beam_search
from bench.models.llm import load_llm, load_tokenizer
from bench.models.lm_inputs import answer_loss, encode_prompts, lm_batch
from bench.models.training import backward_in_parts
from bench.registry import build_params, load_methods

from conftest import split_of
from helpers import LLM_CACHE
from helpers import fitted_text_prompt as fitted
from helpers import text_prompt_ctx as make_ctx


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random", LLM_CACHE)


@pytest.mark.parametrize("task", ["next_item", "fav_category"])
def test_tiny_text_prompt_predicts_only_real_candidates(ml100k, task):
    method, ctx = fitted(ml100k, task)
    test = split_of(ctx).test.subset(slice(0, 3))
    ranked = method.predict(ctx, test).ranked
    n = ctx.task.n_candidates(ml100k)
    assert ranked.shape == (3, 10)
    valid = ranked[ranked >= 0]
    assert valid.size > 0 and (valid < n).all()
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in ranked)
    if task == "next_item":
        history = ml100k.item[test.positions()]
        assert not any(set(r[r >= 0]) & set(h) for r, h in zip(ranked, history))
    accounting = method.accounting(ctx)
    assert accounting["flops_per_train_example_measured"] > 0 and len(accounting["llm_input_tokens"]) == 3


def test_lora_trains_only_adapters_and_full_trains_everything(ml100k):
    lora, _ = fitted(ml100k, "fav_category", strategy="lora")
    names = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    full, _ = fitted(ml100k, "fav_category", strategy="full")
    assert all(p.requires_grad for p in full.model.parameters())


def test_labels_are_masked_by_length_not_pad_id(tokenizer):
    batch = lm_batch(tokenizer, ["Q: a\nAnswer:", "Q: a much longer question here\nAnswer:"], ["x", "y z"], "cpu")
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos
    for row in range(2):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert labelled[-1] == eos  # the answer's eos is learned although pad == eos
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


@pytest.mark.parametrize(("params", "message"), [
    ({"strategy": "prefix"}, "strategy: got 'prefix'"),
    ({"prompt_events": 0}, "prompt_events must be >= 1"),
    ({"lora_rank": 0}, "lora_rank must be >= 1"),
    ({"llm": "/no/such/model"}, "expected 'smollm2-135m', 'tiny-random' or a local Hugging Face model folder"),
])
def test_bad_text_prompt_params(params, message):
    cls = load_methods()["text_prompt"]
    with pytest.raises(ConfigError, match=message):
        build_params(cls, params, "methods[0].params")


def test_llm_folder_that_is_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    cls = load_methods()["text_prompt"]
    with pytest.raises(ConfigError, match="model_type 'vit' .* is not a causal language model"):
        build_params(cls, {"llm": str(tmp_path)}, "methods[0].params")


def test_catalog_with_an_empty_title_is_refused(tokenizer):
    with pytest.raises(ValueError, match="candidate names must be non-empty; ids \\[1\\]"):
        CandidateTrie(["Toy Story (1995)", " "], tokenizer)


@pytest.mark.slow
def test_real_llm_constrained_decoding_returns_real_titles(ml100k):
    model, tokenizer = load_llm("smollm2-135m", LLM_CACHE)
    trie = CandidateTrie(ml100k.titles, tokenizer)
    prompts = ["User history, oldest first:\nStar Wars (1977) (Action, Adventure) rated 5\nAnswer:",
               "Name a comedy film.\nAnswer:"]
    banned = [[49], []]  # Star Wars' own id (item key 50) may not come back for the first prompt
    from reference_decoding import generate_beam_search

    top = constrained_beam_search(model, tokenizer, encode_prompts(tokenizer, prompts), trie, k=5, beams=6, banned=banned)
    assert (top >= 0).all() and (top < ml100k.n_items).all()
    assert all(len(set(row)) == 5 and not set(row) & set(ban) for row, ban in zip(top, banned))
    reference = generate_beam_search(model, tokenizer, encode_prompts(tokenizer, prompts), trie, k=5, beams=6,
                                     banned=banned)
    assert np.array_equal(top, reference)  # the real LLM's answers are generate's too
    again = constrained_beam_search(model, tokenizer, encode_prompts(tokenizer, prompts), trie, k=5, beams=6, banned=banned)
    assert np.array_equal(top, again)  # deterministic
    with torch.no_grad():
        single = constrained_beam_search(model, tokenizer, encode_prompts(tokenizer, prompts[1:]), trie, k=5, beams=6)
    assert np.array_equal(single[0], top[1])  # batched rows equal single rows


@pytest.mark.parametrize("dataset", ["amazon-2018", "google-local-2021"])
def test_tiny_text_prompt_review_generation(review_sources, dataset):
    from bench.data import load_dataset
    from bench.evaluation import evaluate

    option = {"amazon-2018": "category", "google-local-2021": "state"}[dataset]
    data = load_dataset(dataset, review_sources, **{option: "Tiny"})
    cls = load_methods()["text_prompt"]
    method = cls(build_params(cls, {"llm": "tiny-random", "prompt_events": 2, "max_new_tokens": 4}, "params"))
    ctx = make_ctx(data, "review_gen")
    ctx.train = build_split(data, 3).train
    method.fit(ctx)
    test = split_of(ctx).test.subset(slice(0, 3))
    predictions = method.predict(ctx, test)
    assert len(predictions.texts) == 3
    from bench.evaluation import Predictions

    metrics, _ = evaluate(ctx.scoring, data, test, predictions)
    assert 0 <= metrics["rouge_lsum"]["mean"] < 100
    references = list(data.events["review"].to_numpy()[test.label_positions])
    perfect, _ = evaluate(ctx.scoring, data, test, Predictions(texts=references))
    shifted, _ = evaluate(ctx.scoring, data, test, Predictions(texts=references[1:] + references[:1]))
    assert perfect["rouge_lsum"]["mean"] == 100.0  # each text is scored against its own example's review
    assert shifted["rouge_lsum"]["mean"] < 100.0


def test_trie_never_enters_a_branch_whose_candidates_are_all_banned(ml100k, tokenizer):
    trie = CandidateTrie(["Alpha One", "Alpha Two", "Beta"], tokenizer)
    alpha, beta = (tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("Alpha", "Beta"))
    tables = trie.tables
    bans = tables.banned_below([[0], [0, 1, 1], [0, 1, 2]], 3)
    root = torch.zeros(3, dtype=torch.long)
    mask = tables.mask(root, torch.arange(3), bans, width=len(tokenizer))
    assert mask[0, alpha] == 0 and mask[0, beta] == 0
    assert torch.isneginf(mask[1, alpha]) and mask[1, beta] == 0
    assert torch.isneginf(mask[2]).all()
    assert tables.step(root, torch.tensor([alpha, beta, 0])).tolist()[2] == -1  # token 0 leaves the trie


def test_constrained_search_finds_k_items_outside_a_large_ban(ml100k, tokenizer):
    model, _ = load_llm("tiny-random", LLM_CACHE)
    trie = CandidateTrie(ml100k.titles, tokenizer)
    banned = [list(range(1600))] * 2  # only 82 titles remain
    top = constrained_beam_search(model, tokenizer, encode_prompts(tokenizer, ["Next?\nAnswer:", "Which?\nAnswer:"]),
                                  trie, k=10, beams=10, banned=banned)
    assert (top >= 1600).all() and all(len(set(row)) == 10 for row in top)


@pytest.mark.parametrize("renormalize", [False, True])
def test_constrained_search_with_enough_beams_ranks_every_candidate_by_its_exact_score(ml100k, tokenizer, renormalize):
    model, _ = load_llm("tiny-random", LLM_CACHE)
    names = [ml100k.titles[i] for i in (0, 1, 2, 49, 99, 180)]
    trie = CandidateTrie(names, tokenizer)
    encoded = encode_prompts(tokenizer, ["Next?\nAnswer:"])
    prompt = encoded["input_ids"][0].tolist()
    exact = []
    for ids in tokenizer([" " + name for name in names], add_special_tokens=False)["input_ids"]:
        answer = [*ids, trie.eos]
        with torch.no_grad():
            log_probs = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1:-1].float().log_softmax(-1)
        score = 0.0
        for step, token in enumerate(answer):
            score += float(log_probs[step, token])
            if renormalize:
                branches = [t for t in trie.node(answer[:step]) if isinstance(t, int)]
                score -= float(log_probs[step, branches].logsumexp(0))
        exact.append(score)
    top = constrained_beam_search(model, tokenizer, encoded, trie, k=len(names), beams=8, renormalize=renormalize)
    assert top[0].tolist() == np.argsort(exact)[::-1].tolist()


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("renormalize", [False, True])
def test_batched_search_returns_what_generate_returns_for_text_prompts(ml100k, tokenizer, exclude, renormalize):
    from reference_decoding import generate_beam_search

    model, _ = load_llm("tiny-random", LLM_CACHE)
    trie = CandidateTrie(ml100k.titles, tokenizer)
    prompts = ["Next?\nAnswer:", "The user watched Toy Story, then Heat and Casino.\nNext movie:", "Which?"]
    encoded = encode_prompts(tokenizer, prompts)  # left padded: the prompts differ in length
    banned = [list(range(0, 300)), [], list(range(5, 1600, 3))] if exclude else None
    fast = constrained_beam_search(model, tokenizer, encoded, trie, k=10, beams=10, banned=banned,
                                   renormalize=renormalize)
    reference = generate_beam_search(model, tokenizer, encoded, trie, k=10, beams=10, banned=banned,
                                     renormalize=renormalize)
    assert np.array_equal(fast, reference) and (fast >= 0).all()


def _unpadded_row_losses(lm, tokenizer, prompts, answers) -> list[tuple[float, int]]:
    """(summed answer loss, answer tokens) of each row alone, no padding, the LM head over every position."""
    out = []
    for prompt, answer in zip(prompts, answers):
        row = lm_batch(tokenizer, [prompt], [answer])
        logits = lm(input_ids=row["input_ids"]).logits[0, :-1]
        targets = row["labels"][0, 1:]
        out.append((float(torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")),
                    int((targets != -100).sum())))
    return out


def test_answer_loss_equals_the_full_head_loss_of_each_row_alone(tokenizer):
    """The LM head over the answers' columns only, on a left-padded batch, gives the loss of the whole
    head over each unpadded row, and HF's own loss of the same batch."""
    lm, _ = load_llm("tiny-random", LLM_CACHE)
    prompts = ["Q: a\nAnswer:", "Q: a much longer question here, with many more tokens in it\nAnswer:", "Which?"]
    answers = ["x", "y z and more words", "Heat (1995)"]
    batch = lm_batch(tokenizer, prompts, answers)
    with torch.no_grad():
        ours = answer_loss(lm, batch)
        rows = _unpadded_row_losses(lm, tokenizer, prompts, answers)
        hf = lm(**batch).loss
    assert ours.count == sum(n for _, n in rows)
    assert float(ours.total) == pytest.approx(sum(total for total, _ in rows), rel=1e-5)
    assert float(ours.mean()) == pytest.approx(float(hf), rel=1e-5)


def test_the_lm_head_reads_its_kept_columns_contiguous():
    """A strided slice sent torch's matmul down a batched path over the expanded head weight; the head
    gets its input contiguous, and the kept logits equal the full head's."""
    lm, tokenizer = load_llm("tiny-random", LLM_CACHE)
    seen = []
    lm.get_output_embeddings().register_forward_pre_hook(lambda head, args: seen.append(args[0].is_contiguous()))
    ids = torch.randint(0, len(tokenizer), (3, 9))
    with torch.no_grad():
        kept, full = (lm(input_ids=ids, logits_to_keep=keep).logits for keep in (4, 0))
    assert seen == [True, True]
    assert torch.equal(kept, full[:, -4:])


@pytest.mark.parametrize("strategy", ["lora", "full"])
def test_micro_batches_give_the_same_gradients(ml100k, strategy):
    """A batch of 4 in micro-batches of 1 accumulates the gradients of the whole batch at once (TextPrompt's
    summed answer loss divided once by the batch's answer tokens; dropout off so both see the same net)."""
    method, ctx = fitted(ml100k, "next_item", strategy=strategy)
    method.model.eval()
    trainable = [p for p in method.model.parameters() if p.requires_grad]
    labels, index = ctx.labels(ctx.train), np.arange(4)
    grads, losses = [], []
    for micro in (None, 1):
        method.model.zero_grad(set_to_none=True)
        budget = Budget(steps=1, batch_size=4, micro_batch_size=micro)
        losses.append(backward_in_parts(lambda part: method.llm.loss(ctx, ctx.train, part, labels, count=False),
                                        index, budget, trainable))
        grads.append([p.grad.clone() for p in trainable])
    assert float(losses[0]) == pytest.approx(float(losses[1]), rel=1e-5)
    assert any(g.abs().sum() > 0 for g in grads[0])
    for whole, parts in zip(*grads):
        torch.testing.assert_close(whole, parts, rtol=1e-4, atol=1e-7)


def test_checkpointing_trains_the_same_weights(ml100k):
    weights = []
    for checkpointing in (False, True):
        cls = load_methods()["text_prompt"]
        method = cls(build_params(cls, {"llm": "tiny-random", "prompt_events": 3, "strategy": "full"}, "params"))
        ctx = make_ctx(ml100k, "next_item", steps=2)
        ctx.budget = Budget(steps=2, batch_size=2, lr=1e-2, checkpointing=checkpointing)
        torch.manual_seed(0)
        method.fit(ctx)
        weights.append({n: p.detach().clone() for n, p in method.model.named_parameters()})
    assert method.llm.lm.is_activation_checkpointing
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-4, atol=1e-6)
