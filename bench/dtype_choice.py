"""``--dtype auto`` decided by measurement where a rule cannot decide it.

A rule decides most cases (``bench.precision.auto_rule``): fp32 on a CPU without native bf16 (bf16 is
emulated there, ~1 GFLOP/s), bf16 on a CUDA GPU that supports it, fp32 for methods without an LLM on a
CPU. On a CPU with avx512_bf16 or AMX neither dtype always wins for an LLM method: on 2 AMX cores
USER-LLM's favourite-genre step took 2.94 s in bf16 and 1.47 s in fp32, TP10-LoRA's 9.31 s and 12.8 s
(issue #42). There the trial's own training step is timed in each dtype (a fresh copy of the method fits
``PROBE_STEPS`` steps with no validation), the faster is chosen, and the choice is cached per machine
and configuration in the shared cache, so a configuration is probed once per machine.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.context import TrialContext
from bench.nodes import cpu_flags, cpu_name
from bench.precision import CPU_BF16_FLAGS, auto_rule
from bench.registry import Method
from bench.spec import TrialSpec
from bench.store import write_json_atomically

PROBE_STEPS = 3
CANDIDATES = ("bfloat16", "float32")


@dataclasses.dataclass(frozen=True)
class DtypeChoice:
    """The dtype a trial computes its LLM in, why, and (where measured) each candidate's seconds per step."""

    dtype: str
    reason: str
    seconds_per_step: dict[str, float] | None = None
    cached: bool = False

    def facts(self) -> dict[str, Any]:
        """The choice as a record's ``dtype_choice``."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


Probe = Callable[[str], float]  # dtype -> seconds per training step of the trial in it


def choose_dtype(spec: TrialSpec, asked: str, device: str, uses_llm: bool, probe: Probe,
                 cache: Path) -> DtypeChoice:
    """The trial's dtype: ``asked`` where it is not auto, else the rule's, else the faster of
    ``CANDIDATES`` by ``probe`` (cached under ``cache/dtype`` by machine and configuration)."""
    dtype, reason = auto_rule(device, asked, uses_llm)
    if dtype is not None:
        return DtypeChoice(dtype, reason)
    path = cache / "dtype" / f"{configuration_key(spec)}.json"
    if path.exists():
        seen = json.loads(path.read_text())
        return DtypeChoice(seen["dtype"], seen["reason"], seen["seconds_per_step"], cached=True)
    seconds = {candidate: probe(candidate) for candidate in CANDIDATES}
    fastest = min(seconds, key=seconds.get)
    choice = DtypeChoice(fastest, f"measured on this machine: {reason}; the faster of "
                         + " and ".join(f"{name} {value:.3g} s/step" for name, value in seconds.items()), seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, {**choice.facts(), "machine": cpu_name(), "configuration": _configuration(spec)})
    return choice


def _configuration(spec: TrialSpec) -> dict[str, Any]:
    """What a step's speed depends on: the method and its parameters, the task, data and window, the
    batch shape, the kernels, and the machine's CPU and torch build."""
    import torch

    budget = spec.budget
    flags = sorted(cpu_flags() & {*CPU_BF16_FLAGS, "amx_tile", "avx512f"})
    return {"method": spec.method, "params": spec.params, "task": spec.task, "dataset": spec.dataset.name,
            "seq_len": spec.seq_len, "batch_size": budget.batch_size, "micro_batch_size": budget.micro_batch_size,
            "checkpointing": budget.checkpointing, "kernels": spec.kernels, "cpu": cpu_name(), "flags": flags,
            "torch": torch.__version__}


def configuration_key(spec: TrialSpec) -> str:
    """A short stable hash of ``_configuration(spec)``."""
    text = json.dumps(_configuration(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_probe(method: Method, ctx: TrialContext) -> Probe:
    """Seconds per training step of a fresh copy of ``method`` fitted for ``PROBE_STEPS`` steps in
    the given dtype from ``ctx`` (no validation checks, no wall-clock or FLOP budget), from the method's
    ``train_seconds`` and ``train_steps`` (its fit's wall clock where it reports none). The first step
    also counts FLOPs, in either dtype alike."""

    def probe(dtype: str) -> float:
        import numpy as np
        import torch

        states = random.getstate(), np.random.get_state(), torch.get_rng_state()  # the trial's draws stay its own
        budget = dataclasses.replace(ctx.budget, steps=PROBE_STEPS, seconds=None, flops=None, eval_every=None,
                                     patience=None)
        copy = type(method)(method.params)
        probe_ctx = dataclasses.replace(ctx, dtype=dtype, budget=budget, validation=None,
                                        report=lambda metrics: None, show_progress=False)
        started = time.perf_counter()
        copy.fit(probe_ctx)
        facts = copy.accounting(probe_ctx)
        seconds = facts.get("train_seconds", time.perf_counter() - started) / max(1, facts.get("train_steps", 1))
        del copy
        gc.collect()
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        return seconds

    return probe
