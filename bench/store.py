"""Results: one JSON record per trial under results/<suite>/trials/, written atomically, loadable as
one pandas DataFrame."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

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
            json.dump(payload, out, indent=1, sort_keys=True, default=_jsonable)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
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
    """Every trial record under ``root`` (optionally only some suites)."""
    folders = [root / s for s in suites] if suites else sorted(p for p in root.glob("*") if p.is_dir())
    records = []
    for folder in folders:
        for path in sorted((folder / "trials").glob("*.json")):
            record = read_record(path)
            if record is not None:
                records.append(record)
    return records


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial: identity columns, params as columns (``param.<name>``), metric means and CIs
    (``<split>/<metric>``, ``.../ci_low``, ``.../ci_high``), accounting (``acct.<name>``)."""
    rows = []
    for rec in records:
        spec = rec["spec"]
        row = {"trial_id": rec["trial_id"], "suite": rec["suite"], "status": rec["status"],
               "method": spec["method"], "label": spec.get("label") or spec["method"],
               "dataset": spec["dataset"]["name"], "task": spec["task"], "seq_len": spec["seq_len"],
               "seed": spec["seed"], "search_group": spec.get("search_group")}
        row.update({f"param.{k}": v for k, v in spec["params"].items()})
        for split, metrics in rec.get("metrics", {}).items():
            for name, stats in metrics.items():
                row[f"{split}/{name}"] = stats["mean"]
                row[f"{split}/{name}/ci_low"] = stats["ci_low"]
                row[f"{split}/{name}/ci_high"] = stats["ci_high"]
        row.update({f"acct.{k}": v for k, v in rec.get("accounting", {}).items() if not isinstance(v, (dict, list))})
        row["error"] = rec.get("error", {}).get("message") if rec["status"] == "failed" else None
        rows.append(row)
    return pd.DataFrame(rows)
