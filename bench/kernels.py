"""Which CPU kernels a trial computes with. Floating-point kernels differ by instruction set (AVX2,
AVX-512, AMX: another blocking, another order of additions, bf16 where the CPU has it), so the same
trial's training trajectory parts between machines.

- ``native`` (the default): every library picks the fastest kernels this CPU has; the dtype policy may
  pick bf16. Numbers can move across CPU kinds (docs/findings.md measures by how much).
- ``reproducible``: every kernel pinned to AVX2 and fp32 (ATen's ``ATEN_CPU_CAPABILITY``, MKL's
  conditional numerical reproducibility ``MKL_CBWR=AVX2,STRICT``, oneDNN's ``ONEDNN_MAX_CPU_ISA``) on one
  thread per trial, so a suite gives bitwise-identical per-example results on any x86 CPU with AVX2.
  The pins are environment variables every Ray worker starts with (``worker_env``); a trial checks that
  it runs under them and its record says so (``facts``).
"""

from __future__ import annotations

import os
from typing import Any

KERNELS = ("native", "reproducible")
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def worker_env(mode: str) -> dict[str, str]:
    """The environment variables Ray's workers start with for a suite of this kernel mode."""
    return dict(PINS) if mode == "reproducible" else {}


def pinned() -> bool:
    """Whether this process runs under every pin of ``reproducible``."""
    return all(os.environ.get(name) == value for name, value in PINS.items())


def enter(mode: str) -> None:
    """In a trial's process: one thread for ``reproducible`` (a reduction split over threads sums in
    another order)."""
    if mode == "reproducible":
        import torch

        torch.set_num_threads(1)


def facts(mode: str) -> dict[str, Any]:
    """What a record keeps: the mode, whether its pins held, the instruction set ATen dispatched to, and
    the threads."""
    import torch

    return {"mode": mode, "pinned": pinned(), "isa": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            **{name.lower(): os.environ[name] for name in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA") if name in os.environ}}
