"""Paired comparison with a reference method (`bench report --versus LABEL`): on the very same test
examples, the mean per-example difference of each metric with a paired bootstrap CI, and how many
examples each side wins. Two methods' separate CIs can overlap while their paired difference is clear
(or not); this is the test a claim like "beats popularity" needs."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bench.errors import ConfigError
from bench.metrics import bootstrap_ci
from bench.report.summary import best_of_searches, metric_order, varying_params
from bench.store import records_frame

PAIRING = ("dataset", "dataset_options", "task", "seq_len", "seed", "test_examples", "protocol")


class Configuration(NamedTuple):
    """What one row group of ``--versus`` compares: a labelled method configuration (the values of the
    configuration columns that vary, ``params``) on one set of test examples under one protocol."""

    label: str
    params: tuple
    dataset: str
    dataset_options: str
    task: str
    seq_len: int
    test_examples: str
    protocol: str


class Run(NamedTuple):
    """One seed of a configuration: its per-example test values and the reference's on the same examples."""

    seed: int
    values: dict[str, Any]
    reference: dict[str, Any]


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
    frame["protocol"] = [json.dumps(usable[t]["protocol"], sort_keys=True) for t in frame["trial_id"]]
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
    _refuse_ambiguous(frame[frame["label"] == reference], reference, params)
    runs: dict[Configuration, list[Run]] = {}
    paired_trials: set[str] = set()
    for key, group in frame.groupby(list(PAIRING), sort=False):
        paired_on = dict(zip(PAIRING, key))
        base = group[group["label"] == reference]
        if base.empty:
            continue
        paired_trials.update(group["trial_id"])
        base_values = usable[base["trial_id"].iloc[0]]["per_example"]["test"]
        for _, trial in group[group["label"] != reference].iterrows():
            configuration = Configuration(trial["label"], tuple(trial[p] for p in params),
                                          **{k: v for k, v in paired_on.items() if k != "seed"})
            runs.setdefault(configuration, []).append(
                Run(int(paired_on["seed"]), usable[trial["trial_id"]]["per_example"]["test"], base_values))
    unpaired = [_why_unpaired(trial, frame, reference) for _, trial in frame.iterrows()
                if trial["label"] != reference and trial["trial_id"] not in paired_trials]
    if not runs:
        raise ConfigError(f"--versus {reference!r}: no other trial was scored on the same test examples "
                          f"(same dataset and options, task, history length, seed, protocol and cap): "
                          + "; ".join(unpaired))
    rows = []
    for configuration, its_runs in runs.items():
        what = {"label": configuration.label, **dict(zip(params, configuration.params)),
                "dataset": configuration.dataset, "task": configuration.task, "seq_len": configuration.seq_len}
        its_runs.sort(key=lambda run: run.seed)
        groups = [(run.seed, [run]) for run in its_runs]
        if len(its_runs) > 1:
            groups.append((" + ".join(str(run.seed) for run in its_runs), its_runs))
        for seed, pooled in groups:
            for metric in sorted(set(pooled[0].values) & set(pooled[0].reference), key=metric_order):
                mine = np.mean([run.values[metric] for run in pooled], axis=0)
                theirs = np.mean([run.reference[metric] for run in pooled], axis=0)
                rows.append(what | {"seed": seed, "metric": metric} |
                            _paired_row(mine, theirs, reference, bootstrap_seed=pooled[0].seed))
    out = pd.DataFrame(rows)
    out.attrs["unpaired"] = unpaired
    return out


def _refuse_ambiguous(base: pd.DataFrame, reference: str, params: list[str]) -> None:
    """One configuration may carry the reference label per dataset, task, history length, seed and
    protocol; several (two budgets, say) would make the comparison depend on which came first."""
    for _, group in base.groupby(["dataset", "dataset_options", "task", "seq_len", "seed", "protocol"], sort=False):
        if len(group) > 1:
            shown = "; ".join(", ".join(f"{p}={row[p]}" for p in params if row[p] is not None) or row["trial_id"]
                              for _, row in group.iterrows())
            raise ConfigError(f"--versus {reference!r}: {len(group)} configurations carry that label on "
                              f"{group['dataset'].iloc[0]}/{group['task'].iloc[0]}/N={group['seq_len'].iloc[0]} "
                              f"({shown}); expected one: report one suite (--suite) or relabel them")


def _why_unpaired(trial: pd.Series, frame: pd.DataFrame, reference: str) -> str:
    """Why a trial has no reference to pair with: what the nearest reference trial differs in."""
    what = f"{trial['label']} ({trial['dataset']}/{trial['task']}/N={trial['seq_len']}, seed {trial['seed']})"
    base = frame[(frame["label"] == reference) & (frame["dataset"] == trial["dataset"])
                 & (frame["task"] == trial["task"])]
    if base.empty:
        return f"{what}: no {reference} trial on that dataset and task"
    differs = [k for k in ("seq_len", "seed", "protocol", "test_examples")
               if not (base[k] == trial[k]).any()]
    names = {"test_examples": "test examples (a different cap)", "seq_len": "history length"}
    return f"{what}: {reference} differs in {', '.join(names.get(k, k) for k in differs) or 'test examples'}"


def _paired_row(values: np.ndarray, base: np.ndarray, reference: str, bootstrap_seed: int) -> dict[str, Any]:
    paired = paired_difference(values, base, seed=bootstrap_seed)
    return {"mean": f"{values.mean():.4f}", reference: f"{base.mean():.4f}",
            "difference [95% CI]": f"{paired['diff']:+.4f} [{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}]",
            "wins": paired["wins"], "losses": paired["losses"], "n": paired["n"]}
