"""The dtype policy: the LLM's forward and backward in bf16 on a CUDA GPU that supports it, in fp32 on
a CPU without native bf16, and on a CPU with avx512_bf16 or AMX in whichever of the two runs the
trial's step faster there (measured once per machine and configuration, ``bench.dtype_choice``);
``--dtype`` overrides it. Frozen LLM
weights are stored in the trial's dtype; whatever trains (LoRA adapters, fusion blocks, the encoder, an
LLM under strategy full) keeps fp32 weights, and bf16 autocast does the arithmetic. Methods without an
LLM autocast on CUDA only: their small matmuls gain nothing on a CPU."""

from __future__ import annotations

import contextlib
import functools

import torch

from bench.context import TrialContext
from bench.nodes import cpu_flags

DTYPES = {"auto": None, "fp32": "float32", "bf16": "bfloat16"}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (its flags name avx512_bf16 or amx_bf16)."""
    return bool(cpu_flags() & set(CPU_BF16_FLAGS))


def auto_rule(device: str, asked: str, uses_llm: bool) -> tuple[str | None, str]:
    """(torch dtype name, why) for a trial on ``device`` that asked ``asked`` (auto, fp32, bf16); the
    dtype is None where only a measurement can tell (``auto``, an LLM method, a CPU with native bf16)."""
    if asked not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {asked!r}")
    if DTYPES[asked]:
        return DTYPES[asked], f"asked: {asked}"
    if device.startswith("cuda"):
        supported = torch.cuda.is_bf16_supported()
        return ("bfloat16", "a CUDA GPU with bf16") if supported else ("float32", "a CUDA GPU without bf16")
    if not cpu_has_bf16():
        return "float32", f"this CPU has no native bf16 (none of {', '.join(CPU_BF16_FLAGS)}): bf16 is emulated"
    if not uses_llm:
        return "float32", "a method without an LLM computes in fp32 on a CPU"
    return None, f"a CPU with native bf16 ({', '.join(f for f in CPU_BF16_FLAGS if f in cpu_flags())})"


def llm_storage_dtype(ctx: TrialContext, trains_llm: bool) -> str:
    """The dtype to store an LLM's weights in: the trial's when they are frozen, fp32 when they train."""
    return "float32" if trains_llm else ctx.dtype


def compute_dtype(ctx: TrialContext, llm: bool = False) -> str:
    """What a computation runs in: the trial's dtype for an LLM's forward and backward (``llm``; methods
    with ``uses_llm``) on any device, and for the rest (encoders, their pretraining, the baselines) on
    CUDA only; fp32 otherwise."""
    return ctx.dtype if llm or ctx.device == "cuda" else "float32"


def autocast(ctx: TrialContext, llm: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast where ``compute_dtype`` is bf16."""
    if compute_dtype(ctx, llm) == "bfloat16":
        return torch.autocast(ctx.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fp32_trainables(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every trainable parameter in fp32 (the master weights; peft may create LoRA adapters
    in a bf16 base layer's dtype)."""
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    return model
