"""The dtype policy: bf16 for the LLM where the hardware has it, frozen LLM weights stored in bf16 and
everything that trains kept in fp32, --dtype to override, and the dtype a trial computed in recorded."""

from __future__ import annotations

import pytest
import torch

from bench import precision, trial
from bench.dtype_choice import choose_dtype
from bench.errors import ConfigError
from bench.precision import auto_rule
from bench.spec import TrialSpec
from bench.suite import load_suite

from conftest import fresh_cache
from helpers import SUITE_GOOD as GOOD
from helpers import TINY_DUAL_ENCODER, userllm_spec
from helpers import validation_spec as spec
from helpers import write_suite as write


def test_the_rule_decides_all_but_an_llm_on_a_cpu_with_native_bf16(monkeypatch):
    assert auto_rule("cpu", "fp32", True)[0] == "float32" and auto_rule("cpu", "bf16", True)[0] == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    dtype, reason = auto_rule("cpu", "auto", True)
    assert dtype == "float32" and "emulated" in reason
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert auto_rule("cpu", "auto", False)[0] == "float32"
    assert auto_rule("cpu", "auto", True)[0] is None  # measured
    with pytest.raises(ValueError, match="dtype must be one of auto, fp32, bf16, got 'fp16'"):
        auto_rule("cpu", "fp16", True)


@pytest.mark.parametrize(("seconds", "chosen"), [({"bfloat16": 1.0, "float32": 2.0}, "bfloat16"),
                                                  ({"bfloat16": 2.0, "float32": 1.0}, "float32")])
def test_auto_never_picks_the_slower_dtype_and_measures_once(monkeypatch, tmp_path, seconds, chosen):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    trial_spec = TrialSpec.of(userllm_spec({}))
    probed = []

    def probe(dtype):
        probed.append(dtype)
        return seconds[dtype]

    first = choose_dtype(trial_spec, "auto", "cpu", True, probe, tmp_path)
    assert first.dtype == chosen and first.seconds_per_step == seconds and not first.cached
    again = choose_dtype(trial_spec, "auto", "cpu", True, probe, tmp_path)
    assert again.dtype == chosen and again.cached and sorted(probed) == ["bfloat16", "float32"]
    other = TrialSpec.of({**userllm_spec({}), "seq_len": 4})  # another configuration is measured anew
    choose_dtype(other, "auto", "cpu", True, probe, tmp_path)
    assert len(probed) == 4


def test_the_probe_times_the_trials_own_step_and_the_record_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    cache = fresh_cache(tmp_path / "cache")
    body = trial.run_trial(userllm_spec({"strategy": "enc"}, "fav_category"), tmp_path / "r", cache)
    choice = body["dtype_choice"]
    assert set(choice["seconds_per_step"]) == {"bfloat16", "float32"} and all(choice["seconds_per_step"].values())
    assert body["dtype"] == choice["dtype"] == min(choice["seconds_per_step"], key=choice["seconds_per_step"].get)
    assert "measured on this machine" in choice["reason"]
    assert body["accounting"]["train_steps"] == 4  # the probe's steps are not the trial's


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
