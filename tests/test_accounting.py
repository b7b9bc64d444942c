"""Accounting and reproducibility: 6ND over the whole LLM side, FLOPs measured on a seeded sample, test-only
LLM input tokens, and the same numbers from the same seed whether or not a pretrained encoder was cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.accounting import flop_sample
from bench.context import Budget
from bench.models.llm import tiny_llama
from bench.suite import load_suite
from bench.tasks import get_task
from bench.trial import run_trial
from userllm.pretraining import checkpoint_path, code_version

from conftest import fresh_cache, split_of
from helpers import fitted_text_prompt, fitted_userllm, userllm_spec


@pytest.fixture(scope="module")
def userllm_body(tmp_path_factory) -> dict:
    cache = fresh_cache(tmp_path_factory.mktemp("acct-cache"))
    return run_trial(userllm_spec({"fusion": "cross_attention"}), tmp_path_factory.mktemp("acct"), cache)


def test_6nd_counts_the_llm_with_the_fusion_blocks_and_reports_the_encoder_beside(userllm_body):
    facts = userllm_body["accounting"]
    assert facts["fusion_params"] > 0
    assert facts["flops_per_train_example_6nd"] == pytest.approx(
        6 * (facts["llm_params"] + facts["fusion_params"]) * facts["train_tokens_mean"])
    assert facts["encoder_flops_per_train_example_6nd"] == pytest.approx(6 * facts["encoder_params"] * 8)


def test_llm_input_tokens_come_from_the_test_prompts_alone(userllm_body):
    facts = userllm_body["accounting"]
    assert len(userllm_body["training"]["curve"]) == 2  # two validation checks decoded 5 prompts each
    assert userllm_body["examples"]["test"][0] == 7
    assert facts["llm_input_tokens_max"] == facts["llm_input_tokens_mean"]  # 7 identical question prompts
    assert facts["llm_input_tokens_mean"] > 5


def test_the_quickstart_gives_its_llm_methods_equal_training_flops():
    """The main job compares USER-LLM and TextPrompt at equal compute (issue #42), not equal examples."""
    trials = [t for t in load_suite(Path(__file__).parents[1] / "suites" / "quickstart.yaml").trials
              if t.method in ("userllm", "text_prompt")]
    assert {t.method for t in trials} == {"userllm", "text_prompt"}
    assert len({t.budget.flops for t in trials}) == 1 and trials[0].budget.flops
    # the step cap never binds first: an LLM training example costs more than 1e10 FLOPs
    assert all(t.budget.steps * t.budget.batch_size * 1e10 > t.budget.flops for t in trials)


def test_flops_are_measured_on_a_seeded_random_sample_of_training_windows():
    assert flop_sample(1000, 3).tolist() == flop_sample(1000, 3).tolist()
    assert flop_sample(1000, 3).tolist() != flop_sample(1000, 4).tolist()
    sample = flop_sample(1000, 3)
    assert len(sample) == 8 and sample.tolist() != list(range(8)) and (np.diff(sample) > 0).all()
    assert flop_sample(3, 0).tolist() == [0, 1, 2]


def test_a_flops_budget_counts_the_encoders_pretraining(tmp_path):
    from userllm.method import fine_tuning_budget

    budget = Budget(steps=100, flops=1e12)
    assert fine_tuning_budget(budget, {"pretrain_flops_measured": 4e11}).flops == pytest.approx(6e11)
    assert fine_tuning_budget(budget, {}) is budget and fine_tuning_budget(Budget(), {"pretrain_flops_measured": 1}).flops is None
    spec = userllm_spec({"fusion": "soft_prompt"}, task="fav_category")
    spec["budget"]["flops"] = 1.0  # less than the pretraining alone
    with pytest.raises(ValueError, match="spent by the encoder's pretraining"):
        run_trial(spec, tmp_path / "a", fresh_cache(tmp_path / "cache"))


def test_same_seed_same_numbers_whether_the_encoder_was_cached_or_not(tmp_path):
    cache = fresh_cache(tmp_path / "cache")
    spec = userllm_spec({"fusion": "soft_prompt", "perceiver": True, "perceiver_layers": 1, "perceiver_latents": 2},
                        task="fav_category")
    miss = run_trial(spec, tmp_path / "a", cache)
    hit = run_trial(spec, tmp_path / "b", cache)
    assert not miss["accounting"]["encoder_cache_hit"] and hit["accounting"]["encoder_cache_hit"]
    assert miss["metrics"] == hit["metrics"] and miss["per_example"]["test"].keys() == hit["per_example"]["test"].keys()
    assert [p["valid"] for p in miss["training"]["curve"]] == [p["valid"] for p in hit["training"]["curve"]]
    assert miss["accounting"]["final_train_loss"] == hit["accounting"]["final_train_loss"]
    # the cached encoder's pretraining is charged to the trial that reuses it, as to the one that made it
    for key in ("pretrain_examples", "pretrain_steps", "pretrain_flops_measured"):
        assert hit["accounting"][key] == miss["accounting"][key] > 0
    facts = hit["accounting"]
    assert facts["total_train_examples"] == facts["train_examples"] + facts["pretrain_examples"]
    assert facts["total_train_flops"] == facts["train_flops_measured"] + facts["pretrain_flops_measured"]


def test_building_the_tiny_llm_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tiny_llama(64, seed=11)
    assert torch.equal(torch.rand(3), expected)


def test_the_encoder_cache_key_includes_the_code_version(ml100k, monkeypatch):
    from bench.context import Budget, TrialContext
    from bench.data import build_split
    from bench.models.event_encoders import EncoderConfig

    task = get_task("next_item")
    ctx = TrialContext(dataset=ml100k, task=task, protocol=task.protocol(), train=build_split(ml100k, 8).train,
                       budget=Budget(), seed=0, shared_cache=Path("/cache"))
    before = checkpoint_path(ctx, "ar", EncoderConfig(), Budget())
    monkeypatch.setattr("userllm.pretraining.code_version", lambda: "another-version")
    assert checkpoint_path(ctx, "ar", EncoderConfig(), Budget()) != before
    assert len(code_version()) == 12


def test_userllm_generates_reviews_scored_by_rouge(tmp_path, review_sources):
    """USER-LLM end to end on review generation (Amazon's format, made by the tests), both fusions."""
    dataset = {"name": "amazon-2018", "path": str(review_sources), "options": {"category": "Tiny"}}
    for fusion in ("cross_attention", "soft_prompt"):
        body = run_trial(userllm_spec({"fusion": fusion, "max_new_tokens": 4}, "review_gen", dataset),
                         tmp_path / fusion, fresh_cache(tmp_path / f"cache-{fusion}"))
        rouge = body["metrics"]["test"]["rouge_lsum"]
        assert 0 <= rouge["mean"] <= 100 and body["examples"]["test"][0] == 7
        assert body["training"]["curve"] and "rouge_lsum" in body["training"]["curve"][-1]["valid"]


@pytest.mark.parametrize(("method", "fusion"), [("text_prompt", None), ("userllm", "cross_attention"),
                                                ("userllm", "soft_prompt")])
def test_input_tokens_are_the_tokenizer_count_of_the_prompts_the_llm_reads(ml100k, tmp_path, monkeypatch, method,
                                                                          fusion):
    """Table 3's token counts: each test example's count is the tokenizer's count of the prompt the method
    built for it (plus a soft prompt's slots), as the LLM received it."""
    import bench.models.answerer as answerer

    if method == "text_prompt":
        fitted_method, ctx = fitted_text_prompt(ml100k, "next_item", prompt_events=6)
    else:
        fitted_method, ctx = fitted_userllm(ml100k, fresh_cache(tmp_path), fusion=fusion)
    seen = []
    encode = answerer.encode_prompts

    def spy(tokenizer, prompts, device="cpu", slots=0):
        encoded = encode(tokenizer, prompts, device, slots)
        seen.append((tokenizer, list(prompts), slots, encoded["attention_mask"].sum(1).tolist()))
        return encoded

    monkeypatch.setattr(answerer, "encode_prompts", spy)
    before = len(fitted_method.accounting(ctx)["llm_input_tokens"])
    fitted_method.predict(ctx, split_of(ctx).test.subset(slice(0, 5)))
    counted = fitted_method.accounting(ctx)["llm_input_tokens"][before:]
    tokenized = [len(tokenizer(prompt)["input_ids"]) + slots for tokenizer, prompts, slots, _ in seen
                 for prompt in prompts]
    received = [n for *_, masks in seen for n in masks]
    assert len(counted) == 5 and counted == tokenized == received
    if method == "text_prompt":
        assert min(counted) > 6 * 5  # six events written out in every prompt
    elif fusion == "soft_prompt":
        assert seen[0][2] > 0  # the slots count
