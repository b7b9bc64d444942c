"""``bench report --html DIR``: one self-contained page (figures embedded as PNG data, no network) with
the summary per task, the paired comparisons against a reference, the validation curves, the
cost/quality plot, the paper tables the results feed, and each run's machine, dtype, versions and
commit. The page counts its own broken images into ``body[data-broken-images]`` once loaded, which the
browser test reads."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import ConfigError
from bench.knowledge import prior_lines
from bench.registry import INPUTS
from bench.report.paired import versus_tables
from bench.report.paper_tables import LAYOUTS, MISSING, paper_table_frame
from bench.report.protocols import RANK_NOTE, protocol_tables
from bench.report.summary import failed_trials
from bench.report.terminal import summary_tables

SECTIONS = ("summary", "inputs", "paired", "curves", "cost-quality", "paper-tables", "runs")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; font-size: .85em; margin-bottom: 1em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: .85em; }
.scroll { overflow-x: auto; }
"""
CHECK_IMAGES = """
window.addEventListener("load", () => {
  const broken = [...document.images].filter(image => !image.complete || image.naturalWidth === 0).length;
  document.body.dataset.brokenImages = String(broken);
});
"""


def html_report(records: list[dict[str, Any]], frame: pd.DataFrame, out_dir: Path, versus: str | None,
                results: Path) -> Path:
    """Write ``out_dir/index.html`` for ``records`` (``frame``: their ``records_frame``); ``versus``: the
    label the paired comparisons take as reference (default: Popularity where there is one); ``results``:
    the results root (the LLM knowledge probes kept there are shown beside what the methods read)."""
    if frame.empty:
        raise ConfigError("no results to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    suites = ", ".join(sorted(frame["suite"].unique()))
    parts = [f"<h1>userllm-bench: {html.escape(suites)}</h1>",
             f"<p class='note'>{len(frame)} trial records; written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             "by <code>bench report --html</code>.</p>",
             _section("summary", "Summary per task", _summary(frame)),
             *_protocols(records),
             _section("inputs", "What each method read and learned from", _inputs(frame, results)),
             _section("paired", "Paired comparisons", _paired(records, frame, versus)),
             _section("curves", "Validation curves", _figure("curves", records)),
             _section("cost-quality", "Cost and quality", _figure("0", records)),
             _section("efficiency", "Cost per example against history length (table 3)",
                      _figure("efficiency", records)),
             _section("paper-tables", "Paper tables these results feed", _paper_tables(frame)),
             _section("runs", "Runs: machine, dtype, versions, commit", _runs(records))]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>userllm-bench: "
            f"{html.escape(suites)}</title><style>{STYLE}</style><script>{CHECK_IMAGES}</script></head>"
            f"<body>{''.join(parts)}</body></html>")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{body}</section>"


def _table(frame: pd.DataFrame) -> str:
    return f"<div class='scroll'>{frame.fillna(MISSING).to_html(index=False, border=0, escape=True)}</div>"


def _summary(frame: pd.DataFrame) -> str:
    parts = [f"<h3>{html.escape(title)}</h3>{_table(rows)}" for title, rows in summary_tables(frame)]
    failed = failed_trials(frame)
    if len(failed):
        parts.append("<h3>Failed trials</h3>" + _table(failed[["label", "dataset", "task", "seq_len", "seed",
                                                               "error", "trial_id"]]))
    return "".join(parts) or "<p class='note'>no finished trial</p>"


def _protocols(records: list[dict[str, Any]]) -> list[str]:
    """The rank-under-each-protocol section (``bench.report.protocols``), where some task ran under two."""
    tables = protocol_tables(records)
    if not tables:
        return []
    parts = [f"<h3>{html.escape(title)}</h3>{_table(rows)}" + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
             for title, rows, notes in tables]
    return [_section("protocols", "Rank under each protocol", "".join(parts) + f"<p class='note'>{html.escape(RANK_NOTE)}</p>")]


def _inputs(frame: pd.DataFrame, results: Path) -> str:
    """Each configuration's declared inputs (``bench.registry.INPUTS``) and supervision, as its records keep
    them, and what the LLMs read knew of the catalog (``bench.knowledge``)."""
    if "reads" not in frame or frame["reads"].isna().all():
        return "<p class='note'>these records declare no inputs (written before methods declared them)</p>"
    rows = (frame[frame["status"] == "ok"][["label", "method", "task", "reads", "supervision"]]
            .fillna({"reads": "—"}).replace({"reads": {"": "— (training labels only)"}})
            .drop_duplicates().rename(columns={"supervision": "learns from"}))
    legend = "; ".join(f"<b>{html.escape(name)}</b>: {html.escape(meaning)}" for name, meaning in INPUTS.items())
    priors = "".join(f"<p class='note'>{html.escape(line)}</p>" for line in prior_lines(frame, results))
    return _table(rows) + f"<p class='note'>{legend}</p>" + priors


def _paired(records: list[dict[str, Any]], frame: pd.DataFrame, versus: str | None) -> str:
    labels = set(frame["label"])
    reference = versus or ("Popularity" if "Popularity" in labels else None)
    if reference is None:
        return "<p class='note'>no reference: name one with <code>--versus LABEL</code></p>"
    try:
        tables, unpaired = versus_tables(records, reference)
    except ConfigError as exc:
        return f"<p class='note'>{html.escape(str(exc))}</p>"
    note = (f"<p class='note'>each configuration against {html.escape(reference)} on the test examples both were "
            "scored on, on the task's primary metric; hit rates: Newcombe's interval and the exact McNemar p; "
            "several seeds: the interval adds their spread (docs/reports.md); every metric: "
            "<code>bench report --versus LABEL --wide</code></p>")
    parts = [f"<h3>{html.escape(title)}</h3>{_table(rows)}" for title, rows in tables]
    listed = "".join(f"<li>{html.escape(line)}</li>" for line in unpaired)
    return note + "".join(parts) + (f"<p class='note'>not paired:</p><ul class='note'>{listed}</ul>" if listed else "")


def _figure(name: str, records: list[dict[str, Any]]) -> str:
    """A figure as an embedded PNG, or why there is none."""
    from matplotlib import pyplot as plt

    from bench.report.figures import FIGURES

    try:
        figure = FIGURES[name](records)
    except ConfigError as exc:
        return f"<p class='note'>{html.escape(str(exc))}</p>"
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='figure {html.escape(name)}' src='data:image/png;base64,{data}'>"


def _paper_tables(frame: pd.DataFrame) -> str:
    parts = []
    for number in LAYOUTS:
        title, body = paper_table_frame(number, frame)
        ours = [c for c in body.columns if c.endswith(" ours")]
        if (body[ours] != MISSING).any().any():
            parts.append(f"<h3>{html.escape(title)}</h3>{_table(body)}")
    return "".join(parts) or "<p class='note'>these results fill no cell of the paper's tables</p>"


def _runs(records: list[dict[str, Any]]) -> str:
    rows = []
    for record in records:
        machine, versions = record.get("machine") or {}, record.get("versions") or {}
        rows.append({"suite": record["suite"], "commit": (record.get("sources") or {}).get("commit", "?"),
                     "machine": f"{machine.get('node', '?')} ({record.get('device_name', '?')}, "
                                f"{machine.get('cpus', '?')} CPUs)",
                     "device": record.get("device", "?"), "dtype": record.get("dtype", "?"),
                     "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))})
    runs = pd.DataFrame(rows).value_counts().reset_index(name="trials")
    return _table(runs)
