"""Paired comparison with a reference method (`bench report --versus LABEL`): on the very same test
examples, the mean per-example difference of each metric with a paired bootstrap CI, and how many
examples each side wins. Two methods' separate CIs can overlap while their paired difference is clear
(or not); this is the test a claim like "beats popularity" needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.errors import ConfigError
from bench.metrics import bootstrap_ci
from bench.report.summary import best_of_searches, metric_order, varying_params
from bench.store import records_frame

PAIRING = ("dataset", "task", "seq_len", "seed", "test_examples")


def paired_difference(values: np.ndarray, reference: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean of ``values - reference`` (same examples, same order) with its 95% bootstrap CI; wins and
    losses count the examples where ``values`` is higher or lower."""
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(f"paired values need the same examples: {values.shape} vs {reference.shape}")
    diff = values - reference
    low, high = bootstrap_ci(diff, seed=seed)
    return {"diff": float(diff.mean()), "ci_low": low, "ci_high": high,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "n": len(diff)}


def _pairable(records: list[dict[str, Any]]) -> tuple[dict[str, dict], pd.DataFrame]:
    usable = {r["trial_id"]: r for r in records if r["status"] == "ok" and "per_example" in r}
    frame = records_frame(list(usable.values()))
    if frame.empty:
        return usable, frame
    frame = best_of_searches(frame)
    frame["test_examples"] = [usable[t]["test_examples"] for t in frame["trial_id"]]
    return usable, frame


def versus_rows(records: list[dict[str, Any]], reference: str) -> pd.DataFrame:
    """One row per (configuration, seed, test metric): its mean, the reference's, and the paired
    difference; where a configuration has several seeds on the same test examples, one more row per
    metric (seed ``0 + 1 + ...``) pairs the per-example means over those seeds."""
    usable, frame = _pairable(records)
    if frame.empty or reference not in set(frame["label"]):
        known = sorted(set(frame["label"])) if not frame.empty else []
        raise ConfigError(f"--versus {reference!r}: no finished trial with per-example values has that label "
                          f"(labels with them: {', '.join(known) or 'none'}; records written before per-example "
                          f"values were stored need a re-run)")
    params = varying_params(frame)
    frame[params] = frame[params].astype(object).where(frame[params].notna(), None)  # NaN keys never match
    runs_by_configuration: dict[tuple, list[tuple[int, dict, dict]]] = {}
    for key, group in frame.groupby(list(PAIRING), sort=False):
        base = group[group["label"] == reference]
        if base.empty:
            continue
        base_values = usable[base["trial_id"].iloc[0]]["per_example"]["test"]
        for _, trial in group[group["label"] != reference].iterrows():
            configuration = (trial["label"], *(trial[p] for p in params), *key[:3], key[4])
            runs_by_configuration.setdefault(configuration, []).append(
                (int(key[3]), usable[trial["trial_id"]]["per_example"]["test"], base_values))
    if not runs_by_configuration:
        raise ConfigError(f"--versus {reference!r}: no other trial was scored on the same test examples "
                          f"(same dataset, task, history length, seed and cap)")
    rows = []
    for configuration, runs in runs_by_configuration.items():
        label, *values_of_params, dataset, task, seq_len, _ = configuration
        what = {"label": label, **dict(zip(params, values_of_params)), "dataset": dataset, "task": task,
                "seq_len": seq_len}
        runs.sort(key=lambda run: run[0])
        groups = [(run[0], [run]) for run in runs]
        if len(runs) > 1:
            groups.append((" + ".join(str(seed) for seed, _, _ in runs), runs))
        for seed, pooled in groups:
            for metric in sorted(set(pooled[0][1]) & set(pooled[0][2]), key=metric_order):
                mine = np.mean([values[metric] for _, values, _ in pooled], axis=0)
                theirs = np.mean([ref[metric] for _, _, ref in pooled], axis=0)
                rows.append(what | {"seed": seed, "metric": metric} |
                            _paired_row(mine, theirs, reference, bootstrap_seed=pooled[0][0]))
    return pd.DataFrame(rows)


def _paired_row(values: np.ndarray, base: np.ndarray, reference: str, bootstrap_seed: int) -> dict[str, Any]:
    paired = paired_difference(values, base, seed=bootstrap_seed)
    return {"mean": f"{values.mean():.4f}", reference: f"{base.mean():.4f}",
            "difference [95% CI]": f"{paired['diff']:+.4f} [{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}]",
            "wins": paired["wins"], "losses": paired["losses"], "n": paired["n"]}
