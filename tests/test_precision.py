"""The dtype policy: bf16 for the LLM where the hardware has it, frozen LLM weights stored in bf16 and
everything that trains kept in fp32, --dtype to override, and the dtype a trial computed in recorded."""

from __future__ import annotations

import pytest
import torch
from test_suite_validation import GOOD, write
from test_validation import TINY_DUAL_ENCODER, spec

from bench import precision, trial
from bench.errors import ConfigError
from bench.precision import resolve_dtype
from bench.suite import load_suite

from conftest import fresh_cache
from test_accounting import userllm_spec


def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    assert resolve_dtype("cpu", "fp32") == "float32" and resolve_dtype("cpu", "bf16") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_dtype("cpu") == "float32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert resolve_dtype("cpu") == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of auto, fp32, bf16, got 'fp16'"):
        resolve_dtype("cpu", "fp16")


def test_dtype_other_than_auto_is_part_of_the_configuration(tmp_path):
    auto, bf16 = (load_suite(write(tmp_path, GOOD), dtype=d).trials for d in ("auto", "bf16"))
    assert all("dtype" not in t.to_json() for t in auto) and all(t.dtype == "bf16" for t in bf16)
    assert not {t.trial_id for t in auto} & {t.trial_id for t in bf16}
    with pytest.raises(ConfigError, match="--dtype 'fp16': expected one of auto, fp32, bf16"):
        load_suite(write(tmp_path, GOOD), dtype="fp16")


@pytest.mark.parametrize(("strategy", "llm_dtype"), [("enc", torch.bfloat16), ("lora", torch.bfloat16),
                                                     ("full", torch.float32)])
def test_bf16_stores_the_frozen_llm_in_bf16_and_trains_fp32_weights(tmp_path, monkeypatch, strategy, llm_dtype):
    seen = {}
    original = trial.prepare_trial

    def keep(*args, **kwargs):
        prepared = original(*args, **kwargs)
        seen["trial"] = prepared
        return prepared

    monkeypatch.setattr(trial, "prepare_trial", keep)
    body = trial.run_trial({**userllm_spec({"strategy": strategy}), "dtype": "bf16"}, tmp_path / "r",
                           fresh_cache(tmp_path / "cache"))
    assert body["dtype"] == "bfloat16"
    model = seen["trial"].method.fitted.model
    frozen = {p.dtype for name, p in model.lm.named_parameters() if not p.requires_grad}
    trained = {p.dtype for p in model.parameters() if p.requires_grad}
    assert trained == {torch.float32}
    assert frozen <= {llm_dtype} and (strategy == "full" or frozen == {llm_dtype})


def test_a_method_without_an_llm_computes_and_records_fp32_on_a_cpu(tmp_path):
    body = trial.run_trial({**spec("dual_encoder", {"steps": 2}, TINY_DUAL_ENCODER), "dtype": "bf16"}, tmp_path,
                           tmp_path)
    assert body["device"] == "cpu" and body["dtype"] == "float32"


def test_catalog_alignment_trains_in_bf16(tmp_path):
    """Alignment's candidate states (a pseudo-inverse and its backward) are computed in fp32 inside a bf16
    trial; they used to fail its backward with "expected m1 and m2 to have the same dtype"."""
    params = {"strategy": "enc", "user_embeddings": 1, "align_steps": 2, "perceiver": True, "perceiver_layers": 1,
              "perceiver_latents": 2}
    body = trial.run_trial({**userllm_spec(params, "fav_category"), "dtype": "bf16"}, tmp_path / "r",
                           fresh_cache(tmp_path / "cache"))
    assert body["dtype"] == "bfloat16" and body["accounting"]["align_steps"] == 2
