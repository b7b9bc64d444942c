"""Faulty plugins: an import failure is one error line before anything runs; a method that breaks its
contract (predict returns None or a bare array, accounting a set, fit never returns) fails only its own
trial, with a message naming the method and what it must do; check-leakage reports such a method as
an error, never as a leak."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.errors import ConfigError
from bench.registry import _load_entry_point

from helpers import run_cli, suite_file

FAULTY_MODULES = {
    "missing_dependency": ("import no_such_package_xyz\n", "needs 'no_such_package_xyz', which is not installed"),
    "raises": ("raise RuntimeError('plugin setup failed')\n", "failed to import: RuntimeError: plugin setup failed"),
    "syntax": ("def broken(:\n", "failed to import: SyntaxError: "),
    "bad_params": ("from bench.registry import Method, register_method\n"
                   "@register_method('bad_params_method')\n"
                   "class M(Method):\n"
                   "    class Params:\n"
                   "        size: int = 1\n"
                   "    def fit(self, ctx): pass\n"
                   "    def predict(self, ctx, examples): pass\n",
                   "Params is <class 'plugin_bad_params.M.Params'>; expected a dataclass"),
}


@pytest.mark.parametrize("kind", list(FAULTY_MODULES))
def test_a_plugin_that_fails_to_import_is_one_error_line(tmp_path, monkeypatch, capsys, kind):
    source, expected = FAULTY_MODULES[kind]
    (tmp_path / f"plugin_{kind}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "datasets": ["ml-100k"], "tasks": ["next_item"],
                                     "plugins": [f"plugin_{kind}"], "methods": [{"method": "popularity"}]}))
    assert main(["run", str(suite), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {suite}: plugins: plugin module") and expected in err, err
    assert not (tmp_path / "results").exists()


def test_an_entry_point_that_fails_to_import_names_it():
    entry = importlib.metadata.EntryPoint("broken", "no_such_module_xyz:Method", "userllm_bench.methods")
    with pytest.raises(ConfigError, match=r"entry point broken = no_such_module_xyz:Method .*failed to import: "
                                          r"ModuleNotFoundError"):
        _load_entry_point(entry)
    entry = importlib.metadata.EntryPoint("not_a_method", "json:dumps", "userllm_bench.methods")
    with pytest.raises(ConfigError, match="expected a subclass of bench.registry.Method"):
        _load_entry_point(entry)


def test_methods_that_break_the_contract_fail_alone_with_what_was_expected(tmp_path):
    """One run: predict returning None or a bare array, accounting returning a set, a fit that never
    returns (stopped by its timeout), and a good method that finishes beside them. Quiet: no Ray lines."""
    methods = [{"method": "test_faulty", "label": kind, "params": {"kind": kind}} for kind in ("none", "array", "set")]
    methods += [{"method": "test_faulty", "label": "hang", "params": {"kind": "hang"}, "budget": {"timeout": 5}},
                {"method": "test_constant", "label": "fine"}]
    path = suite_file(tmp_path, methods, name="faulty")
    results = tmp_path / "results"
    out = run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "(raylet)" not in out.stdout + out.stderr and "Traceback" not in out.stdout + out.stderr
    files = (results / "faulty" / "trials").glob("*.json")
    records = {r["spec"]["label"]: r for r in (json.loads(f.read_text()) for f in files)}
    assert records["fine"]["status"] == "ok"
    errors = {label: r["error"]["message"] for label, r in records.items() if r["status"] == "failed"}
    expected_predictions = "expected bench.evaluation.Predictions(scores=..., ranked=... or texts=...)"
    assert errors["none"].startswith("method test_faulty on valid examples")
    assert "predict returned NoneType" in errors["none"]
    assert "predict returned ndarray" in errors["array"] and expected_predictions in errors["array"]
    assert errors["set"] == ("method test_faulty: accounting returned set; expected a dict of names to numbers, "
                             "texts, or lists of numbers (llm_input_tokens)")
    assert records["hang"]["error"]["type"] == "TimedOut"
    assert errors["hang"].startswith("stopped by the harness after ") and "time limit of 5 s" in errors["hang"]
    assert f"[error] hang ml-100k/next_item/N=20 seed=0 [{records['hang']['trial_id']}]" in out.stdout


@pytest.mark.parametrize("kind, expected", [("nan", "scores hold NaN"), ("none", "predict returned NoneType"),
                                            ("fail", "RuntimeError: injected failure")])
def test_check_leakage_reports_a_failing_method_as_an_error_not_a_leak(tmp_path, monkeypatch, capsys, kind, expected):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    method = {"nan": {"method": "test_bad_predictions", "params": {"kind": "nan"}},
              "none": {"method": "test_faulty", "params": {"kind": "none"}},
              "fail": {"method": "test_constant", "params": {"fail": True}}}[kind]
    path = suite_file(tmp_path, [method], name="leak")
    assert main(["check-leakage", method["method"], "--suite", str(path), "--examples", "8"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("[error]") and expected in out and "[LEAK]" not in out, out
    assert "Traceback" not in out


def test_a_timeout_is_checked_and_left_out_of_the_trial_id(tmp_path):
    from bench.context import Budget
    from bench.suite import load_suite
    from bench.trial_lines import trial_timeout

    (spec,) = load_suite(suite_file(tmp_path, [{"method": "popularity"}], plugins=[])).trials
    assert spec.with_budget(timeout=60).trial_id == spec.trial_id
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Budget(timeout=0)
    assert trial_timeout(spec.with_budget(seconds=60)) == 2 * 60 + 1800
    assert trial_timeout(spec.with_budget(seconds=60, timeout=90)) == 90
    assert trial_timeout(spec) is None


def test_check_leakage_refuses_a_history_length_no_user_has_before_fitting(tmp_path, capsys):
    path = suite_file(tmp_path, [{"method": "popularity"}], name="long", plugins=[], seq_lens=[5000])
    assert main(["check-leakage", "popularity", "--suite", str(path)]) == 2
    assert "seq_lens: N=5000 leaves no training example on ml-100k" in capsys.readouterr().err
