"""The catalog-knowledge probe (``bench probe-knowledge``): its scoring, its references, its command and
the report lines beside the rows that read an LLM's prior."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from bench.cli import main
from bench.knowledge import prior_lines
from bench.models import knowledge
from bench.models.llm import TINY, load_llm

from conftest import fresh_cache


def test_padded_batches_score_each_continuation_as_it_scores_alone(tmp_path):
    model, tokenizer = load_llm(TINY, fresh_cache(tmp_path / "cache"))
    prompts = ["Title: Toy Story (1995)\nGenre:", "Title: A\nGenre:", "Which of these two titles is more popular?"]
    continuations = [" Animation", " Film-Noir", " B"]
    batched = knowledge.continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=3)
    for prompt, continuation, score in zip(prompts, continuations, batched, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0], dim=-1)
        alone = sum(float(logprobs[len(p) - 1 + j, token]) for j, token in enumerate(c))
        assert abs(score - alone) < 1e-4


def test_pairs_put_the_more_rated_title_first_and_differ_twofold(ml100k):
    pairs = knowledge.sample_pairs(ml100k, 50, np.random.default_rng(0))
    ratings = np.bincount(ml100k.item, minlength=ml100k.n_items)
    assert pairs.shape == (50, 2) and (pairs[:, 0] != pairs[:, 1]).all()
    assert (ratings[pairs[:, 0]] >= knowledge.POPULARITY_RATIO * ratings[pairs[:, 1]]).all()


def test_the_genre_probe_credits_knowledge_and_gives_a_constant_answer_the_priors_score(ml100k, monkeypatch):
    items = np.arange(0, 400, 4)
    ptr, ids = ml100k.item_categories
    first_genre = ids[ptr[items]]

    def knows(model, tokenizer, prompts, continuations, batch_size=64):  # the true first genre scores highest
        if len(prompts) == len(ml100k.categories):  # the calibration prompt: no preference
            return np.zeros(len(prompts))
        scores = np.zeros((len(items), len(ml100k.categories)))
        scores[np.arange(len(items)), first_genre] = 1.0
        return scores.ravel()

    monkeypatch.setattr(knowledge, "continuation_logprobs", knows)
    raw, calibrated = (row.to_dict() for row in knowledge.genre_probes(None, None, ml100k, items))
    assert raw["accuracy"] == calibrated["accuracy"] == 1.0 and raw["diff"] > 0.4 and raw["p"] < 1e-6

    drama = list(ml100k.categories).index("Drama")
    monkeypatch.setattr(knowledge, "continuation_logprobs",  # always "Drama": exactly the prior, nothing more
                        lambda m, t, prompts, continuations, batch_size=64: np.tile(
                            np.eye(len(ml100k.categories))[drama], len(prompts) // len(ml100k.categories)))
    raw = knowledge.genre_probes(None, None, ml100k, items)[0].to_dict()
    assert "Drama" in raw["reference"] and raw["diff"] == 0.0 and raw["accuracy"] == raw["reference_accuracy"]


def test_the_command_keeps_its_figures_and_the_report_shows_them_beside_the_llm_rows(tmp_path, capsys):
    results = tmp_path / "results"
    args = ["probe-knowledge", "--llm", TINY, "--items", "6", "--pairs", "5", "--results", str(results),
            "--cache", str(fresh_cache(tmp_path / "cache"))]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "genre prior (always Drama)" in out and "chance: 0.500" in out
    kept = json.loads((results / "knowledge" / f"ml-100k__{TINY}.json").read_text())
    assert [row["n"] for row in kept["rows"]] == [6, 6, 5]
    assert all(0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1 for row in kept["rows"])

    frame = pd.DataFrame({"status": ["ok", "ok", "ok"], "dataset": ["ml-100k"] * 3,
                          "reads": ["item ids, LLM prior", "item ids", "text, LLM prior"],
                          "param.llm": [TINY, None, "/models/other"]})
    lines = prior_lines(frame, results)
    assert len(lines) == 2
    assert lines[0].startswith("LLM prior of /models/other on ml-100k: not measured (bench probe-knowledge")
    assert lines[1].startswith(f"LLM prior of {TINY} on ml-100k, with no user data") and "genre prior" in lines[1]
    assert prior_lines(frame[frame["reads"] == "item ids"], results) == []
