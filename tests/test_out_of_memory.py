"""A trial Ray's memory monitor stops is recorded once as out of memory, with the memory its worker held,
and never run again; the other trials go on (``bench run`` and ``bench profile``). The monitor's threshold
is set just above what the machine uses now, so the test hog needs only a few GB."""

from __future__ import annotations

import psutil
import pytest

from bench.memory import memory_kill
from bench.store import load_records

from helpers import run_cli, suite_file

HOG_GB = 8.0


def low_memory_threshold(headroom_gb: float = 5.0) -> dict[str, str]:
    """Ray's environment for a memory monitor that stops a worker once the machine uses ``headroom_gb``
    more than now (Ray's own processes and a trial's imports take ~1.5 GB of it; the rest is room for
    whatever else the machine runs meanwhile: a process that grows by more than that stops a trial)."""
    memory = psutil.virtual_memory()
    if memory.available < (HOG_GB + 2) * 1e9:
        pytest.skip(f"needs {HOG_GB + 2:g} GB free, {memory.available / 1e9:.1f} GB are")
    used = memory.total - memory.available
    return {"RAY_memory_usage_threshold": f"{(used + headroom_gb * 1e9) / memory.total:.4f}",
            "RAY_memory_monitor_refresh_ms": "100"}


def hog_suite(tmp_path):
    """Popularity, then the hog, one at a time (2 CPUs a trial)."""
    return suite_file(tmp_path, [{"method": "popularity", "label": "Popularity"},
                                 {"method": "test_memory_hog", "label": "Hog", "params": {"gb": HOG_GB}}],
                      resources={"cpu": 2, "gpu": 0})


def test_a_trial_killed_for_memory_is_recorded_once_and_the_suite_goes_on(tmp_path, monkeypatch):
    for name, value in low_memory_threshold().items():
        monkeypatch.setenv(name, value)
    out = run_cli(["run", str(hog_suite(tmp_path)), "--results", str(tmp_path / "results"), "--no-progress"],
                  tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count("[start] Hog") == 1  # never retried
    records = {r["spec"]["label"]: r for r in load_records(tmp_path / "results", ["t"])}
    assert records["Popularity"]["status"] == "ok"
    hog = records["Hog"]
    assert hog["status"] == "failed" and hog["error"]["type"] == "OutOfMemory", hog["error"]
    assert "out of memory" in hog["error"]["message"] and "not retried" in hog["error"]["message"]
    assert 0.5 < hog["peak_rss_gb"] <= HOG_GB + 1.5


def test_profile_reports_a_trial_killed_for_memory_once(tmp_path, monkeypatch):
    for name, value in low_memory_threshold().items():
        monkeypatch.setenv(name, value)
    out = run_cli(["profile", str(hog_suite(tmp_path)), "--steps", "1", "--examples", "2"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr  # a trial failed
    assert "Popularity" in out.stdout and "Hog" in out.stdout
    assert "FAILED: out of memory" in out.stdout, out.stdout
    assert out.stdout.count("[profile] Hog") == 1


def test_ray_memory_kill_text_is_read():
    text = ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.\n"
            "Memory on the node (IP: 10.0.0.1, ID: ab) was 18.30GB used / 23.59GB limit (0.775893)\n"
            "Selected to kill: (Task: job ID=01, task name=hog, pid=21879, actual memory used=6.06GB, worker ID=e7)")
    kill = memory_kill(text)
    assert (kill.worker_gb, kill.node_used_gb, kill.node_limit_gb) == (6.06, 18.30, 23.59)
    assert "at 6.06 GB (the node at 18.30 of 23.59 GB)" in kill.describe()
    assert memory_kill("RuntimeError: injected failure") is None

