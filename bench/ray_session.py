"""The Ray a run uses: a local one (its temp folder under the run's, its processes stopped after) or an
existing cluster (``--address`` / ``RAY_ADDRESS``), checked before it is joined; what each trial asks of
it and the line that says what the cluster runs at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.interrupt import descendants, marked, stop_processes
from bench.kernels import worker_env
from bench.suite import Suite

MAX_SOCKET_DIR = 60  # Ray's unix socket paths must stay under ~107 characters
_local_ray_temp: str | None = None  # the temp folder of the local Ray this process started, if any


def start_ray(run_dir: Path, address: str | None, cpus: int | None, verbose: bool = False,
              cache: Path | None = None, kernels: str = "native") -> bool:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray with its temp folder in ``run_dir``.
    Quiet unless ``verbose``: Ray's and Tune's own banners, warnings and the workers' output (progress
    bars, library warnings) are shown only then. A ``cache``
    given here is every node's cache ($USERLLM_BENCH_CACHE in every worker); ``kernels`` (the suite's
    mode) sets the pins of ``bench.kernels`` in every worker. True when this call
    connected (False: this process had already joined a Ray)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p), **worker_env(kernels)}
    if cache is not None:
        env["USERLLM_BENCH_CACHE"] = os.environ["USERLLM_BENCH_CACHE"] = str(cache.resolve())
    level = "INFO" if verbose else "CRITICAL"
    if not verbose:  # the harness says what happened to each trial itself ([done], [error] lines)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment box, no TensorBoard hint
        logging.getLogger("ray").setLevel(logging.CRITICAL)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # the harness stops the run itself (bench.interrupt)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # records are the results; --log adds loggers
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"  # a tuned search's scheduler reads only check results
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=verbose, logging_level=level)
        if not verbose:
            _ray_messages_to(run_dir / "ray-messages.log")
        return True
    temp = (run_dir / ".ray").resolve()
    if len(str(temp)) > MAX_SOCKET_DIR:
        import tempfile

        temp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        print(f"note: {run_dir}/.ray is too long a path for Ray's sockets; Ray's temp folder is {temp}")
    temp.mkdir(parents=True, exist_ok=True)
    global _local_ray_temp
    _local_ray_temp = str(temp)
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp), runtime_env={"env_vars": env},
             log_to_driver=verbose, configure_logging=True, logging_level=level)
    if not verbose:
        _ray_messages_to(run_dir / "ray-messages.log")
    # stops what this run started if it dies without stopping Ray (kill -9); a session of its own, so a
    # Ctrl-C in the terminal does not reach it
    subprocess.Popen([sys.executable, "-m", "bench.reaper", str(os.getpid()), str(temp)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def _ray_messages_to(log: Path) -> None:
    """Ray's driver prints the errors its raylets publish ("(raylet) A worker died ...") whatever
    ``log_to_driver`` says; quiet runs append them to ``log`` instead (the harness's own [error] line
    says what happened to the trial)."""
    import ray._private.worker as ray_worker

    def to_log(data: dict[str, Any], ignore_prefix: bool) -> None:
        with open(log, "a") as out:
            out.writelines(f"({data.get('pid')}) {line}\n" for line in data.get("lines", []))

    ray_worker.print_to_stdstream = to_log


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must answer before Ray is asked to join it (Ray
    itself waits minutes on a wrong one); "auto" and other forms are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BenchError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); expected the "
                         "address `ray start --head` printed (host:port, or ray://host:10001 for Ray Client)") from None


def check_cache(cache: Path) -> None:
    """``--cache`` must be a folder this machine can write to (every node uses the same path)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"--cache {cache}: cannot write there ({exc.strerror or exc}); expected a writable folder") from None


def trial_resources(suite: Suite) -> dict[str, float]:
    """CPUs, GPUs and host memory (bytes) per trial: the suite's ask, bounded by what the largest node has
    (gpu auto: 1 if any; a fraction such as 0.25 packs trials onto one GPU; no GPU in the cluster: 0).
    Ray packs trials onto a node only while their memory asks fit its memory."""
    import ray

    available = ray.cluster_resources()
    node_memory = max((node["Resources"].get("memory", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    memory = min(suite.resources["memory_gb"] * 2**30, node_memory)
    cpu = min(suite.resources["cpu"], int(available.get("CPU", 1)))
    gpu, gpus = suite.resources["gpu"], available.get("GPU", 0)
    if gpu == "auto":
        gpu = 1 if gpus >= 1 else 0
    elif gpu > gpus:
        gpu = min(int(gpu), int(gpus)) if gpu >= 1 else 0
    return {"cpu": cpu, "gpu": gpu, "memory": memory}


def cluster_line(resources: dict[str, float]) -> str:
    """What the cluster has and how many trials of ``resources`` it runs at once."""
    import math

    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    per_node = [math.floor(node["Resources"].get("CPU", 0) / resources["cpu"]) for node in nodes]
    if resources["gpu"]:
        per_node = [min(n, math.floor(node["Resources"].get("GPU", 0) / resources["gpu"] + 1e-9))
                    for n, node in zip(per_node, nodes)]
    per_node = [min(n, math.floor(node["Resources"].get("memory", 0) / resources["memory"] + 1e-9))
                if resources.get("memory") else n for n, node in zip(per_node, nodes)]
    return (f"cluster: {len(nodes)} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s); each trial takes {resources['cpu']:g} "
            f"CPU(s), {resources['gpu']:g} GPU(s) and {resources.get('memory', 0) / 2**30:.3g} GiB: up to "
            f"{sum(per_node)} trial(s) at once")




def stop_ray(before: set[int]) -> None:
    """Disconnect from Ray; a local Ray is shut down, and every process started since ``before`` (the
    pids of this process's descendants then) or naming the local Ray's temp folder is stopped, workers
    by their process group: nothing of this run is left running. A cluster's own processes are neither."""
    import ray

    processes = [p for p in descendants() if p.pid not in before]
    if ray.is_initialized():
        ray.shutdown()
    marker = [] if _local_ray_temp is None else marked(_local_ray_temp)
    stop_processes([p for p in {*processes, *marker} if p.is_running()])
