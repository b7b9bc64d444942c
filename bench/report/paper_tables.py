"""The paper's tables as layouts: its rows and columns, our numbers from the results, and the paper's
own numbers (``paper_numbers.csv``, transcribed cell by cell) beside them. A cell without a result is
"—", never a made-up value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import ConfigError
from bench.report.render import format_frame
from bench.report.summary import best_of_searches

PAPER = Path(__file__).with_name("paper_numbers.csv")
FAMILIES = {"MovieLens20M": ("ml-20m", "ml-100k"), "Google Review": ("google-local-2021",),
            "Amazon Review": ("amazon-2018",)}
MISSING = "—"


@dataclass(frozen=True)
class Layout:
    title: str
    rows: list[str]
    columns: list[str]
    ours: Callable[[pd.DataFrame, str, str], str]


def paper_numbers(table: int) -> dict[tuple[str, str], float]:
    frame = pd.read_csv(PAPER)
    frame = frame[frame["table"] == table]
    return {(r.row, r.column): r.value for r in frame.itertuples()}


def _pick(frame: pd.DataFrame, **conditions) -> pd.DataFrame:
    ok = best_of_searches(frame[frame["status"] == "ok"]) if len(frame) else frame
    for column, allowed in conditions.items():
        if column not in ok:
            return ok.iloc[0:0]
        ok = ok[ok[column].isin(allowed if isinstance(allowed, (list, tuple)) else [allowed])]
    return ok


def _value(rows: pd.DataFrame, column: str, fmt: str = "{:.3f}") -> str:
    if rows.empty or column not in rows or rows[column].isna().all():
        return MISSING
    label = fmt.format(rows[column].mean())
    datasets = sorted(rows["dataset"].unique())
    return f"{label} ({', '.join(datasets)})"


TABLE2_METHODS = {"DualEnc": {"method": "dual_encoder"}, "Bert4Rec": {"method": "bert4rec"},
                  "USER-LLM": {"method": "userllm", "param.strategy": "full"}}


def _table2(frame: pd.DataFrame, row: str, column: str) -> str:
    family, k = row.rsplit(" R@", 1)
    rows = _pick(frame, task="next_item", seq_len=50, dataset=FAMILIES[family], **TABLE2_METHODS[column])
    return _value(rows, f"test/recall@{k}")


def _table3(frame: pd.DataFrame, row: str, column: str) -> str:
    n = int(column.removeprefix("Len"))
    tp = _pick(frame, method="text_prompt", **{"param.prompt_events": n})
    ours = _pick(frame, method="userllm", seq_len=n)
    if row == "# Tokens TP":
        return _value(tp, "acct.llm_input_tokens_mean", "{:.0f}")
    if row == "# Tokens USER-LLM":
        return _value(ours, "acct.llm_input_tokens_mean", "{:.0f}")
    column_6nd = "acct.flops_per_train_example_6nd"
    if tp.empty or ours.empty or column_6nd not in tp or column_6nd not in ours:
        return MISSING
    return f"{tp[column_6nd].mean() / ours[column_6nd].mean():.1f}X"


LAYOUTS = {
    2: Layout("Table 2: next item prediction, USER-LLM vs DualEnc and Bert4Rec (recall@k)",
              [f"{family} R@{k}" for family in FAMILIES for k in (1, 5, 10)], ["DualEnc", "Bert4Rec", "USER-LLM"],
              _table2),
    3: Layout("Table 3: LLM input tokens and FLOPs reduction, TP vs USER-LLM (6ND per training example)",
              ["# Tokens USER-LLM", "# Tokens TP", "FLOPs Reduction"], ["Len50", "Len100", "Len200"], _table3),
}


def paper_table(number: int, frame: pd.DataFrame, fmt: str = "terminal") -> str:
    """The paper's table ``number`` with our numbers ("ours", dataset in brackets) and the paper's."""
    if number not in LAYOUTS:
        raise ConfigError(f"--table {number}: layouts so far: {', '.join(map(str, LAYOUTS))} "
                          "(tables 4-14 need the USER-LLM method, not yet registered)")
    layout, paper = LAYOUTS[number], paper_numbers(number)
    body = []
    for row in layout.rows:
        cells = {"": row}
        for column in layout.columns:
            cells[f"{column} ours"] = layout.ours(frame, row, column)
            value = paper.get((row, column))
            cells[f"{column} paper"] = MISSING if value is None else f"{value:g}"
        body.append(cells)
    table = format_frame(pd.DataFrame(body), fmt)
    return table if fmt == "csv" else f"{layout.title}\n\n{table}"
