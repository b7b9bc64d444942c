"""`bench report`: pick results, build the requested table or figure, format it."""

from __future__ import annotations

from pathlib import Path

from bench.errors import ConfigError
from bench.report.formats import format_frame
from bench.report.paired import versus_rows
from bench.report.paper_tables import paper_table
from bench.report.summary import summary_rows
from bench.store import load_records, records_frame


def render_report(results: Path, suites: list[str] | None = None, table: int | None = None,
                  figure: str | None = None, fmt: str = "terminal", out: Path | None = None,
                  versus: str | None = None) -> str:
    records = load_records(results, suites)
    frame = records_frame(records)
    if figure is not None:
        from bench.report.figures import draw_figure  # matplotlib only when a figure is asked for

        path = draw_figure(figure, records, out or results / f"figure-{figure}.png")
        return f"wrote {path}"
    if table is not None:
        text = paper_table(table, frame, fmt)
    elif versus is not None:
        rows = versus_rows(records, versus)
        text = format_frame(rows, fmt)
        if rows.attrs.get("unpaired") and fmt in ("terminal", "markdown"):
            text += "\n\nnot paired:\n" + "\n".join(f"- {line}" for line in rows.attrs["unpaired"])
    else:
        if frame.empty:
            raise ConfigError(f"no results under {results}" + (f" for suite(s) {', '.join(suites)}" if suites else ""))
        text = format_frame(summary_rows(frame), fmt)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
