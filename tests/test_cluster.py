"""A real two-node Ray cluster on this machine: a head started with ``ray start --head`` and a second node
with ``ray start --address`` in its own mount namespace, where the results folder and the cache are empty
tmpfs mounts (as on another host). ``bench run --address`` must keep every record on the driver's side,
and a node lost mid-trial must fail only that trial, which a rerun then completes."""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bench.store import load_records

PLUGINS = Path(__file__).parent / "plugins"
RAY = str(Path(sys.executable).parent / "ray")


def _namespaces_allowed() -> str | None:
    """Why a private mount namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt && umount /mnt"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"this machine does not allow a private mount namespace with a tmpfs " \
                                              f"({probe.stderr.strip() or probe.returncode})"


pytestmark = pytest.mark.skipif(bool(_namespaces_allowed()), reason=str(_namespaces_allowed()))


class Process:
    """A process started in its own session, stopped with its whole group (SIGTERM, then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, **kwargs) -> None:
        self.log = log
        self.popen = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                      start_new_session=True, **kwargs)

    def stop(self, grace: float = 10.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(grace if sig == signal.SIGTERM else 30)
                if sig == signal.SIGTERM:
                    time.sleep(1)  # let the node's children finish their own shutdown
            except subprocess.TimeoutExpired:
                continue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    out = subprocess.run([RAY, "status", "--address", address], env=env, capture_output=True, text=True, timeout=60)
    active = out.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out.stdout else ""
    return sum(1 for line in active.splitlines() if line.strip().startswith("1 node_"))


def _wait_for(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster():
    """(address, base folder, env, second node): the head and the second node, each with one CPU."""
    base = Path(tempfile.mkdtemp(prefix="bm-"))  # short: Ray's socket paths live under it
    results, cache = base / "results", base / "cache"
    results.mkdir()
    cache.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "USERLLM_BENCH_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started: list[Process] = []
    try:
        started.append(Process([RAY, "start", "--head", "--num-cpus", "1", "--port", str(port),
                                "--include-dashboard=false", "--temp-dir", str(base / "ray"), "--block"],
                               env, base / "head.log"))
        _wait_for(lambda: _alive_nodes(address, env) == 1, "the head node")
        join = f"mount -t tmpfs tmpfs {results} && mount -t tmpfs tmpfs {cache} && " \
               f"exec {RAY} start --address {address} --num-cpus 1 --block"
        started.append(Process(["unshare", "-m", "--propagation", "private", "sh", "-c", join], env,
                               base / "second.log"))
        _wait_for(lambda: _alive_nodes(address, env) == 2, "the second node")
        yield address, base, env, started[1]
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)


def _suite(base: Path, name: str, **fields) -> Path:
    suite = {"name": name, "datasets": ["ml-100k"], "seq_lens": [20], "budget": {"steps": 1},
             "resources": {"cpu": 1, "gpu": 0}, **fields}
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _bench(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return lines


def test_two_node_cluster_keeps_every_record_and_a_lost_node_fails_only_its_trial(cluster):
    address, base, env, second = cluster
    results = base / "results"
    args = ["--address", address, "--results", str(results), "--no-progress"]

    popularity = _suite(base, "pop", tasks=["next_item", "fav_category"], seeds=[0, 1, 2],
                        methods=[{"method": "popularity"}])
    run = _bench(["run", str(popularity), *args], env, base)
    out, _ = run.communicate(timeout=400)
    assert run.returncode == 0, out
    assert "cluster: 2 node(s), 2 CPU(s), 0 GPU(s)" in out and "up to 2 trial(s) at once" in out
    records = load_records(results, ["pop"])
    assert len(records) == 6 and all(r["status"] == "ok" for r in records), out
    per_node = Counter(r["machine"]["ray_node"] for r in records)
    assert len(per_node) == 2, f"both nodes should have run trials: {per_node}"
    print(f"trials per node: {sorted(per_node.values())}; records on the driver: {len(records)} of 6")
    assert "WARNING" not in out and "TensorBoard" not in out, out  # quiet by default

    sleepers = _suite(base, "lost", tasks=["next_item"], plugins=["bench_test_methods"],
                      methods=[{"method": "test_constant", "grid": {"seconds": [8.0, 8.5]}}])
    run = _bench(["run", str(sleepers), *args], env, base)
    lines, starts = _lines(run), 0
    deadline = time.time() + 120
    while starts < 2 and time.time() < deadline:  # one trial per node: each has one CPU
        try:
            starts += lines.get(timeout=5).startswith("[start]")
        except queue.Empty:
            pass
    assert starts == 2, "both trials should have started"
    time.sleep(3)  # the trial on the second node is starting or sleeping in fit
    second.stop()
    assert run.wait(timeout=300) == 1
    time.sleep(1)  # the reader thread drains the last lines
    out = "".join(lines.queue)
    records = {r["trial_id"]: r for r in load_records(results, ["lost"])}
    assert sorted(r["status"] for r in records.values()) == ["failed", "ok"], out
    (failed,) = [r for r in records.values() if r["status"] == "failed"]
    assert failed["error"]["type"] == "WorkerDied" and "the trial's worker died" in failed["error"]["message"]

    rerun = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(sleepers), *args], env=env, cwd=base,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "ran 1 trial(s); 1 already had a finished record" in rerun.stdout
    assert all(r["status"] == "ok" for r in load_records(results, ["lost"]))
