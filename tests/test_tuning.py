"""Tuned suites (``tune:``): every method searched with the same budget on validation, ASHA stopping bad
samples at their validation checks, the best sample trained again on its own seed and tested once;
resume continues a search; only the final trials reach the report."""

from __future__ import annotations

import pytest
import yaml

from bench.errors import ConfigError
from bench.report.paired import versus_rows
from bench.report.terminal import summary_tables
from bench.report.tuning import tuning_rows
from bench.store import load_records, record_path, records_frame
from bench.suite import load_suite

from helpers import run_cli

TUNED = {"name": "tuned", "datasets": ["ml-100k"], "tasks": ["next_item"], "seq_lens": [20], "seeds": [0],
         "budget": {"steps": 6, "batch_size": 32, "eval_every": 1, "max_valid_examples": 40},
         "resources": {"cpu": 1, "gpu": 0},
         "tune": {"samples": 6, "metric": "recall@10", "scheduler": {"grace": 32, "reduction": 3}, "final_seeds": [7]},
         "methods": [{"method": "dual_encoder", "label": "DualEnc", "params": {"layers": 1, "dim": 16, "heads": 2},
                      "search": {"space": {"budget.lr": {"loguniform": [1.0e-6, 3.0e-2]}}}},
                     {"method": "cooccurrence", "label": "Co-occurrence",
                      "search": {"space": {"span": {"choice": [1, 2, 5]}}}},
                     {"method": "popularity", "label": "Popularity"}]}


def write(tmp_path, suite: dict):
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_a_tuned_suite_gives_every_method_the_same_search_budget(tmp_path):
    suite = load_suite(write(tmp_path, TUNED))
    assert [(s.label, x.samples, x.metric, x.scheduler, x.final_seeds) for s, x in suite.searches] == [
        ("DualEnc", 6, "recall@10", (32, 3), (7,)), ("Co-occurrence", 6, "recall@10", (32, 3), (7,))]
    assert all(not s.tested for s, _ in suite.searches) and [t.label for t in suite.trials] == ["Popularity"]
    own = {**TUNED, "methods": [{**TUNED["methods"][0], "search": {**TUNED["methods"][0]["search"], "samples": 9}}]}
    with pytest.raises(ConfigError, match="sets samples; in a tuned suite every method gets the suite's tune.samples"):
        load_suite(write(tmp_path, own))
    with pytest.raises(ConfigError, match=r"tune.scheduler: got grace=0, reduction=3"):
        load_suite(write(tmp_path, {**TUNED, "tune": {**TUNED["tune"], "scheduler": {"grace": 0, "reduction": 3}}}))


def test_the_search_prunes_resumes_and_only_the_retrained_best_is_reported(tmp_path):
    path, results = write(tmp_path, TUNED), tmp_path / "results"
    out = run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    records = load_records(results, ["tuned"])
    samples = [r for r in records if r["spec"].get("tested") is False]
    finals = [r for r in records if r["spec"].get("search_group") and r["spec"].get("tested") is not False]
    # 6 samples of DualEnc's lr; co-occurrence's space has 3 configurations: each once; one final each (seed 7)
    assert len(samples) == 9 and len(finals) == 2
    pruned = [r for r in samples if r["status"] == "pruned"]
    assert pruned and all(r["spec"]["method"] == "dual_encoder" for r in pruned)  # co-occurrence has no checks
    assert all(r["training"]["curve"][-1]["step"] < 6 for r in pruned)
    assert all("test" not in r.get("metrics", {}) for r in samples)  # samples are never tested
    for final in finals:
        group = [r for r in samples if r["spec"]["search_group"] == final["spec"]["search_group"]
                 and r["status"] == "ok"]
        best = max(group, key=lambda r: r["metrics"]["valid"]["recall@10"]["mean"])
        assert final["spec"]["seed"] == 7 and final["metrics"]["test"]["recall@10"]["n"] > 0
        assert final["spec"]["params"] == best["spec"]["params"] and final["spec"]["budget"] == best["spec"]["budget"]

    frame = records_frame(records)
    (title, rows), = summary_tables(frame)
    assert sorted(rows["configuration"]) == ["Co-occurrence", "DualEnc", "Popularity"]  # finals only, one row each
    tuning = tuning_rows(frame).set_index("label")
    assert tuning.loc["DualEnc", "samples"].startswith(f"6 ({len(pruned)} pruned")
    assert tuning.loc["DualEnc", "best configuration"].startswith("lr=")
    assert tuning.loc["Co-occurrence", "samples"] == "3 (0 pruned, 0 failed)"
    # the search's budget in examples, pruned samples' included: at most 6 samples of 6 steps of 32
    seen = int(tuning.loc["DualEnc", "search examples"].replace(",", ""))
    assert 6 * 32 < seen < 6 * 6 * 32 and tuning.loc["Co-occurrence", "search examples"] == "—"
    assert tuning.loc["Co-occurrence", "optimism"] != "—"
    paired = versus_rows(records, "Popularity")  # the untuned trial runs on the final seed: every final pairs
    assert set(paired["label"]) == {"DualEnc", "Co-occurrence"} and not paired.attrs.get("unpaired")

    # resume mid-search: a sample and the final gone; the rest are kept and only those run again
    group = finals[0]["spec"]["search_group"]
    gone = [r for r in samples if r["spec"]["search_group"] == group][:1] + [finals[0]]
    kept = {r["trial_id"]: record_path("tuned", r["trial_id"], results).stat().st_mtime_ns for r in samples
            if r not in gone}
    for r in gone:
        record_path("tuned", r["trial_id"], results).unlink()
    again = run_cli(["run", str(path), "--results", str(results), "--no-progress"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ran 2 trial(s)" in again.stdout  # the sample and the final, not a new search
    assert all(record_path("tuned", i, results).stat().st_mtime_ns == t for i, t in kept.items())
    assert len([r for r in load_records(results, ["tuned"]) if r["spec"].get("search_group") == group]) == (
        len([r for r in samples if r["spec"]["search_group"] == group]) + 1)


def test_what_is_left_is_one_function_of_the_suite_and_its_records(tmp_path):
    from bench.provenance import sources
    from bench.registry import get_method
    from bench.run_plan import plan
    from bench.trial_lines import sampled_spec

    suite = load_suite(write(tmp_path, TUNED))
    (popularity,), ((dual, _), (cooc, _)) = suite.trials, suite.searches
    empty = plan(suite, [])
    assert [s.label for s in empty.pending] == ["Popularity"] and not empty.finals and not empty.done
    assert [(s.label, left) for s, _, left in empty.searches] == [("DualEnc", 6), ("Co-occurrence", 3)]

    def record(spec, status="ok", valid=0.1, made_here=True):
        return {"trial_id": spec.trial_id, "suite": "tuned", "spec": spec.to_json(), "status": status,
                "metrics": {"valid": {"recall@10": {"mean": valid}}},
                "sources": sources(get_method(spec.method)) if made_here else {}}

    spans = [sampled_spec({"spec": cooc.to_json(), "sample": {"span": span}}) for span in (1, 2, 5)]
    records = [record(popularity), record(spans[0], valid=0.1), record(spans[1], valid=0.3), record(spans[2], "failed")]
    left = plan(suite, records)
    assert not left.pending and left.skipped == 1 and left.samples_left(cooc.search_group) == 1 and not left.finals
    records[-1] = record(spans[2], valid=0.2)
    left = plan(suite, records)
    assert left.samples_left(cooc.search_group) == 0 and left.samples_left(dual.search_group) == 6
    (final,) = left.finals  # the best sample by validation, on the final seed
    assert final.seed == 7 and final.params == spans[1].params and final.tested
    assert not plan(suite, [*records, record(final)]).finals
    stale = [record(popularity, made_here=False), *records[1:]]
    assert [s.label for s in plan(suite, stale).pending] == ["Popularity"] and plan(suite, stale).stale
    assert not plan(suite, stale, keep_stale=True).pending
