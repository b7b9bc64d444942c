"""Memory: how many evaluation examples a method may process at once (as many as fit in a share of the
memory free on its device, up to a cap past which larger batches are no faster, docs/findings.md), the
allocator policy of a training loop, and what Ray says when its memory monitor stops a worker."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MEMORY_SHARE = 0.25  # of the memory free when the batch size is chosen: other trials may share the node


def free_bytes(device: str) -> int:
    """Memory free for a new allocation on ``device``: CUDA's free memory, or on the host the smaller of
    Linux's MemAvailable and what this process's cgroup still allows."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        if "MemAvailable" in fields:
            free = int(fields["MemAvailable"].split()[0]) * 1024
    limit, used = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.exists() and used.exists() and limit.read_text().strip() != "max":
        free = min(free, int(limit.read_text()) - int(used.read_text()))
    return max(free, 0)


def batch_size_for(example_bytes: float, device: str, most: int) -> int:
    """The largest batch of examples costing ``example_bytes`` each that fits in ``MEMORY_SHARE`` of the
    device's free memory, between 1 and ``most``."""
    if example_bytes <= 0:
        raise ValueError(f"example_bytes must be > 0, got {example_bytes}")
    return max(1, min(most, int(MEMORY_SHARE * free_bytes(device) // example_bytes)))


def score_bytes(candidates: int) -> float:
    """Memory one example needs in a method that scores every candidate: its fp32 scores, with room for
    a masked copy and the top-k."""
    return 16.0 * candidates


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (a trial runs in a process of its own)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


MMAP_THRESHOLD = 16 * 1024 * 1024  # 4 MiB cost 21% more time per step, 16 MiB 8% (benchmarks/train_memory.py)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _libc_function(name: str) -> Any:
    """A function of the C library where it is glibc (None elsewhere)."""
    import ctypes
    import ctypes.util

    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold so every allocation above ``threshold`` bytes gets its own mapping,
    returned to the system when freed; True where it took effect (glibc only).

    By default glibc raises the threshold to the size of each large block freed (up to 32 MiB), after
    which such blocks come from the heap, whose free space is fragmented and never returned: a training
    loop that frees a 21 MB logits tensor every step grew ~1 GB every 50 steps (docs/findings.md)."""
    mallopt = _libc_function("mallopt")
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, threshold))


def release_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim): the smaller blocks a training
    step frees leave holes no later step fills exactly, and the heap grew ~0.4 MB a step without this."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


@dataclass(frozen=True)
class MemoryKill:
    """A worker Ray's memory monitor stopped: what it held then, and the node's use against its limit (GB)."""

    worker_gb: float | None
    node_used_gb: float | None
    node_limit_gb: float | None
    pid: int | None = None  # the stopped worker's process id

    def describe(self) -> str:
        held = f" at {self.worker_gb:.2f} GB" if self.worker_gb is not None else ""
        node = (f" (the node at {self.node_used_gb:.2f} of {self.node_limit_gb:.2f} GB)"
                if self.node_used_gb is not None and self.node_limit_gb is not None else "")
        return (f"out of memory: Ray's memory monitor stopped the trial's worker{held}{node}; not retried. "
                "Lower budget.batch_size, set budget.micro_batch_size or budget.checkpointing, or run fewer "
                "trials at once (resources.memory_gb)")


def memory_kill(error_text: str) -> MemoryKill | None:
    """The memory kill Ray's error text reports (its OutOfMemoryError), else None."""
    if "running low on memory" not in error_text and "OutOfMemoryError" not in error_text:
        return None
    worker = re.search(r"memory used=([\d.]+)\s*GB", error_text)
    node = re.search(r"was ([\d.]+)\s*GB used / ([\d.]+)\s*GB limit", error_text)
    pid = re.search(r"Selected to kill:.*?pid=(\d+)", error_text, re.DOTALL)
    return MemoryKill(float(worker.group(1)) if worker else None, float(node.group(1)) if node else None,
                      float(node.group(2)) if node else None, int(pid.group(1)) if pid else None)
