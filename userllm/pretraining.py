"""USER-LLM's user encoders (paper section 3.1): the autoregressive encoder (one embedding per event)
or the dual encoder's user tower (one output per event too), built on ``bench.models.event_encoders``, and their
pretraining on the training windows, cached per (dataset, N, encoder config, seed, pretraining budget)
so that every trial that asks for the same pretrained encoder reuses one checkpoint."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.context import Budget, TrialContext
from bench.models.event_encoders import AutoregressiveEncoder, DualEncoder, EncoderConfig, LabelSoftmax
from bench.models.features import FeatureSpace, event_batch
from bench.models.training import TrainRun, train
from bench.validation import Predictor

ENCODERS = ("ar", "de")


def build_user_encoder(kind: str, space: FeatureSpace, config: EncoderConfig) -> nn.Module:
    """An AR encoder, or a dual encoder with a label tower over the next item."""
    if kind == "ar":
        return AutoregressiveEncoder(space, config)
    if kind == "de":
        return DualEncoder(space, config, label="item")
    raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {kind!r}")


@functools.cache
def code_version() -> str:
    """Hash of the source that decides what a pretrained encoder holds (architecture, features, objective,
    training loop), so a changed encoder never loads a checkpoint the old code wrote."""
    import bench.models.event_encoders
    import bench.models.features
    import bench.models.training
    from bench.provenance import hash_files

    modules = (bench.models.event_encoders, bench.models.features, bench.models.training, sys.modules[__name__])
    return hash_files(tuple(Path(module.__file__) for module in modules))


def checkpoint_path(ctx: TrialContext, kind: str, config: EncoderConfig, budget: Budget) -> Path:
    key = json.dumps({"dataset": ctx.dataset.fingerprint, "seq_len": ctx.seq_len, "kind": kind,
                      "config": asdict(config), "seed": ctx.seed, "budget": budget.to_dict(),
                      "code": code_version()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return ctx.shared_cache / "encoders" / f"{ctx.dataset.name}-n{ctx.seq_len}-{kind}-{digest}.pt"


def pretrain(ctx: TrialContext, encoder: nn.Module, budget: Budget, predict: Predictor | None = None) -> TrainRun:
    """Train ``encoder`` alone on the training windows: AR on every next event of the window and its
    label event, DE with a softmax over the next item. ``predict``: validated training (``bench.models.training``)."""
    examples = ctx.train
    if isinstance(encoder, AutoregressiveEncoder):
        def step_loss(index: np.ndarray) -> torch.Tensor:  # each window and its label: N + 1 events
            positions, padding = examples.positions(index, label=True), examples.padding(index, label=True)
            return encoder.loss(event_batch(ctx.dataset, positions, padding).to(ctx.device))
    else:
        labels = torch.from_numpy(ctx.dataset.item[examples.label_positions].astype(np.int64))
        objective = LabelSoftmax(labels, ctx.dataset.n_items, device=ctx.device, generator=ctx.torch_generator())

        def step_loss(index: np.ndarray) -> torch.Tensor:
            batch = event_batch(ctx.dataset, examples.positions(index)).to(ctx.device)
            return objective(encoder, batch, labels[index].to(ctx.device))
    return train(ctx, encoder, step_loss, len(examples), budget=budget, desc="pretrain", predict=predict)


def pretrained_encoder(ctx: TrialContext, encoder: nn.Module, kind: str, config: EncoderConfig,
                       budget: Budget) -> dict:
    """Load ``encoder``'s pretrained weights from the cache, or pretrain and cache them (atomically).
    Returns facts for the trial's accounting: the pretraining's steps, examples, measured FLOPs, seconds
    and final loss, the same on a cache hit (kept beside the checkpoint), so that every trial that uses
    a pretrained encoder is charged its pretraining, as a paper reports it."""
    path = checkpoint_path(ctx, kind, config, budget)
    facts_path = path.with_suffix(".json")
    if path.exists() and facts_path.exists():
        encoder.load_state_dict(torch.load(path, map_location=ctx.device, weights_only=True))
        return {"encoder_checkpoint": str(path), "encoder_cache_hit": True, **json.loads(facts_path.read_text())}
    facts = _pretrain_and_cache(ctx, encoder, budget, path)
    encoder.train()  # as a loaded one is: the same dropout, and RNG draws, in what follows
    return {"encoder_checkpoint": str(path), "encoder_cache_hit": False, **facts}


def _write_atomically(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    os.close(handle)
    write(staging)
    os.replace(staging, path)


def _pretrain_and_cache(ctx: TrialContext, encoder: nn.Module, budget: Budget, path: Path) -> dict:
    """Pretrain ``encoder`` from its own seeded generator; write its facts, then its checkpoint, to the
    cache atomically (a checkpoint is only ever read with its facts)."""
    # its own generator, on the CPU and every GPU: a cache hit leaves the trial's RNG as a miss does
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(ctx.seed)
        run = pretrain(ctx, encoder, budget)
    facts = run.accounting(prefix="pretrain")
    _write_atomically(path.with_suffix(".json"), lambda staging: Path(staging).write_text(json.dumps(facts)))
    _write_atomically(path, lambda staging: torch.save(encoder.state_dict(), staging))
    return facts
