"""`bench report`: pick results, build the requested table or figure, format it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.errors import ConfigError
from bench.report.summary import summary_rows
from bench.store import load_records, records_frame

FORMATS = {"terminal": "simple", "markdown": "github", "latex": "latex"}


def format_frame(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return frame.to_csv(index=False)
    return tabulate(frame.fillna("—"), headers="keys", tablefmt=FORMATS[fmt], showindex=False)


def render_report(results: Path, suites: list[str] | None = None, table: int | None = None,
                  figure: str | None = None, fmt: str = "terminal", out: Path | None = None,
                  versus: str | None = None) -> str:
    records = load_records(results, suites)
    frame = records_frame(records)
    if figure is not None:
        from bench.report.figures import draw_figure

        path = draw_figure(figure, records, out or results / f"figure-{figure}.png")
        return f"wrote {path}"
    if table is not None:
        from bench.report.paper_tables import paper_table

        text = paper_table(table, frame, fmt)
    elif versus is not None:
        from bench.report.paired import versus_rows

        text = format_frame(versus_rows(records, versus), fmt)
    else:
        if frame.empty:
            raise ConfigError(f"no results under {results}" + (f" for suite(s) {', '.join(suites)}" if suites else ""))
        text = format_frame(summary_rows(frame), fmt)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
