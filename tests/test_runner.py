"""Suites through Ray Tune: records, failures that do not take the suite down, resume after kill -9,
a third-party plugin beside the built-ins in the report."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.store import load_records

from helpers import BENCH, PLUGINS, run_cli, suite_file


def test_failing_trial_is_recorded_and_others_finish(tmp_path):
    path = suite_file(tmp_path, [{"method": "test_constant", "grid": {"fail": [False, True]}},
                                 {"method": "popularity"},
                                 {"method": "test_constant", "label": "Searched", "tasks": ["next_item"],
                                  "search": {"space": {"seconds": {"uniform": [0.0, 0.01]}}, "samples": 2}}],
                      tasks=["next_item", "fav_category"])
    out = run_cli(["run", str(path), "--results", str(tmp_path / "results"), "--no-progress"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 trial(s) failed" in out.stdout
    assert out.stdout.count("[done]") == 8 and "WARNING" not in out.stdout + out.stderr  # quiet: the harness's lines
    records = load_records(tmp_path / "results", ["t"])
    searched = [r for r in records if r["spec"].get("search_group")]
    assert len(searched) == 2 and all(r["status"] == "ok" for r in searched)
    assert len({r["spec"]["params"]["seconds"] for r in searched}) == 2
    records = [r for r in records if not r["spec"].get("search_group")]
    assert sorted(r["status"] for r in records) == ["failed", "failed", "ok", "ok", "ok", "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    assert all("RuntimeError: injected failure" in r["error"]["traceback"] for r in failed)
    ok = [r for r in records if r["status"] == "ok" and r["spec"]["method"] == "popularity"]
    assert {r["spec"]["task"] for r in ok} == {"next_item", "fav_category"}
    assert all("recall@10" in r["metrics"]["test"] and r["versions"]["torch"] for r in ok)
    assert all(r["protocol"]["metric"] == "recall" for r in ok)


def test_rerun_after_kill_9_leaves_nothing_running_and_runs_only_missing_trials(tmp_path):
    from helpers import left_running

    path = suite_file(tmp_path, [{"method": "test_constant", "grid": {"seconds": [0.0, 0.01, 20.0, 20.01]}}])
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(BENCH + ["run", str(path), "--results", str(results), "--no-progress"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((results / "t" / "trials").glob("*.json"))) < 2:
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)  # the run alone: the watcher it started stops Ray and its workers
    proc.wait()
    assert left_running(proc.pid) == []
    finished = {p.stem for p in (results / "t" / "trials").glob("*.json")}
    assert len(finished) == 2, "the two fast trials should have finished before the kill"
    assert not list((results / "t" / "trials").glob("*.tmp"))
    out = run_cli(["run", str(path), "--results", str(results), "--no-progress",
                   "--set", "methods.0.grid.seconds=[0.0, 0.01, 0.02, 0.03]"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ran 2 trial(s); 2 already had a finished record" in out.stdout
    assert len(list((results / "t" / "trials").glob("*.json"))) == 4


def test_example_plugin_runs_through_a_suite_and_is_reported(tmp_path, markov_plugin, capsys):
    path = suite_file(tmp_path, [{"method": "markov", "label": "Markov (plugin)"},
                                 {"method": "popularity", "label": "Popularity"}], name="plug", plugins=[])
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--no-progress"]) == 0
    assert main(["report", "--results", str(results), "--format", "csv"]) == 0
    report = capsys.readouterr().out.split("ran 2 trial(s)")[1]
    assert "Markov (plugin)" in report and "Popularity" in report
    records = {r["spec"]["method"]: r for r in load_records(results)}
    markov, popularity = records["markov"], records["popularity"]
    assert markov["metrics"]["test"]["recall@10"]["mean"] > popularity["metrics"]["test"]["recall@10"]["mean"]
    assert json.dumps(markov["protocol"]) == json.dumps(popularity["protocol"])
    assert markov["test_examples"] == popularity["test_examples"]
    hits = {name: np.array(r["per_example"]["test"]["recall@10"]) for name, r in records.items()}
    assert hits["markov"].mean() == pytest.approx(markov["metrics"]["test"]["recall@10"]["mean"])

    assert main(["report", "--results", str(results), "--versus", "Popularity", "--format", "csv"]) == 0
    versus = pd.read_csv(io.StringIO(capsys.readouterr().out))
    row = versus.set_index("metric").loc["recall@10"]
    assert row["label"] == "Markov (plugin)" and row["n"] == len(hits["markov"])
    assert row["wins"] == int((hits["markov"] > hits["popularity"]).sum())
    assert row["losses"] == int((hits["markov"] < hits["popularity"]).sum())
    assert row["difference [95% CI]"].startswith(f"{hits['markov'].mean() - hits['popularity'].mean():+.4f} [")
    assert main(["report", "--results", str(results), "--versus", "Bert4Rec"]) == 2
    assert "--versus 'Bert4Rec': no finished trial with per-example values has that label" in capsys.readouterr().err


def test_a_worker_killed_by_rays_memory_monitor_fails_only_its_trial(tmp_path, monkeypatch):
    """Tune raises out of the whole experiment when Ray's OOM killer stops a worker (it is not a
    RayActorError); the runner records that trial as failed and runs the rest."""
    from ray.exceptions import OutOfMemoryError

    from bench import runner
    from bench.suite import load_suite

    monkeypatch.syspath_prepend(str(PLUGINS))
    suite = load_suite(suite_file(tmp_path, [{"method": "test_constant", "grid": {"seconds": [0.0, 0.01, 0.02]}}]))
    calls = []

    def fake_tune(trainable, space, run_dir, name, samples=1, search=None, lines=None, **kwargs):
        specs = space["spec"]["grid_search"]
        calls.append([spec["trial_id"] for spec in specs])
        if len(calls) == 1:
            lines.started.add(specs[0]["trial_id"])
            raise RuntimeError("Caught unexpected exception") from OutOfMemoryError("1 worker(s) were killed")

    monkeypatch.setattr(runner, "_tune", fake_tune)
    monkeypatch.setattr(runner, "start_ray", lambda *args: None)
    monkeypatch.setattr(runner, "trial_resources", lambda suite: {"cpu": 1, "gpu": 0})
    monkeypatch.setattr(runner, "cluster_line", lambda resources: "cluster: none (Tune is faked)")
    runner.run_suite(suite, tmp_path / "results", tmp_path / "cache", show_progress=False)
    assert len(calls) == 2 and calls[1] == calls[0][1:]
    records = load_records(tmp_path / "results", ["t"])
    assert [(r["trial_id"], r["status"]) for r in records] == [(calls[0][0], "failed")]
    assert "1 worker(s) were killed" in records[0]["error"]["message"]


def test_profile_measures_every_trial_estimates_the_full_run_and_leaves_nothing_behind(tmp_path, monkeypatch, ml100k):
    import ray

    from bench.data import build_split
    from bench.profile import profile_suite, profile_table
    from bench.suite import load_suite

    monkeypatch.syspath_prepend(str(PLUGINS))
    path = suite_file(tmp_path, [{"method": "dual_encoder", "label": "DualEnc", "budget": {"steps": 200},
                                  "params": {"layers": 1, "dim": 16, "heads": 2}},
                                 {"method": "test_constant", "label": "Sleeper", "params": {"seconds": 0.3}},
                                 {"method": "test_constant", "label": "Broken", "params": {"fail": True}}], name="p")
    ray.shutdown()  # so the profile starts (and must clean up) its own Ray
    ray_temps = set(Path(tempfile.gettempdir()).glob("bench-profile-*"))
    rows = {row["label"]: row for row in profile_suite(load_suite(path), tmp_path / "cache", steps=3, examples=5)}
    assert not ray.is_initialized() and set(Path(tempfile.gettempdir()).glob("bench-profile-*")) == ray_temps

    dual, sleeper = rows["DualEnc"], rows["Sleeper"]
    split = build_split(ml100k, 20)
    evaluated = len(split.valid) + len(split.test)
    assert dual["seconds_per_step"] > 0 and dual["seconds_per_example"] > 0 and dual["peak_rss_gib"] > 0.1
    assert dual["estimated_seconds"] == pytest.approx(
        dual["setup_seconds"] + 200 * dual["seconds_per_step"] + evaluated * dual["seconds_per_example"])
    assert sleeper["estimated_seconds"] >= 0.3  # trains the same for any budget.steps: its whole fit counts
    assert rows["Broken"]["error"] == "RuntimeError: injected failure"
    assert not [p for p in tmp_path.rglob("*.json") if p.stem in {row["trial_id"] for row in rows.values()}]
    table = profile_table(list(rows.values()))
    assert "failed: RuntimeError: injected failure" in table and "for 2 of 3 trials" in table


def test_a_dataset_path_missing_on_the_node_fails_the_trial_naming_node_and_path(tmp_path):
    import platform

    from bench.errors import DataError
    from bench.spec import DatasetRef
    from bench.trial import check_dataset_path

    with pytest.raises(DataError, match=rf"dataset ml-20m: {tmp_path}/gone does not exist on node {platform.node()} "
                                        r"\(Ray node local\); every node that runs trials needs the dataset"):
        check_dataset_path(DatasetRef("ml-20m", str(tmp_path / "gone")))


def test_profile_of_an_llm_trial_gives_tokens_per_second_and_its_share_of_the_measured_matmul_peak(tmp_path):
    from bench.profile import profile_trial
    from bench.spec import TrialSpec

    from conftest import fresh_cache
    from helpers import userllm_spec

    spec = TrialSpec.from_json(userllm_spec({}))
    row = profile_trial(spec, steps=3, examples=3, shared_cache=str(fresh_cache(tmp_path / "cache")))
    assert row["tokens_per_second"] > 0 and row["tflops"] > 0 and 0 < row["of_peak"] < 1.5


def test_a_dead_worker_leaves_finished_trials_alone(tmp_path, capsys):
    """When Ray stops the run (a node out of memory), the trials that finished before keep their records
    and are not reported as errors; only the unfinished one gets a failure record."""
    from bench.store import read_record, record_path, write_json_atomically
    from bench.suite import load_suite
    from bench.trial_lines import record_failure

    path = suite_file(tmp_path, [{"method": "popularity", "label": "A"}, {"method": "cooccurrence", "label": "B"}],
                      name="s", plugins=[])
    done, running = load_suite(path).trials
    stats = {"mean": 0.1, "ci_low": 0.0, "ci_high": 0.2}
    DONE = {"trial_id": done.trial_id, "suite": "s", "spec": done.to_json(), "status": "ok",
            "metrics": {"test": {"recall@10": stats}}, "examples": {"test": [5, 5]}}
    write_json_atomically(record_path("s", done.trial_id, tmp_path), DONE)
    for spec in (done, running):
        record_failure(spec, tmp_path, "WorkerDied", "Ray stopped the trial's worker: out of memory")
    assert read_record(record_path("s", done.trial_id, tmp_path)) == DONE
    assert read_record(record_path("s", running.trial_id, tmp_path))["status"] == "failed"
    printed = capsys.readouterr().out
    assert "[error]" in printed and " B " in printed and " A " not in printed


def test_a_record_made_by_other_sources_is_rerun_unless_kept(tmp_path):
    path = suite_file(tmp_path, [{"method": "test_constant"}], name="stale")
    results = tmp_path / "results"
    assert run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path).returncode == 0
    (record_file,) = (results / "stale" / "trials").glob("*.json")
    record = json.loads(record_file.read_text())
    assert set(record["sources"]) == {"commit", "harness", "method"} and record["peak_rss_gb"] > 0
    record["sources"]["method"] = "other-code"
    record_file.write_text(json.dumps(record))

    kept = run_cli(["run", str(path), "--results", str(results), "--no-progress", "--keep-stale"], tmp_path)
    assert "ran 0 trial(s)" in kept.stdout and "1 finished record(s) were made by other sources: kept" in kept.stdout
    status = run_cli(["status", str(path), "--results", str(results)], tmp_path)
    assert status.returncode == 1 and "[stale] test_constant ml-100k/next_item/N=20" in status.stdout

    rerun = run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path)
    assert "ran 1 trial(s)" in rerun.stdout and "made by other sources: rerun" in rerun.stdout
    assert json.loads(record_file.read_text())["sources"]["method"] != "other-code"
    status = run_cli(["status", str(path), "--results", str(results)], tmp_path)
    assert status.returncode == 0 and "stale: 1 ok" in status.stdout
