"""Results: one JSON record per trial under results/<suite>/trials/, written atomically, loadable as
one pandas DataFrame."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import DataError

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


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_records(root: Path = RESULTS_ROOT, suites: list[str] | None = None) -> list[dict[str, Any]]:
    """Every trial record under ``root`` (optionally only some suites); an unreadable one is a DataError
    naming its path, never skipped."""
    folders = [root / s for s in suites] if suites else sorted(p for p in root.glob("*") if p.is_dir())
    records, unreadable = [], []
    for folder in folders:
        for path in sorted((folder / "trials").glob("*.json")):
            try:
                record = json.loads(path.read_text())
                if not isinstance(record, dict) or "spec" not in record or "status" not in record:
                    raise ValueError("not a trial record (no spec or status)")
            except (OSError, ValueError) as exc:
                unreadable.append(f"{path} ({type(exc).__name__}: {exc})")
                continue
            records.append(record)
    if unreadable:
        raise DataError(f"unreadable trial record(s): {'; '.join(unreadable)}; delete them (bench run then "
                        "re-runs those trials) or restore them")
    return records


def dataset_options(dataset: dict[str, Any]) -> str:
    """A dataset's options as one canonical string ("category=Gift_Cards"); two categories are two datasets."""
    return ",".join(f"{k}={v}" for k, v in sorted(dataset.get("options", {}).items()))


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial: identity columns, the dtype it computed in, params, budget and protocol as columns (``param.<name>``,
    ``budget.<field>``, ``protocol.<field>``), metric means and CIs
    (``<split>/<metric>``, ``.../ci_low``, ``.../ci_high``), accounting (``acct.<name>``)."""
    rows = []
    for rec in records:
        spec = rec["spec"]
        row = {"trial_id": rec["trial_id"], "suite": rec["suite"], "status": rec["status"],
               "method": spec["method"], "label": spec.get("label") or spec["method"],
               "dataset": spec["dataset"]["name"], "dataset_options": dataset_options(spec["dataset"]),
               "task": spec["task"], "seq_len": spec["seq_len"], "seed": spec["seed"],
               "search_group": spec.get("search_group"), "search_metric": spec.get("search_metric"),
               "dtype": rec.get("dtype")}
        row.update({f"param.{k}": v for k, v in spec["params"].items()})
        row.update({f"budget.{k}": v for k, v in spec.get("budget", {}).items()})
        row.update({f"protocol.{k}": str(v) if isinstance(v, list) else v for k, v in spec.get("protocol", {}).items()})
        for split, metrics in rec.get("metrics", {}).items():
            for name, stats in metrics.items():
                row[f"{split}/{name}"] = stats["mean"]
                row[f"{split}/{name}/ci_low"] = stats["ci_low"]
                row[f"{split}/{name}/ci_high"] = stats["ci_high"]
        row.update({f"acct.{k}": v for k, v in rec.get("accounting", {}).items() if not isinstance(v, (dict, list))})
        training = rec.get("training") or {}
        row.update({f"train.{k}": training.get(k) for k in ("stopped", "best_step", "still_rising", "examples_seen")})
        examples = rec.get("examples", {})
        row["test_n"] = examples["test"][0] if "test" in examples else None
        row["capped"] = rec.get("capped", False)
        row["machine_dependent"] = rec.get("machine_dependent", False)
        sources = rec.get("sources") or {}
        row["sources"] = f"{sources.get('harness', '?')}/{sources.get('method', '?')}"
        row["error"] = rec.get("error", {}).get("message") if rec["status"] == "failed" else None
        rows.append(row)
    return pd.DataFrame(rows)
