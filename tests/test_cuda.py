"""On a CUDA device only (``pytest -m cuda``; benchmarks/gpu_check.py runs these): a USER-LLM trial trains
and decodes on the GPU in its bf16 dtype, and the record says so."""

from __future__ import annotations

import math

import pytest
import torch

from bench.trial import run_trial

from conftest import fresh_cache
from helpers import userllm_spec

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("fusion", ["cross_attention", "soft_prompt"])
def test_userllm_trains_and_decodes_on_the_gpu(tmp_path, fusion):
    body = run_trial(userllm_spec({"fusion": fusion}), tmp_path / "results", fresh_cache(tmp_path / "cache"))
    assert body["device"] == "cuda" and body["device_name"] == torch.cuda.get_device_name(0)
    assert body["dtype"] == ("bfloat16" if torch.cuda.is_bf16_supported() else "float32")
    assert all(math.isfinite(point["train_loss"]) for point in body["training"]["curve"])
    assert 0.0 <= body["metrics"]["test"]["recall@10"]["mean"] <= 1.0


def test_host_batches_reach_the_gpu_through_pinned_memory():
    from bench.models.features import to_device

    host = torch.arange(12).view(3, 4)
    moved = to_device(host, "cuda")
    torch.cuda.synchronize()
    assert moved.is_cuda and torch.equal(moved.cpu(), host)
    assert to_device(moved, "cuda") is moved
