"""Paired comparison with a reference method (`bench report --versus LABEL`): on the test examples both
were scored on, the mean per-example difference of each metric with its interval and p-value
(``bench.intervals``: Newcombe's interval and the exact McNemar test for hit rates, a bootstrap and the
Wilcoxon test otherwise, seeds pooled with their spread), and how many examples each side wins. Two
methods' separate CIs can overlap while their paired difference is clear (or not); this is the test a
claim like "beats popularity" needs.

``versus_tables`` gives what a person reads: one table per dataset, task and history length, a row per
configuration on the task's primary metric. ``versus_rows`` gives everything (every metric, every seed)
for ``--wide``, markdown and CSV."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import ConfigError
from bench.intervals import over_seeds, paired_difference
from bench.report.summary import best_of_searches, configuration_tags, metric_order, protocol_words, varying_params
from bench.store import records_frame

PAIRING = ("dataset", "dataset_options", "task", "seq_len", "seed", "protocol")


class Configuration(NamedTuple):
    """What one row group of ``--versus`` compares: a labelled method configuration (the values of the
    configuration columns that vary, ``params``) on one dataset, task and history length under one protocol."""

    label: str
    tag: str
    params: tuple
    dataset: str
    dataset_options: str
    task: str
    seq_len: int
    protocol: str
    primary: str


class Run(NamedTuple):
    """One seed of a configuration: its per-example test values and the reference's, on the test examples
    both were scored on (the shared users of a capped run), in the same order."""

    seed: int
    values: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]


def _shared(mine: dict[str, Any], reference: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Indexes into each record's per-example values of the test examples both were scored on; None where
    they share none. Records without ``test_label_positions`` pair only on the very same test set."""
    a, b = mine.get("test_label_positions"), reference.get("test_label_positions")
    if a is None or b is None:
        if mine.get("test_examples") != reference.get("test_examples"):
            return None
        n = len(next(iter(mine["per_example"]["test"].values()), []))
        return np.arange(n), np.arange(n)
    _, ia, ib = np.intersect1d(np.asarray(a), np.asarray(b), assume_unique=True, return_indices=True)
    return (ia, ib) if len(ia) else None


def paired_run(mine: dict[str, Any], reference: dict[str, Any]) -> Run | None:
    """``mine``'s per-example test values and ``reference``'s on the test examples both were scored on (a
    reference value for each metric both have); None where they share none."""
    shared = _shared(mine, reference)
    if shared is None:
        return None
    theirs = reference["per_example"]["test"]
    values = {m: np.asarray(v, dtype=np.float64)[shared[0]] for m, v in mine["per_example"]["test"].items()}
    reference_values = {m: np.asarray(theirs[m], dtype=np.float64)[shared[1]] for m in values if m in theirs}
    return Run(int(mine["spec"]["seed"]), values, reference_values)


def _pairable(records: list[dict[str, Any]]) -> tuple[dict[str, dict], pd.DataFrame]:
    usable = {r["trial_id"]: r for r in records if r["status"] == "ok" and "per_example" in r}
    frame = records_frame(list(usable.values()))
    if frame.empty:
        return usable, frame
    frame = best_of_searches(frame)
    frame["protocol"] = [json.dumps(usable[t]["protocol"], sort_keys=True) for t in frame["trial_id"]]
    frame["tag"] = pd.concat([configuration_tags(group) for _, group in
                              frame.groupby(["dataset_label", "task", "seq_len"], sort=False)])
    return usable, frame


def paired_runs(records: list[dict[str, Any]], reference: str) -> tuple[dict[Configuration, list[Run]], list[str], list[str]]:
    """Each configuration's runs paired with the reference on the same dataset, task, history length, seed
    and protocol; the varying configuration columns; and a line per trial that found nothing to pair with."""
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
        base_record = usable[base["trial_id"].iloc[0]]
        for _, trial in group[group["label"] != reference].iterrows():
            run = paired_run(usable[trial["trial_id"]], base_record)
            if run is None:
                continue
            paired_trials.add(trial["trial_id"])
            configuration = Configuration(trial["label"], trial["tag"], tuple(trial[p] for p in params),
                                          primary=trial["primary_metric"],
                                          **{k: v for k, v in paired_on.items() if k != "seed"})
            runs.setdefault(configuration, []).append(run)
    unpaired = _unpaired_lines([trial for _, trial in frame.iterrows()
                                if trial["label"] != reference and trial["trial_id"] not in paired_trials],
                               frame, reference)
    if not runs:
        raise ConfigError(f"--versus {reference!r}: no other trial was scored on the same test examples "
                          f"(same dataset and options, task, history length, seed, protocol and test users): "
                          + "; ".join(unpaired))
    for its_runs in runs.values():
        its_runs.sort(key=lambda run: run.seed)
    return runs, params, unpaired


def compared(its_runs: list[Run], metric: str) -> dict[str, Any]:
    """The paired comparison of one metric over a configuration's runs: one seed's paired difference, or
    over several seeds the mean difference with an interval carrying the seeds' spread
    (``bench.intervals.over_seeds``) and a normal p-value from that interval; wins and losses counted on
    the per-example mean over seeds where every seed was scored on the same examples, else summed."""
    per_seed = [paired_difference(run.values[metric], run.reference[metric], seed=run.seed) for run in its_runs]
    mean = float(np.mean([run.values[metric].mean() for run in its_runs]))
    theirs = float(np.mean([run.reference[metric].mean() for run in its_runs]))
    if len(its_runs) == 1:
        return {**per_seed[0], "mean": mean, "reference": theirs, "seeds": 1}
    diff, low, high = over_seeds(*(np.array([p[k] for p in per_seed]) for k in ("diff", "ci_low", "ci_high")))
    se = (high - low) / (2 * stats.norm.ppf(0.975))
    p = 1.0 if se == 0 or not math.isfinite(se) else float(2 * stats.norm.sf(abs(diff) / se))
    if len({len(run.values[metric]) for run in its_runs}) == 1:
        pooled = np.mean([run.values[metric] - run.reference[metric] for run in its_runs], axis=0)
        wins, losses = int((pooled > 0).sum()), int((pooled < 0).sum())
    else:
        wins, losses = sum(p["wins"] for p in per_seed), sum(p["losses"] for p in per_seed)
    return {"diff": diff, "ci_low": low, "ci_high": high, "p": p, "test": "seeds", "wins": wins, "losses": losses,
            "n": per_seed[0]["n"], "mean": mean, "reference": theirs, "seeds": len(its_runs)}


def versus_rows(records: list[dict[str, Any]], reference: str) -> pd.DataFrame:
    """Everything: one row per (configuration, seed, test metric) with its mean, the reference's and the
    paired difference; where a configuration has several seeds, one more row per metric (seed
    ``0 + 1 + ...``) pools them."""
    runs, params, unpaired = paired_runs(records, reference)
    rows = []
    for configuration, its_runs in runs.items():
        what = {"label": configuration.label, **dict(zip(params, configuration.params)),
                "dataset": configuration.dataset, "task": configuration.task, "seq_len": configuration.seq_len}
        groups = [(run.seed, [run]) for run in its_runs]
        if len(its_runs) > 1:
            groups.append((" + ".join(str(run.seed) for run in its_runs), its_runs))
        for seed, pooled in groups:
            for metric in sorted(set(pooled[0].values) & set(pooled[0].reference), key=metric_order):
                result = compared(pooled, metric)
                rows.append(what | {"seed": seed, "metric": metric, "mean": f"{result['mean']:.4f}",
                                    reference: f"{result['reference']:.4f}",
                                    "difference [95% CI]": _difference(result), "p": _p(result["p"]),
                                    "test": result["test"], "wins": result["wins"], "losses": result["losses"],
                                    "n": result["n"]})
    out = pd.DataFrame(rows)
    out.attrs["unpaired"] = unpaired
    return out


def versus_tables(records: list[dict[str, Any]], reference: str) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """What a person reads: (title, rows) per dataset, task, history length and protocol, one row per configuration
    on the task's primary metric, largest difference first; and the lines of trials left unpaired."""
    runs, _, unpaired = paired_runs(records, reference)
    tables: dict[tuple, list[tuple[float, dict[str, Any]]]] = {}
    for configuration, its_runs in runs.items():
        metric = configuration.primary
        if metric not in its_runs[0].values or metric not in its_runs[0].reference:
            continue
        result = compared(its_runs, metric)
        name = f"{configuration.label} [{configuration.tag}]" if configuration.tag else configuration.label
        seeds = f" ×{result['seeds']}" if result["seeds"] > 1 else ""
        row = {"configuration": name, "n": f"{result['n']}{seeds}", metric: f"{result['mean']:.4f}",
               reference: f"{result['reference']:.4f}", "difference [95% CI]": _difference(result),
               "p": _p(result["p"]), "won/lost": f"{result['wins']}/{result['losses']}"}
        protocol = json.loads(configuration.protocol)
        key = (configuration.dataset, configuration.dataset_options, configuration.task, configuration.seq_len,
               protocol_words(protocol.get("split", "leave_one_out"), protocol.get("windows", "exact")), metric)
        tables.setdefault(key, []).append((result["diff"], row))
    out = []
    for (dataset, options, task, seq_len, words, metric), rows in sorted(tables.items(), key=lambda kv: kv[0][4] != ""):
        rows.sort(key=lambda pair: -pair[0])
        where = f"{dataset} ({options})" if options else dataset
        out.append((f"{where} · {task} · N={seq_len}{words} · test {metric} against {reference}",
                    pd.DataFrame([row for _, row in rows])))
    return out, unpaired


def _difference(result: dict[str, Any]) -> str:
    if not math.isfinite(result["ci_low"]):
        return f"{result['diff']:+.4f} [no spread]"
    return f"{result['diff']:+.4f} [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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


def _unpaired_lines(trials: list[pd.Series], frame: pd.DataFrame, reference: str) -> list[str]:
    """A line per trial left unpaired, saying why; trials of a dataset and task the reference never ran
    on share one line."""
    lines, absent = [], {}
    for trial in trials:
        has_reference = ((frame["label"] == reference) & (frame["dataset"] == trial["dataset"])
                         & (frame["task"] == trial["task"])).any()
        if has_reference:
            lines.append(_why_unpaired(trial, frame, reference))
        else:
            absent.setdefault((trial["dataset"], trial["task"]), []).append(trial["label"])
    for (dataset, task), labels in absent.items():
        lines.append(f"{dataset}/{task}: no {reference} trial ({', '.join(dict.fromkeys(labels))})")
    return lines


def _why_unpaired(trial: pd.Series, frame: pd.DataFrame, reference: str) -> str:
    """Why a trial has no reference to pair with: what the nearest reference trial differs in."""
    what = f"{trial['label']} ({trial['dataset']}/{trial['task']}/N={trial['seq_len']}, seed {trial['seed']})"
    base = frame[(frame["label"] == reference) & (frame["dataset"] == trial["dataset"])
                 & (frame["task"] == trial["task"])]
    differs = [k for k in ("seq_len", "seed", "protocol") if not (base[k] == trial[k]).any()]
    names = {"seq_len": "history length"}
    return f"{what}: {reference} differs in {', '.join(names.get(k, k) for k in differs) or 'test examples (none shared)'}"
