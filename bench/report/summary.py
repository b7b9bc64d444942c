"""The summary table of a set of results: one row per configuration, seeds aggregated, search groups
reduced to their best trial by the validation metric."""

from __future__ import annotations

import pandas as pd

from bench.intervals import over_seeds
from bench.metrics import METRICS
from bench.paper_budgets import paper_examples

IDENTITY = ["suite", "label", "method", "dataset", "task", "seq_len"]
CONFIGURATION = ("param.", "budget.", "protocol.", "dataset_options", "dtype")  # what else changes a result
COSTS = (("acct.total_train_examples", "train ex (all)", "{:,.0f}"), ("acct.train_examples", "train ex", "{:,.0f}"),
         ("acct.pretrain_examples", "pretrain ex", "{:,.0f}"), ("acct.total_train_flops", "train FLOPs", "{:.3g}"),
         ("acct.pretrain_flops_measured", "pretrain FLOPs", "{:.3g}"), ("acct.train_seconds", "train s", "{:.0f}"),
         ("acct.llm_input_tokens_mean", "LLM tokens", "{:.1f}"), ("acct.params_trainable", "trainable", "{:,.0f}"),
         ("acct.params_total", "params", "{:,.0f}"), ("acct.seconds_per_step", "s/step", "{:.3g}"),
         ("acct.seconds_per_test_example", "s/test ex", "{:.3g}"))


def best_of_searches(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep, for each search group, the trial with the best value of its search's validation metric
    (``search.metric``; the paper's tuning); of a tuned search (``tune:``), only its final trials: the
    best sample trained again on its own seeds and tested once (its samples were never tested)."""
    if "search_group" not in frame or frame["search_group"].isna().all():
        return frame
    plain = frame[frame["search_group"].isna()]
    best = []
    for _, group in frame[frame["search_group"].notna()].groupby("search_group"):
        if "tested" in group and (group["tested"] == False).any():  # noqa: E712 (a column of bools)
            best.append(group[group["tested"] == True])  # noqa: E712
            continue
        column = f"valid/{group['search_metric'].iloc[0]}"
        if column in group and group[column].notna().any():
            best.append(group.loc[[group[column].idxmax()]])
    return pd.concat([plain, *best], ignore_index=True)


def failed_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """The failed trials a report lists: a tuned search's failed samples, replaced by others, are counted
    by ``bench report --tuning`` instead."""
    failed = frame[frame["status"] == "failed"]
    return failed[failed["tested"] != False] if "tested" in failed else failed  # noqa: E712 (a column of bools)


def metric_columns(frame: pd.DataFrame, split: str = "test") -> list[str]:
    """``<split>/<metric>`` columns in ``metric_order``."""
    columns = [c for c in frame.columns if c.startswith(f"{split}/") and "/ci_" not in c]
    return sorted(columns, key=lambda c: metric_order(c.split("/", 1)[1]))


def metric_order(name: str) -> tuple[int, str, int]:
    """Sort key of a metric name: in the registry's order (recall, ndcg, mrr, ...), each in increasing k."""
    stem, _, k = name.partition("@")
    rank = list(METRICS).index(stem) if stem in METRICS else len(METRICS)
    return rank, stem, int(k) if k.isdigit() else 0


def protocol_words(split: str, windows: str) -> str:
    """What a table's title adds for a protocol other than the paper's (" · temporal split", " · trained
    on prefixes"); nothing for leave-one-out with exact windows."""
    return ("" if split == "leave_one_out" else f" · {split} split") + (
        "" if windows == "exact" else f" · trained on {windows}")


def varying_params(frame: pd.DataFrame) -> list[str]:
    """Configuration columns (method parameters, budget, protocol, dataset options) that take more than
    one value within some method: what tells its rows apart. A parameter left at its default (absent
    from a record) counts as a value of its own."""
    return [c for c in frame.columns if c.startswith(CONFIGURATION)
            and frame.groupby("method")[c].agg(lambda v: v.astype(str).where(v.notna(), "").nunique()).max() > 1]


def training_columns(group: pd.DataFrame) -> dict[str, str]:
    """How the configuration's training ended: the stop reason with the best check's step (and "rising"
    where the last check was still the best), and its training examples as a share of the paper's budget."""
    if "train.stopped" not in group or group["train.stopped"].isna().all():
        return {}
    ends = []
    for _, trial in group.iterrows():
        rising = ", rising" if trial.get("train.still_rising") else ""
        best = trial.get("train.best_step")
        ends.append(f"{trial['train.stopped']} (best @{best:.0f}{rising})" if pd.notna(best) else trial["train.stopped"])
    out = {"stopped": "; ".join(dict.fromkeys(ends))}
    paper = paper_examples(group["dataset"].iloc[0], group["task"].iloc[0])
    seen = group["train.examples_seen"].dropna() if "train.examples_seen" in group else []
    if paper and len(seen):
        out["of paper budget"] = f"{100 * seen.mean() / paper:.2g}%"
    return out


def summary_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Configurations with their test metrics: 'mean [ci_low, ci_high]' for one seed; over several, the mean
    with an interval carrying the seeds' spread and their standard deviation (``bench.intervals.over_seeds``);
    costs beside them. Failed trials are listed with their error."""
    ok = best_of_searches(frame[frame["status"] == "ok"])
    keys = IDENTITY + varying_params(frame)
    # records of one method made by different code (kept with --keep-stale)
    mixed = "sources" in ok and not ok.empty and ok.groupby(["suite", "method"])["sources"].nunique().max() > 1
    rows = []
    for key, group in ok.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key))
        row["seeds"] = len(group)
        for column in metric_columns(group):
            values = group[column].dropna()
            if values.empty:
                continue
            name = column.split("/", 1)[1]
            seeds = group[group[column].notna()]
            mean, lo, hi = over_seeds(seeds[column], seeds[f"{column}/ci_low"], seeds[f"{column}/ci_high"])
            row[name] = f"{mean:.4f} [{lo:.4f}, {hi:.4f}]" + (
                f" sd {values.std(ddof=1):.4f}" if len(values) > 1 else "")
        for column, label, style in COSTS:
            if column in group and group[column].notna().any():
                row[label] = style.format(group[column].mean())
        row.update(training_columns(group))
        for column, label in (("reads", "reads"), ("supervision", "learns from")):
            if column in group and group[column].notna().any():
                row[label] = group[column].iloc[0] or "—"
        row["test n"] = "/".join(str(int(n)) for n in dict.fromkeys(group["test_n"].dropna())) + (
            " (capped)" if group["capped"].any() else "")
        if group["machine_dependent"].any():
            row["note"] = "seconds guard stopped it: depends on the machine's speed"
        if mixed:
            row["sources"] = ", ".join(dict.fromkeys(group["sources"]))
        rows.append(row)
    failed = failed_trials(frame)
    for _, trial in failed.iterrows():
        rows.append({**{k: trial.get(k) for k in IDENTITY}, "seeds": 0, "error": trial.get("error")})
    return pd.DataFrame(rows)


def configuration_tags(group: pd.DataFrame) -> pd.Series:
    """A short configuration tag for rows whose label has several configurations (what varies)."""
    varying = [c for c in varying_params(group) if not c.startswith("protocol.")]
    tags = pd.Series("", index=group.index)
    for _, rows in group.groupby("label"):
        if len(rows) < 2:
            continue
        columns = [c for c in varying if rows[c].astype(str).nunique() > 1]
        defaults = _defaults(rows["method"].iloc[0])
        tags[rows.index] = rows[columns].apply(
            lambda row: ",".join(f"{c.split('.', 1)[1]}={_value(v, defaults.get(c))}" for c, v in row.items()), axis=1)
    return tags


def _defaults(method: str) -> dict[str, object]:
    """``param.<name>`` -> the method's default, for parameters a record leaves out at their default (none
    where the method is not registered here)."""
    from bench.errors import ConfigError
    from bench.registry import load_methods, param_defaults

    try:
        cls = load_methods().get(method)
    except ConfigError:  # a plugin that does not import here: its rows show what their records hold
        return {}
    return {f"param.{name}": value for name, value in param_defaults(cls).items()} if cls else {}


def _value(value: object, default: object = None) -> str:
    """A parameter as a suite writes it (a column with gaps holds 64 as 64.0); one a record left out at its
    default shows that default."""
    if pd.isna(value) and default is not None:
        value = default
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
