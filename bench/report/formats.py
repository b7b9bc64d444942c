"""Output formats of every report table: terminal, markdown, latex (tabulate) and csv (pandas)."""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

FORMATS = {"terminal": "simple", "markdown": "github", "latex": "latex"}


def format_frame(frame: pd.DataFrame, fmt: str) -> str:
    """``frame`` as text in ``fmt`` (one of FORMATS or csv); missing cells print as an em dash."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    return tabulate(frame.fillna("—"), headers="keys", tablefmt=FORMATS[fmt], showindex=False)
