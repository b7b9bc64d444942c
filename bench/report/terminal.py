"""The summary as a terminal shows it: at most 120 columns, one table per dataset and task (and history
length), its rows sorted by the task's primary metric, one row per configuration; failed trials as one
line each under the tables. ``bench report --wide`` and the markdown, LaTeX and CSV formats keep every
column (``bench.report.summary``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.intervals import over_seeds
from bench.knowledge import prior_lines
from bench.report.summary import best_of_searches, configuration_tags, failed_trials, metric_order, protocol_words

WIDTH = 120
LABEL_MOST = 30  # characters of a row's name (label and configuration tag)


def summary_tables(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per dataset, task, history length, split and training windows of ``frame``'s finished
    trials (rows of one table are scored on the same test examples and trained on the same kind of
    windows), rows best first."""
    ok = best_of_searches(frame[frame["status"] == "ok"])
    tables = []
    keys = ["dataset_label", "task", "seq_len", "split", "windows"]
    for (dataset, task, seq_len, split, windows), group in ok.groupby(keys, sort=True):
        primary = group["primary_metric"].iloc[0]
        title = f"{dataset} · {task} · N={seq_len}{protocol_words(split, windows)} · sorted by test {primary}"
        companions = companion_metrics(group, primary)
        rows = _rows(group, primary, companions)
        while companions and _width(rows) > WIDTH:  # the cost columns stay; a companion metric gives way
            companions = companions[:-1]
            rows = _rows(group, primary, companions)
        if _width(rows) != WIDTH:  # room to spare: longer names, so that tags are not cut; too wide: shorter
            rows = _rows(group, primary, companions, LABEL_MOST + WIDTH - _width(rows))
        tables.append((title, rows))
    return tables


def _table_text(rows: pd.DataFrame) -> str:
    return tabulate(rows, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)


def _width(rows: pd.DataFrame) -> int:
    return max(map(len, _table_text(rows).splitlines()))


def versus_text(records: list, reference: str) -> str:
    """``bench report --versus LABEL`` as a terminal shows it: a table per dataset, task and history length
    (``bench.report.paired.versus_tables``), then the trials left unpaired."""
    from bench.report.paired import versus_tables

    tables, unpaired = versus_tables(records, reference)
    blocks = []
    for title, rows in tables:
        excess = _width(rows) - WIDTH
        if excess > 0:  # the configuration's name gives way
            most = max(map(len, rows["configuration"])) - excess
            rows = rows.assign(configuration=[_shortened(name, most) for name in rows["configuration"]])
        blocks.append(title + "\n" + _table_text(rows))
    if unpaired:
        blocks.append("not paired:\n" + "\n".join(f"- {line}" for line in unpaired))
    return "\n\n".join(blocks)


def protocols_text(records: list) -> str:
    """The protocol-sensitivity tables (``bench.report.protocols``) with their notes; empty where every
    dataset, task and history length ran under one protocol."""
    from bench.report.protocols import RANK_NOTE, protocol_tables

    blocks = [title + "\n" + _table_text(rows) + "\n" + "\n".join(notes) for title, rows, notes in protocol_tables(records)]
    return "\n\n".join(blocks + [RANK_NOTE]) if blocks else ""


def terminal_summary(frame: pd.DataFrame, results: Path) -> str:
    """Every finished configuration of ``frame`` (``bench.store.records_frame``) in tables that fit
    ``WIDTH`` columns, then one line per failed trial naming its record."""
    ok = best_of_searches(frame[frame["status"] == "ok"])  # the rows the tables show
    blocks = [title + "\n" + _table_text(rows) for title, rows in summary_tables(frame)]
    notes = []
    if ok["capped"].any():
        notes.append("* tested on a capped sample (budget.max_test_examples), not the whole test set")
    if "train.still_rising" in ok and ok["train.still_rising"].isin([True]).any():
        notes.append("↑ validation was still rising at the last check")
    if "kernels_pinned" in ok and not ok["kernels_pinned"].fillna(False).astype(bool).all():
        notes.append("§ native kernels: the numbers can move on a CPU with another instruction set "
                     "(--kernels reproducible)")
    notes += prior_lines(ok, results)
    if notes:
        blocks.append("\n".join(notes))
    failed = failed_trials(frame)
    if len(failed):
        lines = [f"failed ({len(failed)}):"]
        for _, trial in failed.iterrows():
            name = f"  {trial['label']} {trial['dataset']}/{trial['task']}/N={trial['seq_len']} seed={trial['seed']}: "
            lines.append(name + _shortened(" ".join(str(trial.get("error") or "").split()), WIDTH - len(name)))
            lines.append(f"    {results / trial['suite'] / 'trials' / (trial['trial_id'] + '.json')}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _shortened(text: str, most: int) -> str:
    most = max(most, 20)
    return text if len(text) <= most else text[:most - 1] + "…"


def companion_metrics(group: pd.DataFrame, primary: str, most: int = 2) -> list[str]:
    """Up to ``most`` test metrics shown beside the primary: the other metrics at its cut-off k (NDCG and
    MRR beside recall@10), else the same metric at its other cut-offs."""
    names = [c.split("/", 1)[1] for c in group.columns
             if c.startswith("test/") and "/ci_" not in c and group[c].notna().any()]
    names = sorted((n for n in names if n != primary), key=metric_order)
    stem, _, k = primary.partition("@")
    same_k = [n for n in names if k and n.endswith(f"@{k}")]
    same_stem = [n for n in names if n.startswith(f"{stem}@")]
    return (same_k + same_stem)[:most]


def _rows(group: pd.DataFrame, primary: str, others: list[str], label_most: int = LABEL_MOST) -> pd.DataFrame:
    """One row per configuration (seeds pooled: the mean over seeds with an interval that carries their spread),
    best first; names cut at
    ``label_most`` characters."""
    tags = configuration_tags(group)
    with_pretraining = "acct.pretrain_examples" in group and group["acct.pretrain_examples"].notna().any()
    keys = group.assign(_tag=tags).groupby(["label", "_tag"], sort=False)
    rows = []
    for (label, tag), trials in keys:
        name = f"{label} [{tag}]" if tag else label
        mean = trials[f"test/{primary}"].mean()
        row = {"configuration": _shortened(name, label_most),
               "test n": _count(trials), primary: _with_interval(trials, primary)}
        for metric in others:
            row[metric] = _with_interval(trials, metric, interval=False)
        row.update(_training_cost(trials, with_pretraining))
        row["stopped"] = _stopped(trials)
        rows.append((mean, row))
    rows.sort(key=lambda pair: -pair[0] if pd.notna(pair[0]) else float("inf"))
    return pd.DataFrame([row for _, row in rows])


def _mean_of(trials: pd.DataFrame, column: str) -> float | None:
    values = trials[column].dropna() if column in trials else pd.Series(dtype=float)
    return float(values.mean()) if len(values) else None


def _training_cost(trials: pd.DataFrame, with_pretraining: bool) -> dict[str, str]:
    """Training in one currency for every method: examples trained on (``pre ex``: the pretraining's,
    where some row of the table pretrained) and measured FLOPs of all of it, pretraining included."""
    examples = _mean_of(trials, "acct.train_examples") or _mean_of(trials, "train.examples_seen")
    out = {"train ex": f"{examples:,.0f}" if examples else "—"}
    if with_pretraining:
        pretraining = _mean_of(trials, "acct.pretrain_examples")
        out["pre ex"] = f"{pretraining:,.0f}" if pretraining else "—"
    flops = _mean_of(trials, "acct.total_train_flops")
    out["FLOPs"] = f"{flops:.2g}" if flops else "—"
    return out


def _with_interval(trials: pd.DataFrame, metric: str, interval: bool = True) -> str:
    """One seed: its mean and interval; several: the mean over seeds and an interval that adds their
    spread to the test set's sampling (``bench.intervals.over_seeds``), 'sd' the seeds' standard deviation."""
    column = f"test/{metric}"
    rows = trials[trials[column].notna()] if column in trials else trials.iloc[0:0]
    if rows.empty:
        return "—"
    if len(rows) > 1 and not interval:
        return f"{rows[column].mean():.4f} sd {rows[column].std(ddof=1):.4f}"
    if not interval:
        return f"{rows[column].iloc[0]:.4f}"
    mean, low, high = over_seeds(rows[column], rows[f"{column}/ci_low"], rows[f"{column}/ci_high"])
    spread = f" sd {rows[column].std(ddof=1):.4f}" if len(rows) > 1 else ""
    return f"{mean:.4f} [{low:.3f}, {high:.3f}]{spread}"


def _count(trials: pd.DataFrame) -> str:
    """Test examples (seeds: their distinct counts); '*' where a cap kept it below the test set, '§' where
    a trial ran on native kernels (its numbers depend on the CPU's instruction set)."""
    counts = "/".join(str(int(n)) for n in dict.fromkeys(trials["test_n"].dropna()))
    native = "kernels_pinned" in trials and not trials["kernels_pinned"].fillna(False).astype(bool).all()
    return counts + ("*" if trials["capped"].any() else "") + ("§" if native else "")


def _stopped(trials: pd.DataFrame) -> str:
    """Why training ended and at which step the weights it tested were saved ("patience @400")."""
    if "train.stopped" not in trials or trials["train.stopped"].isna().all():
        return "—"
    ends = []
    for _, trial in trials.iterrows():
        best = trial.get("train.best_step")
        rising = "↑" if trial.get("train.still_rising") else ""
        ends.append(f"{trial['train.stopped']} @{best:.0f}{rising}" if pd.notna(best) else str(trial["train.stopped"]))
    return "; ".join(dict.fromkeys(ends))
