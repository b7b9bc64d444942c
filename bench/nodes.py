"""What is per node when trials run on a Ray cluster: the node's identity, its cache, where a trial keeps
its working files, and the device a trial computes on.

The driver's results folder is the truth: every record travels back to the driver through Ray. A
worker on another node never assumes the driver's folders (or home) exist there: it keeps its caches
(prepared datasets, the converted LLM, encoder checkpoints) and its trials' working files under its
own cache folder ($USERLLM_BENCH_CACHE, else ~/.cache/userllm-bench), rebuilt there when missing.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from bench.data.cache import cache_root

LOCAL = "local"


def node_id() -> str:
    """The Ray node this process runs on ("local" outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else LOCAL


def trial_files_root(results_root: Path, driver_node: str) -> Path:
    """Where a trial keeps its working files: the driver's results folder on the driver's node, else the
    node's own cache (``<cache>/work``)."""
    return results_root if node_id() == driver_node else cache_root() / "work"


def cpuinfo(field: str) -> str | None:
    """The value of ``field`` ("model name", "flags") for the first CPU in /proc/cpuinfo (None without it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this machine's CPU ("avx2", "amx_bf16", ...; empty without /proc/cpuinfo)."""
    return frozenset((cpuinfo("flags") or "").split())


def cpu_name() -> str:
    """The CPU's model name."""
    return cpuinfo("model name") or platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """The name of the device a trial computes on: the GPU's, else the CPU's."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()
