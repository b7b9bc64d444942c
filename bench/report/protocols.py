"""How much a method's rank depends on the protocol: for each dataset, task and history length run under
more than one protocol (``protocol.split``, ``protocol.windows``), one row per configuration and one
column per protocol with its test score on the task's primary metric and its rank there.

Ranks are joint where the data cannot tell methods apart: going down the list best first, a method
shares the rank of the method that opened the current group when its paired 95% interval of the
difference against that method (the same test examples; ``bench.report.paired.compared``) spans 0, and
opens a new group otherwise. Kendall's tau between each protocol's order and the first protocol's, over
the configurations both ranked, says how much the order moved."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.paired import _pairable, compared, paired_run
from bench.report.summary import protocol_words

DEFAULT = ("leave_one_out", "exact")  # the paper's protocol: the first column
RANK_NOTE = ("(=k): not told apart from the method ranked k, the first of its group (paired 95% interval "
             "of the difference spans 0)")


def protocol_tables(records: list[dict[str, Any]]) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """(title, rows, notes) per dataset, task and history length that ran under two protocols or more."""
    usable, frame = _pairable(records)
    if frame.empty:
        return []
    frame["name"] = [f"{label} [{tag}]" if tag else label for label, tag in zip(frame["label"], frame["tag"])]
    out = []
    for (dataset, task, seq_len), group in frame.groupby(["dataset_label", "task", "seq_len"], sort=True):
        protocols = sorted(set(zip(group["split"], group["windows"])), key=lambda p: (p != DEFAULT, p))
        if len(protocols) < 2:
            continue
        primary = group["primary_metric"].iloc[0]
        trials = {p: group[(group["split"] == p[0]) & (group["windows"] == p[1])] for p in protocols}
        ranked = {p: _ranks(trials[p], usable, primary) for p in protocols}
        columns = {p: f"{_name(p)} (n={'/'.join(str(int(n)) for n in sorted(set(trials[p]['test_n'].dropna())))})"
                   for p in protocols}  # a protocol's name and how many test examples its rows were scored on
        first = list(ranked[protocols[0]])
        names = sorted(set(group["name"]), key=lambda n: first.index(n) if n in first else len(first))
        rows = []
        for name in names:
            row = {"configuration": name}
            for protocol, ranks in ranked.items():
                mean, rank = ranks.get(name, (None, None))
                row[columns[protocol]] = "—" if mean is None else f"{mean:.4f} ({rank})"
            rows.append(row)
        notes = [f"{_name(p)}: Kendall's tau with {_name(protocols[0])} {_tau(ranked[protocols[0]], ranked[p])}"
                 for p in protocols[1:]]
        out.append((f"{dataset} · {task} · N={seq_len} · test {primary} (rank) under each protocol",
                    pd.DataFrame(rows), notes))
    return out


def _ranks(trials: pd.DataFrame, usable: dict[str, dict], metric: str) -> dict[str, tuple[float, str]]:
    """name -> (mean over seeds, joint rank as text) of one protocol's configurations, best first."""
    column = f"test/{metric}"
    means = trials.groupby("name")[column].mean().dropna().sort_values(ascending=False)
    out, leader, rank = {}, None, 0
    for position, (name, mean) in enumerate(means.items(), start=1):
        mine = [usable[t] for t in trials.loc[trials["name"] == name, "trial_id"]]
        if leader is None or _separable(mine, leader, metric):
            leader, rank = mine, position
        out[name] = (float(mean), f"={rank}" if rank != position else str(rank))
    return out


def _separable(mine: list[dict], leader: list[dict], metric: str) -> bool:
    """Whether the paired interval of ``mine`` minus ``leader`` (seeds they share) excludes 0; methods
    with no test examples in common are taken as separable (nothing says they tie)."""
    theirs = {r["spec"]["seed"]: r for r in leader}
    runs = []
    for record in mine:
        run = paired_run(record, theirs[record["spec"]["seed"]]) if record["spec"]["seed"] in theirs else None
        if run is not None and metric in run.reference:
            runs.append(run)
    if not runs:
        return True
    result = compared(runs, metric)
    if not np.isfinite(result["ci_low"]):  # every difference the same: apart unless that is 0
        return result["diff"] != 0
    return not (result["ci_low"] <= 0 <= result["ci_high"])


def _tau(first: dict[str, tuple], other: dict[str, tuple]) -> str:
    both = [name for name in first if name in other]
    if len(both) < 2:
        return "— (fewer than two configurations in both)"
    tau = stats.kendalltau([first[n][0] for n in both], [other[n][0] for n in both]).statistic
    return f"{tau:+.2f} over {len(both)} configurations"


def _name(protocol: tuple[str, str]) -> str:
    return protocol_words(*protocol).strip(" ·") or "leave-one-out, exact windows"

