"""``bench report --tuning``: what each tuned search (``tune:``) chose and what it cost: the best
configuration by validation, its validation score in the search (the best finished sample's), its final
trials' validation and test scores, the selection's optimism (that search validation score minus the
final test score), and the search's samples, trial-seconds and measured training FLOPs."""

from __future__ import annotations

import pandas as pd

from bench.intervals import over_seeds
from bench.report.summary import CONFIGURATION


def tuning_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per tuned search group of ``frame`` (``bench.store.records_frame``)."""
    if "tested" not in frame:
        return pd.DataFrame()
    rows = []
    for group, trials in frame[frame["search_group"].notna()].groupby("search_group", sort=False):
        samples = trials[trials["tested"] == False]  # noqa: E712 (a column of bools)
        finals = trials[(trials["tested"] == True) & (trials["status"] == "ok")]  # noqa: E712
        if samples.empty:
            continue
        metric = trials["search_metric"].iloc[0]
        valid, test = f"valid/{metric}", f"test/{metric}"
        finished = samples[samples["status"] == "ok"]  # what the choice was among (pruned samples are out)
        best = finished[valid].max() if valid in finished and len(finished) else float("nan")
        varying = [c for c in samples.columns if c.startswith(CONFIGURATION) and c not in ("dataset_options", "dtype")
                   and samples[c].astype(str).nunique() > 1]
        chosen = finals.iloc[0] if len(finals) else None
        row = {"label": trials["label"].iloc[0], "task": trials["task"].iloc[0], "metric": metric,
               "best configuration": ", ".join(f"{c.split('.', 1)[1]}={_short(chosen[c])}" for c in varying)
               if chosen is not None else "— (search not finished)",
               "search valid": f"{best:.4f}",
               "final valid": f"{finals[valid].mean():.4f}" if len(finals) and valid in finals else "—",
               "final test": _test(finals, test),
               "optimism": f"{best - finals[test].mean():+.4f}" if len(finals) and test in finals else "—",
               "samples": f"{len(samples)} ({(samples['status'] == 'pruned').sum()} pruned, "
                          f"{(samples['status'] == 'failed').sum()} failed)",
               "trial-seconds": f"{samples['wall_seconds'].fillna(0).sum():,.0f}"}
        # the search's budget in the currency every method shares: examples trained, pruned samples' included
        seen = samples.get("train.examples_seen")
        row["search examples"] = f"{seen.sum():,.0f}" if seen is not None and seen.notna().any() else "—"
        flops = samples.get("acct.train_flops_measured")  # finished samples (a pruned one keeps its curve only)
        row["train FLOPs"] = f"{flops.sum():.3g}" if flops is not None and flops.notna().any() else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _test(finals: pd.DataFrame, column: str) -> str:
    """The final trials' test score with its interval; over several seeds, the mean with an interval that
    carries their spread (``bench.intervals.over_seeds``) and their standard deviation."""
    if finals.empty or column not in finals:
        return "—"
    mean, low, high = over_seeds(finals[column], finals[f"{column}/ci_low"], finals[f"{column}/ci_high"])
    spread = f" sd {finals[column].std(ddof=1):.4f}" if len(finals) > 1 else ""
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]{spread}"
