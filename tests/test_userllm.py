"""USER-LLM on the tiny random Llama: every variant trains and decodes, strategies freeze exactly what
they should, zero gates leave the LM unchanged, decoding with user context is deterministic and
batch-invariant, pretrained encoders are cached, bad configurations fail before training."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from bench.models.decoding import CandidateTrie, constrained_beam_search
from bench.models.features import event_batch
from bench.models.llm import TINY, load_llm
from bench.models.lm_inputs import encode_prompts
from bench.registry import build_params, load_methods, param_defaults
from userllm.fusion import CrossAttentionFusion, SoftPromptFusion, condition_lm, decoder_layers

from conftest import split_of
from helpers import LLM_CACHE
from helpers import fitted_userllm as fitted


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A fresh cache for encoder checkpoints that reuses the converted LLM of the user cache."""
    folder = tmp_path_factory.mktemp("userllm-cache")
    (LLM_CACHE / "llm").mkdir(parents=True, exist_ok=True)
    (folder / "llm").symlink_to(LLM_CACHE / "llm", target_is_directory=True)
    return folder


FACTORS = (("ar", "de"), ("cross_attention", "soft_prompt"), (False, True), ("full", "lora", "enc", "proj"))
# every pair of values of any two factors in 8 variants, not all 32: each strategy once with a binary triple of
# even parity and once with its complement (the 8 triples, so every pair of the binary factors too)
EVEN = [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]
VARIANTS = [(FACTORS[0][e], FACTORS[1][f], FACTORS[2][p], strategy)
            for strategy, triple in zip(FACTORS[3], EVEN) for e, f, p in (triple, tuple(1 - v for v in triple))]


def test_the_variants_cover_every_pair_of_factor_values():
    for i, j in itertools.combinations(range(len(FACTORS)), 2):
        assert {(v[i], v[j]) for v in VARIANTS} == set(itertools.product(FACTORS[i], FACTORS[j]))


@pytest.mark.parametrize(("encoder", "fusion", "perceiver", "strategy"), VARIANTS)
def test_every_variant_trains_freezes_the_right_parameters_and_decodes_catalog_items(
        ml100k, cache, encoder, fusion, perceiver, strategy):
    number = VARIANTS.index((encoder, fusion, perceiver, strategy))
    task = ("next_item", "fav_category")[number % 2]
    method, ctx = fitted(ml100k, cache, task, **{"encoder.kind": encoder}, fusion=fusion, perceiver=perceiver, strategy=strategy,
                         pretrained=number % 4 < 2, short_context=3 * (number % 3 == 0))
    model = method.fitted.model
    llm = dict(model.llm_named_parameters())
    assert all(p.requires_grad == (strategy == "full" or (strategy == "lora" and "lora_" in n)) for n, p in llm.items())
    assert any("lora_" in n for n in llm) == (strategy == "lora")
    assert all(p.requires_grad == (strategy != "proj") for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.fusion.parameters())
    assert not any("lora_" in n for n, _ in model.fusion.named_parameters())
    assert (model.perceiver is not None) == perceiver

    test = split_of(ctx).test.subset(slice(0, 3))
    ranked = method.predict(ctx, test).ranked
    assert ranked.shape == (3, 10)
    valid = ranked[ranked >= 0]
    assert valid.size > 0 and (valid < ctx.task.n_candidates(ml100k)).all()
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in ranked)
    if task == "next_item":
        assert not any(set(r[r >= 0]) & set(h) for r, h in zip(ranked, ml100k.item[test.positions()]))
    facts = method.accounting(ctx)
    assert facts["params_trainable"] < facts["params_total"] or strategy == "full"
    assert facts["embedding_tokens"] == (4 if perceiver else 12 if encoder == "ar" else 1)
    assert len(facts["llm_input_tokens"]) == 3 and facts["flops_per_train_example_measured"] > 0
    assert ("gates" in facts) == (fusion == "cross_attention")


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_llm(TINY, LLM_CACHE)
    return model.eval(), tokenizer


def conditioned(tiny, fusion_kind: str, user_dim: int = 16, user_tokens: int = 5):
    model, tokenizer = tiny
    lm, _ = load_llm(TINY, LLM_CACHE)
    lm.load_state_dict(model.state_dict())
    text = lm.config
    if fusion_kind == "cross_attention":
        fusion = CrossAttentionFusion(decoder_layers(lm), text.hidden_size, user_dim, text.num_attention_heads, 1)
    else:
        fusion = SoftPromptFusion(text.hidden_size, user_dim, user_tokens, 3, 0.02)
    return condition_lm(lm, fusion).eval()


def open_gates(lm):
    """``lm`` with its cross-attention gates (if any) fully open, so the user context steers it."""
    with torch.no_grad():
        for block in getattr(lm.user_fusion, "blocks", {}).values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    return lm


def test_zero_gates_leave_the_language_model_unchanged(tiny):
    base, tokenizer = tiny
    lm = conditioned(tiny, "cross_attention")
    encoded = encode_prompts(tokenizer, ["Which item next?\nAnswer:", "A longer question about genres?\nAnswer:"])
    states = torch.randn(2, 5, 16)
    with torch.no_grad():
        expected = base(**encoded, position_ids=(encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)).logits
        assert torch.equal(lm(**encoded, user_states=states).logits, expected)
        for block in lm.user_fusion.blocks.values():
            block.attn_gate.fill_(0.5)
        assert not torch.allclose(lm(**encoded, user_states=states).logits, expected)


@pytest.mark.parametrize("fusion_kind", ["cross_attention", "soft_prompt"])
def test_generation_with_user_context_is_deterministic_and_batch_invariant(ml100k, tiny, fusion_kind):
    _, tokenizer = tiny
    lm = open_gates(conditioned(tiny, fusion_kind))
    trie = CandidateTrie(ml100k.titles, tokenizer)
    prompts = ["Which item next?\nAnswer:", "Which movie will this user watch after all of these?\nAnswer:",
               "Next?\nAnswer:"]
    states = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0))
    slots = lm.user_fusion.slots

    def top(rows: list[int], user_states: torch.Tensor) -> np.ndarray:
        encoded = encode_prompts(tokenizer, [prompts[r] for r in rows], slots=slots)
        return constrained_beam_search(lm, tokenizer, encoded, trie, k=5, beams=6, user_states=user_states[rows])

    batched = top([0, 1, 2], states)
    assert ((batched >= 0) & (batched < ml100k.n_items)).all()
    assert np.array_equal(batched, top([0, 1, 2], states))
    for row in range(3):
        assert np.array_equal(top([row], states)[0], batched[row])
    assert not np.array_equal(top([0, 1, 2], states * 5), batched)  # the user context steers the answer


def test_pretrained_encoder_is_cached_and_reused(ml100k, cache, tmp_path):
    (tmp_path / "llm").symlink_to(LLM_CACHE / "llm", target_is_directory=True)
    first, _ = fitted(ml100k, tmp_path, "fav_category", pretrained=True, strategy="proj")
    second, _ = fitted(ml100k, tmp_path, "next_item", pretrained=True, strategy="proj")
    random, _ = fitted(ml100k, tmp_path, "next_item", pretrained=False, strategy="proj")
    assert not first.fitted.pretraining["encoder_cache_hit"] and second.fitted.pretraining["encoder_cache_hit"]
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 1
    weights = [m.fitted.model.encoder.tower.embed.item.weight for m in (first, second, random)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_cross_attention_prompt_length_does_not_grow_with_history(ml100k, cache):
    short, ctx_short = fitted(ml100k, cache, "next_item", seq_len=5, strategy="proj")
    long, ctx_long = fitted(ml100k, cache, "next_item", seq_len=30, strategy="proj")
    index = np.arange(2)
    tokens = [len(ids) for m, c in ((short, ctx_short), (long, ctx_long))
              for ids in m.fitted.llm.tokenizer(m.fitted.llm.prompts(c.dataset, split_of(c).test, index))["input_ids"]]
    assert len(set(tokens)) == 1 and tokens[0] <= 32


@pytest.mark.parametrize(("encoder", "kept", "expected"),
                         [("ar", None, 12), ("de", None, 1), ("ar", 3, 3), ("de", 3, 3)])
def test_the_llm_sees_the_encoders_last_k_outputs(ml100k, cache, encoder, kept, expected):
    method, ctx = fitted(ml100k, cache, "fav_category", **{"encoder.kind": encoder}, user_embeddings=kept, strategy="proj")
    batch = event_batch(ml100k, split_of(ctx).test.positions(np.arange(2)))
    model = method.fitted.model.eval()
    states = model.user_states(batch)
    assert states.shape == (2, expected, 16) and method.fitted.embedding_tokens == expected
    assert torch.equal(states, model.encoder(batch)[:, -expected:])


@pytest.mark.parametrize(("params", "message"), [
    ({"encoder.kind": "gru"}, "encoder.kind: got 'gru'; expected one of 'ar', 'de'"),
    ({"encoder": {"kind": "ar", "width": 3}}, "encoder.width: unknown parameter of UserEncoderParams; expected one "
                                              "of: layers, dim, heads, dropout, features, kind"),
    # the spellings before the parameters nested: one error naming the new one
    ({"encoder": "de"}, "encoder: got 'de'; expected a mapping of layers, dim, heads, dropout, features, kind; "
                        "'de' is a value "
                        "of encoder.kind: write encoder: {kind: de}"),
    ({"encoder_layers": 2}, "encoder_layers: renamed; write encoder.layers: 2 (or encoder: {layers: 2})"),
    ({"pretrain_lr": 0.1}, "pretrain_lr: renamed; write pretrain.lr: 0.1 (or pretrain: {lr: 0.1})"),
    ({"pretrain.steps": 0}, "steps must be >= 1, got 0"),
    ({"fusion": "concat"}, "fusion: got 'concat'"),
    ({"strategy": "adapters"}, "strategy: got 'adapters'"),
    ({"perceiver_latents": 0}, "perceiver_latents must be >= 1, got 0"),
    ({"xattn_every": 3}, "xattn_every=3 is larger than the LLM's 2 decoder layers"),
    ({"encoder.dim": 30, "encoder.heads": 8}, "dim divisible by heads"),
    ({"short_context": -1}, "short_context must be >= 0"),
    ({"user_embeddings": 0}, "user_embeddings must be >= 1, got 0"),
])
def test_bad_userllm_params(params, message):
    cls = load_methods()["userllm"]
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_params(cls, {"llm": TINY, **params}, "methods[0].params")


def test_nested_parameters_merge_dotted_keys_and_mappings():
    cls = load_methods()["userllm"]
    params = build_params(cls, {"llm": TINY, "xattn_every": 1, "encoder": {"kind": "de", "layers": 2}, "encoder.dim": 64,
                                "pretrain.steps": 7}, "params")
    assert (params.encoder.kind, params.encoder.layers, params.encoder.dim, params.encoder.heads) == ("de", 2, 64, 8)
    assert (params.pretrain.steps, params.pretrain.lr) == (7, 1e-3)
    assert param_defaults(cls)["encoder.kind"] == "ar" and param_defaults(cls)["pretrain.batch_size"] == 64


def test_userllm_llm_folder_that_is_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    cls = load_methods()["userllm"]
    with pytest.raises(ConfigError, match="model_type 'vit' .* is not a causal language model"):
        build_params(cls, {"llm": str(tmp_path)}, "methods[0].params")


def test_llm_encoder_and_gate_learning_rates_apply_to_their_own_weights_only(ml100k, cache):
    from bench.models.training import make_optimizer

    method, ctx = fitted(ml100k, cache, "fav_category", strategy="full", llm_lr=1e-5, encoder_lr=3e-4,
                         gate_lr=2e-2)
    optimizer = make_optimizer(method.fitted.model, ctx.budget, lr_of=method.learning_rates(ctx))
    by_lr: dict[float, int] = {}
    for group in optimizer.param_groups:
        by_lr[group["lr"]] = by_lr.get(group["lr"], 0) + sum(p.numel() for p in group["params"])
    assert by_lr[1e-5] == sum(p.numel() for _, p in method.fitted.model.llm_named_parameters())
    assert by_lr[3e-4] == sum(p.numel() for p in method.fitted.model.encoder.parameters())
    assert by_lr[2e-2] == 2 * len(method.fitted.model.fusion.blocks)
    assert by_lr[ctx.budget.lr] == sum(p.numel() for p in method.fitted.model.parameters()) - sum(
        by_lr[lr] for lr in (1e-5, 3e-4, 2e-2))


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("fusion_kind", ["cross_attention", "soft_prompt"])
def test_batched_search_returns_what_generate_returns_with_user_context(ml100k, tiny, fusion_kind, exclude):
    from reference_decoding import generate_beam_search

    _, tokenizer = tiny
    lm = open_gates(conditioned(tiny, fusion_kind))
    trie = CandidateTrie(ml100k.titles, tokenizer)
    prompts = ["Which item next?\nAnswer:", "Which movie will this user watch after all of these?\nAnswer:"]
    encoded = encode_prompts(tokenizer, prompts, slots=lm.user_fusion.slots)
    states = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
    banned = [list(range(40)), list(range(100, 900, 2))] if exclude else None
    args = (lm, tokenizer, encoded, trie)
    fast = constrained_beam_search(*args, k=10, beams=10, banned=banned, user_states=states)
    assert np.array_equal(fast, generate_beam_search(*args, k=10, beams=10, banned=banned, user_states=states))


def test_candidate_states_are_read_by_the_encoders_own_head_as_that_candidate(ml100k):
    from bench.models.event_encoders import AutoregressiveEncoder, EncoderConfig
    from bench.models.features import FeatureSpace
    from userllm.alignment import candidate_states

    encoder = AutoregressiveEncoder(FeatureSpace.of(ml100k), EncoderConfig(1, 16, 2, 0.0))
    ids = torch.tensor([0, 5, 1681])
    states = candidate_states(encoder, "item", ids)
    assert states.shape == (3, 16)
    assert torch.allclose(encoder.heads["item"](states), encoder.tower.embed.item.weight[ids], atol=1e-5)
    logits = encoder.feature_logits(states.unsqueeze(1))["item"][:, 0]
    assert torch.allclose(logits, encoder.tower.embed.item.weight[ids] @ encoder.tower.embed.item.weight.T, atol=1e-4)
    categories = candidate_states(encoder, "category", torch.arange(3))
    assert torch.allclose(encoder.heads["category"](categories), encoder.tower.embed.category.weight[:3], atol=1e-5)


@pytest.mark.parametrize("task", ["next_item", "fav_category"])
def test_catalog_alignment_runs_first_and_shares_the_wall_clock(ml100k, cache, task):
    method, ctx = fitted(ml100k, cache, task, strategy="enc", user_embeddings=1, align_steps=3)
    facts = method.accounting(ctx)
    assert facts["align_steps"] == 3 and facts["align_seconds"] > 0 and np.isfinite(facts["align_loss_last"])
    assert facts["train_steps"] == ctx.budget.steps
    assert len(method.fitted.llm.input_tokens.of("align")) == 3 * ctx.budget.batch_size
    with pytest.raises(ConfigError, match="align_steps needs encoder.kind 'ar' and user_embeddings 1"):
        build_params(load_methods()["userllm"], {"llm": TINY, "align_steps": 10}, "methods[0].params")


def test_decoder_layers_come_from_the_architecture_table_or_the_configs_own_path():
    lm, _ = load_llm(TINY, LLM_CACHE)
    assert decoder_layers(lm) is lm.model.layers
    lm.config.model_type = "unheard_of"
    with pytest.raises(ValueError, match="does not know where a 'unheard_of' model .*set config.decoder_layers_attr"):
        decoder_layers(lm)
    lm.config.decoder_layers_attr = "model.layers"
    assert decoder_layers(lm) is lm.model.layers
    lm.config.decoder_layers_attr = "model.norm"
    with pytest.raises(ValueError, match="model.norm is not an nn.ModuleList"):
        decoder_layers(lm)
