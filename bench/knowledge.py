"""Catalog-knowledge probes kept under the results root (``bench probe-knowledge``, which runs
``bench.models.knowledge``), and the lines the reports print beside the rows that read an LLM's prior."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.store import write_json_atomically


def knowledge_path(root: Path, dataset: str, llm: str) -> Path:
    """Where the probe of ``llm`` on ``dataset`` is kept under the results root."""
    return root / "knowledge" / f"{dataset}__{Path(llm).name}.json"


def save(root: Path, dataset: str, llm: str, rows: list[dict[str, Any]], facts: dict[str, Any]) -> Path:
    path = knowledge_path(root, dataset, llm)
    write_json_atomically(path, {"dataset": dataset, "llm": llm, "rows": rows, **facts})
    return path


def load_probes(root: Path) -> list[dict[str, Any]]:
    """Every probe result kept under ``root`` (none where the probe has not run)."""
    return [json.loads(path.read_text()) for path in sorted((root / "knowledge").glob("*.json"))]


def prior_lines(frame: Any, results: Path) -> list[str]:
    """A line for each (dataset, LLM) that the finished rows of ``frame`` (``records_frame``) read the
    LLM's prior through: the probe's figures where ``bench probe-knowledge`` kept them under ``results``,
    else how to measure them."""
    if "reads" not in frame:
        return []
    rows = frame[(frame["status"] == "ok") & frame["reads"].fillna("").str.contains("LLM prior", regex=False)]
    if rows.empty:
        return []
    llms = rows["param.llm"] if "param.llm" in rows else ["the LLM"] * len(rows)
    probes = {(p["dataset"], p["llm"]): p for p in load_probes(results)}
    lines = []
    for dataset, llm in sorted(set(zip(rows["dataset"], llms, strict=True))):
        probe = probes.get((dataset, llm))
        if probe is None:
            lines.append(f"LLM prior of {llm} on {dataset}: not measured (bench probe-knowledge --dataset {dataset} "
                         f"--llm {llm})")
            continue
        figures = "; ".join(f"{r['probe']} {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] against "
                            f"{r['reference']} {r['reference_accuracy']:.3f}" for r in probe["rows"])
        lines.append(f"LLM prior of {llm} on {dataset}, with no user data (bench probe-knowledge): {figures}")
    return lines
