"""A run stopped by SIGTERM or by Ctrl-C (twice): one line, the right exit status, trials that never
started not called failed, nothing of Ray left running, and a rerun that runs exactly what has no
record (kill -9: tests/test_runner.py). One run per results folder at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.lock import results_lock

from helpers import BENCH, PLUGINS, left_running, run_cli, suite_file


@pytest.fixture
def runs():
    """The ``bench run`` processes a test starts; any still running when it ends (a failed assertion
    before its signal) is stopped with SIGTERM, as a user would, then killed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _start(path: Path, results: Path, log: Path, runs: list[subprocess.Popen]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as out:
        runs.append(subprocess.Popen(BENCH + ["run", str(path), "--results", str(results), "--no-progress"],
                                     cwd=path.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True))
    return runs[-1]


def _wait_for(log: Path, text: str, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while log.read_text().count(text) < count:
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.2)
    time.sleep(1.0)  # the started trials are inside fit now


def _records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "sig" / "trials").glob("*.json")}


def test_sigterm_and_ctrl_c_stop_cleanly_and_the_rerun_finishes_the_rest(tmp_path, runs):
    flag = tmp_path / "go"  # the slow trials wait for this file
    path = suite_file(tmp_path, [{"method": "test_constant", "label": "fast", "grid": {"seconds": [0.0, 0.01]}},
                                 {"method": "test_constant", "label": "slow", "params": {"until": str(flag)},
                                  "grid": {"seconds": [0.0, 0.01, 0.02]}}], name="sig")
    results, log = tmp_path / "results", tmp_path / "run.log"

    proc = _start(path, results, log, runs)  # SIGTERM once the fast trials finished and two slow ones run
    _wait_for(log, "[start]", 4, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    text = log.read_text()
    assert "stopped by SIGTERM: 2 trial(s) finished (records kept), 2 stopped while running and 1 not started" in text
    assert "Traceback" not in text and "SIGTERM received" not in text and "(raylet)" not in text, text
    assert left_running(proc.pid) == []
    assert sorted(r["spec"]["label"] for r in _records(results).values()) == ["fast", "fast"]

    proc = _start(path, results, log, runs)  # Ctrl-C, and a second one while it stops
    _wait_for(log, "[start]", 2, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    text = log.read_text()
    assert "stopped by SIGINT: 0 trial(s) finished (records kept), 2 stopped while running and 1 not started" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert left_running(proc.pid) == []
    assert all(r["status"] == "ok" for r in _records(results).values()) and len(_records(results)) == 2

    flag.write_text("")
    damaged = sorted((results / "sig" / "trials").glob("*.json"))[0]
    damaged.write_text('{"status": "ok"}')  # a record run would skip and report refuse, before
    out = run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"[damaged] {damaged} (no trial_id (expected a str)); running the trial again" in out.stdout
    assert "ran 4 trial(s); 1 already had a finished record" in out.stdout
    assert len(_records(results)) == 5 and all(r["status"] == "ok" for r in _records(results).values())


def test_a_second_run_on_the_same_results_folder_is_refused_naming_the_holder(tmp_path, capsys):
    path = suite_file(tmp_path, [{"method": "popularity"}], name="locked", plugins=[])
    results = tmp_path / "results"
    with results_lock(results / "locked"):
        assert main(["run", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"error: {results / 'locked'}: another bench run is using this results folder: PID {os.getpid()} on host " in err
    assert not list((results / "locked").glob("trials/*.json"))


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path, capsys):
    folder = tmp_path / "results" / "s"
    folder.mkdir(parents=True)
    dead = {"pid": 999999, "host": "elsewhere", "started": "2026-01-01T00:00:00+00:00", "command": "bench run s"}
    (folder / ".lock").write_text(json.dumps(dead))
    with results_lock(folder):
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert "took over the lock of a run that is no longer running (PID 999999 on host elsewhere" in capsys.readouterr().out
    assert (folder / ".lock").read_text() == ""


@pytest.mark.parametrize("content, problem", [(b"\xff\xfe", "bytes that are not UTF-8"), (b"[]", "a JSON list"),
                                              (b'{"status": "ok"}', "no trial_id")])
def test_status_calls_a_damaged_record_damaged(tmp_path, capsys, content, problem):
    path = suite_file(tmp_path, [{"method": "popularity"}], name="st", plugins=[])
    from bench.store import record_path
    from bench.suite import load_suite

    (spec,) = load_suite(path).trials
    record = record_path("st", spec.trial_id, tmp_path / "results")
    record.parent.mkdir(parents=True)
    record.write_bytes(content)
    assert main(["status", str(path), "--results", str(tmp_path / "results")]) == 1
    assert "[damaged] popularity" in capsys.readouterr().out
