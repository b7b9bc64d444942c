"""What each method reads and learns from is declared, kept in every record, listed by `bench list`,
and controllable: an encoder with ``features: ids`` reads nothing but item ids."""

from __future__ import annotations

import pytest
import torch

from bench.cli import main
from bench.models.event_encoders import AutoregressiveEncoder, DualEncoder, EncoderConfig
from bench.models.features import EventBatch, FeatureSpace
from bench.registry import INPUTS, build_params, declared_inputs, load_methods


def test_every_built_in_method_declares_known_inputs_and_supervision():
    for name, cls in load_methods().items():
        declared = declared_inputs(cls, build_params(cls, {}, name))
        assert set(declared["reads"]) <= set(INPUTS), name
    methods = load_methods()
    reads = {name: declared_inputs(methods[name], build_params(methods[name], params, name))
             for name, params in [("recbole", {}), ("bert4rec", {}), ("text_prompt", {}), ("popularity", {})]}
    assert reads["recbole"] == {"reads": ["item ids"], "supervision": "last"}
    assert reads["bert4rec"] == {"reads": ["item ids"], "supervision": "masked positions"}
    assert reads["text_prompt"]["reads"] == ["text", "LLM prior"] and reads["popularity"]["reads"] == []
    ids_only = declared_inputs(methods["dual_encoder"], build_params(methods["dual_encoder"],
                                                                     {"features": "ids", "positions": "all"}, "de"))
    assert ids_only == {"reads": ["item ids"], "supervision": "all positions"}
    userllm = declared_inputs(methods["userllm"], build_params(methods["userllm"], {"encoder.features": "ids"}, "u"))
    assert userllm["reads"] == ["item ids", "LLM prior"]


def test_a_method_declaring_an_unknown_input_is_refused_before_any_trial(tmp_path):
    from bench.errors import ConfigError
    from bench.registry import Method
    from bench.suite import load_suite

    class Psychic(Method):
        name = "psychic"
        reads = ("item ids", "the future")

        def fit(self, ctx): ...

        def predict(self, ctx, examples): ...

    with pytest.raises(ConfigError, match=r"method 'psychic' declares inputs \['item ids', 'the future'\]"):
        declared_inputs(Psychic, build_params(Psychic, {}, "psychic"))
    methods = load_methods()
    methods["psychic"] = Psychic
    try:
        suite = tmp_path / "s.yaml"
        suite.write_text("name: s\ndatasets: [ml-100k]\ntasks: [next_item]\nseq_lens: [12]\n"
                         "methods:\n  - {method: psychic}\n")
        with pytest.raises(ConfigError, match=r"s.yaml: .*'the future'"):
            load_suite(suite)
    finally:
        del methods["psychic"]


def test_an_ids_only_encoder_reads_no_category_or_rating(ml100k):
    space = FeatureSpace.of(ml100k)
    items = torch.randint(0, ml100k.n_items, (3, 7))
    ratings, other = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    for features, same in (("ids", True), ("all", False)):
        config = EncoderConfig(1, 16, 2, 0.0, features)
        for encoder in (AutoregressiveEncoder(space, config).eval(), DualEncoder(space, config).eval()):
            one, two = encoder(EventBatch(items, ratings)), encoder(EventBatch(items, other))
            assert torch.equal(one, two) is same, (features, type(encoder).__name__)
    heads = AutoregressiveEncoder(space, EncoderConfig(1, 16, 2, 0.0, "ids")).heads
    assert list(heads) == ["item"]  # it predicts no feature it does not read


def test_bench_list_methods_shows_what_each_reads(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "reads (at defaults)" in out and "learns from" in out
    row = next(line for line in out.splitlines() if line.startswith("text_prompt"))
    assert "text, LLM prior" in row and "label text" in row
