"""Results: one JSON record per trial under results/<suite>/trials/, written atomically, loadable as
one pandas DataFrame."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import ConfigError
from bench.spec import TrialSpec
from bench.tasks import TASKS

RESULTS_ROOT = Path("results")


def suite_dir(suite: str, root: Path = RESULTS_ROOT) -> Path:
    return root / suite


def record_path(suite: str, trial_id: str, root: Path = RESULTS_ROOT) -> Path:
    return suite_dir(suite, root) / "trials" / f"{trial_id}.json"


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out, indent=1, sort_keys=True, default=jsonable)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """``json.dumps``'s default for numpy arrays and scalars and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def record_problem(record: Any, path: Path) -> str | None:
    """Why ``record``, read from ``path``, is not a well-formed trial record (None when it is). The one
    schema ``bench run``, ``status`` and ``report`` share: a record is well-formed or treated as missing."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__} instead of an object"
    for key, kind in (("trial_id", str), ("suite", str), ("spec", dict), ("status", str)):
        if not isinstance(record.get(key), kind):
            return f"no {key} (expected a {kind.__name__})"
    if record["trial_id"] != path.stem:
        return f"trial_id {record['trial_id']!r} is not its file's name"
    try:
        spec = TrialSpec.from_json(record["spec"], "spec")
    except ConfigError as exc:
        return str(exc)
    if record["status"] == "failed":
        return None if isinstance((record.get("error") or {}).get("message"), str) else "a failure without error.message"
    if record["status"] == "pruned":
        return None if (record.get("training") or {}).get("curve") else "a pruned search sample without its curve"
    if record["status"] != "ok":
        return f"status {record['status']!r} (expected ok, failed or pruned)"
    if not spec.tested:
        valid = (record.get("metrics") or {}).get("valid")
        return None if isinstance(valid, dict) and valid else "a finished search sample without validation metrics"
    test = (record.get("metrics") or {}).get("test")
    if not isinstance(test, dict) or not test:
        return "a finished trial without test metrics"
    for name, stats in test.items():
        if not (isinstance(stats, dict) and all(isinstance(stats.get(k), (int, float)) for k in ("mean", "ci_low", "ci_high"))):
            return f"metric test/{name} without mean, ci_low and ci_high"
    counts = (record.get("examples") or {}).get("test")
    if not (isinstance(counts, list) and len(counts) == 2 and all(isinstance(n, int) for n in counts)):
        return "no examples.test [used, total]"
    return None


def read_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None) when ``path`` holds a well-formed one; (None, why not) when it holds something
    else; (None, None) when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"bytes that are not UTF-8 (at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc})"
    problem = record_problem(record, path)
    return (None, problem) if problem else (record, None)


def read_record(path: Path) -> dict[str, Any] | None:
    """The well-formed record at ``path``, or None (no file, or a damaged one)."""
    return read_checked(path)[0]


class Records(list):
    """Well-formed trial records, and ``damaged``: "path (why)" for each file that is not one."""

    def __init__(self, records: list[dict[str, Any]], damaged: list[str]) -> None:
        super().__init__(records)
        self.damaged = damaged


def load_records(root: Path = RESULTS_ROOT, suites: list[str] | None = None) -> Records:
    """Every well-formed trial record under ``root`` (optionally only some suites), and which files are
    damaged (never silently: ``bench run`` reruns those trials, ``bench report`` names them)."""
    folders = [root / s for s in suites] if suites else sorted(p for p in root.glob("*") if p.is_dir())
    records, damaged = [], []
    for folder in folders:
        for path in sorted((folder / "trials").glob("*.json")):
            record, problem = read_checked(path)
            if record is None:
                damaged.append(f"{path} ({problem})")
            else:
                records.append(record)
    return Records(records, damaged)


def dataset_options(dataset: dict[str, Any]) -> str:
    """A dataset's options as one canonical string ("category=Gift_Cards"); two categories are two datasets."""
    return ",".join(f"{k}={v}" for k, v in sorted(dataset.get("options", {}).items()))


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted names: ``{"encoder": {"kind": "ar"}}`` is ``{"encoder.kind": "ar"}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        out |= flat_params(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _primary_metric(spec: TrialSpec) -> str | None:
    """The metric the trial's task ranks by under its protocol (None for a task this harness lacks)."""
    return TASKS[spec.task].primary_metric(spec.protocol) if spec.task in TASKS else None


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial: identity columns, the dtype it computed in, params, budget and protocol as columns (``param.<name>``
    with nested parameters dotted, ``param.encoder.kind``,
    ``budget.<field>``, ``protocol.<field>``), metric means and CIs
    (``<split>/<metric>``, ``.../ci_low``, ``.../ci_high``), accounting (``acct.<name>``)."""
    rows = []
    for rec in records:
        spec = TrialSpec.from_json(rec["spec"], f"record {rec['trial_id']}")
        row = {"trial_id": rec["trial_id"], "suite": rec["suite"], "status": rec["status"],
               "method": spec.method, "label": spec.label or spec.method,
               "dataset": spec.dataset.name, "dataset_options": dataset_options(spec.dataset.to_json()),
               "dataset_label": spec.dataset.describe(), "primary_metric": _primary_metric(spec),
               "task": spec.task, "seq_len": spec.seq_len, "split": spec.protocol.split,
               "windows": spec.protocol.windows, "seed": spec.seed,
               "search_group": spec.search_group, "search_metric": spec.search_metric, "tested": spec.tested,
               "dtype": rec.get("dtype"), "wall_seconds": rec.get("wall_seconds")}
        row.update(flat_params(dict(spec.params), "param."))
        row.update({f"budget.{k}": v for k, v in spec.budget.to_dict().items()})
        row.update({f"protocol.{k}": str(list(v)) if isinstance(v, tuple) else v
                    for k, v in spec.protocol.to_dict().items()})
        for split, metrics in rec.get("metrics", {}).items():
            for name, stats in metrics.items():
                row[f"{split}/{name}"] = stats["mean"]
                row[f"{split}/{name}/ci_low"] = stats.get("ci_low")  # a pruned sample's last check: no CI
                row[f"{split}/{name}/ci_high"] = stats.get("ci_high")
        row.update({f"acct.{k}": v for k, v in rec.get("accounting", {}).items() if not isinstance(v, (dict, list))})
        training = rec.get("training") or {}
        row.update({f"train.{k}": training.get(k) for k in ("stopped", "best_step", "still_rising", "examples_seen")})
        examples = rec.get("examples", {})
        row["test_n"] = examples["test"][0] if "test" in examples else None
        row["capped"] = rec.get("capped", False)
        row["test_examples"] = rec.get("test_examples")  # the test set's fingerprint: paired rows share it
        row["test_seconds"] = (rec.get("timing") or {}).get("test_seconds")  # per test example, where timed one by one
        row["device_name"], row["peak_rss_gb"] = rec.get("device_name"), rec.get("peak_rss_gb")
        row["machine_dependent"] = rec.get("machine_dependent", False)
        row["kernels_pinned"] = (rec.get("kernels") or {}).get("pinned", False)  # bench.kernels: reproducible
        inputs = rec.get("inputs") or {}
        row["reads"] = ", ".join(inputs["reads"]) if "reads" in inputs else None
        row["supervision"] = inputs.get("supervision")
        sources = rec.get("sources") or {}
        row["sources"] = f"{sources.get('harness', '?')}/{sources.get('method', '?')}"
        row["error"] = rec.get("error", {}).get("message") if rec["status"] == "failed" else None
        rows.append(row)
    return pd.DataFrame(rows)
