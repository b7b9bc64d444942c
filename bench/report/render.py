"""`bench report`: pick results, build the requested table or figure, format it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.errors import ConfigError
from bench.report.formats import format_frame
from bench.report.paired import versus_rows
from bench.report.paper_tables import paper_table
from bench.report.summary import summary_rows
from bench.report.terminal import protocols_text, terminal_summary, versus_text
from bench.report.tuning import tuning_rows
from bench.store import load_records, records_frame


def check_suites(results: Path, suites: list[str] | None) -> None:
    """Each ``--suite`` must have results under ``results``."""
    missing = [name for name in suites or [] if not (results / name / "trials").is_dir()]
    if missing:
        have = sorted(p.parent.name for p in results.glob("*/trials") if p.is_dir())
        raise ConfigError(f"--suite {missing[0]}: no results under {results / missing[0]}; expected one of: "
                          f"{', '.join(have) or f'none ({results} holds no results yet; bench run a suite first)'}")


def figure_path(out: Path) -> Path:
    """Where ``--out`` puts a figure: as given, with .png added when it has no extension; a folder or an
    extension matplotlib cannot write is a ConfigError."""
    from matplotlib.figure import Figure

    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; expected a file name such as {out / 'figure.png'}")
    if not out.suffix:
        return out.with_suffix(".png")
    kinds = Figure().canvas.get_supported_filetypes()
    if out.suffix[1:].lower() not in kinds:
        raise ConfigError(f"--out {out}: matplotlib cannot write {out.suffix} files; expected one of "
                          f"{', '.join('.' + k for k in sorted(kinds))}")
    return out


def check_writable(out: Path) -> None:
    """``--out`` must name a file in a folder this user can write to (checked before any work)."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; expected a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot make its folder ({exc.strerror or exc})") from None
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out}: not writable by this user; expected a path you can write to")


def render_report(results: Path, suites: list[str] | None = None, table: int | None = None,
                  figure: str | None = None, fmt: str = "terminal", out: Path | None = None,
                  versus: str | None = None, wide: bool = False, html_dir: Path | None = None,
                  tuning: bool = False) -> str:
    check_suites(results, suites)
    if out is not None:
        out = figure_path(out) if figure is not None else out
        check_writable(out)
    records = load_records(results, suites)
    for damaged in records.damaged:
        print(f"note: skipped a damaged record, {damaged}; bench run reruns its trial", file=sys.stderr)
    frame = records_frame(records)
    if html_dir is not None:
        from bench.report.html import html_report  # matplotlib only when a page is asked for

        try:
            return f"wrote {html_report(records, frame, html_dir, versus, results)}"
        except OSError as exc:
            raise ConfigError(f"--html {html_dir}: cannot write ({exc.strerror or exc})") from None
    if figure is not None:
        from bench.report.figures import draw_figure  # matplotlib only when a figure is asked for

        try:
            path = draw_figure(figure, records, out or results / f"figure-{figure}.png")
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        return f"wrote {path}"
    if tuning:
        rows = tuning_rows(frame)
        if rows.empty:
            raise ConfigError("no tuned search in these results (a suite with tune: makes them)")
        text = format_frame(rows, fmt)
    elif table is not None:
        text = paper_table(table, frame, fmt)
    elif versus is not None and fmt == "terminal" and not wide:
        text = versus_text(records, versus)
    elif versus is not None:
        rows = versus_rows(records, versus)
        text = format_frame(rows, fmt)
        if rows.attrs.get("unpaired") and fmt in ("terminal", "markdown"):
            text += "\n\nnot paired:\n" + "\n".join(f"- {line}" for line in rows.attrs["unpaired"])
    else:
        if frame.empty:
            raise ConfigError(f"no results under {results}" + (f" for suite(s) {', '.join(suites)}" if suites else ""))
        if fmt == "terminal" and not wide:
            text = "\n\n".join(filter(None, [terminal_summary(frame, results), protocols_text(records)]))
        else:
            text = format_frame(summary_rows(frame), fmt)
    if out is not None:
        try:
            out.write_text(text)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return text
