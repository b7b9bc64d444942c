"""Reading source files with errors that name the file and the format that was expected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import DataError


def require_file(path: Path, expected: str) -> Path:
    """Return ``path`` if it is a file, else raise one DataError naming it and what belongs there."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {expected}")
    return path


def find_one(folder: Path, patterns: list[str], expected: str) -> Path:
    """The single file in ``folder`` matching the first pattern that matches anything."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected a folder holding {expected}")
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DataError(f"{folder}: several files match {pattern} ({names}); name one with the dataset's options")
    raise DataError(f"{folder}: no file matching {' or '.join(patterns)}; expected {expected}")


def read_json_lines(path: Path, columns: list[str], expected: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a (gzipped) JSON-lines file and keep ``columns`` (all required) and ``optional`` (filled with None)."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False, compression="infer")
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not readable as JSON lines ({exc}); expected {expected}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}; expected {expected}")
    return frame.reindex(columns=[*columns, *optional])


def read_table(path: Path, columns: list[str], expected: str, **kwargs) -> pd.DataFrame:
    """Read a delimited text file (pandas ``read_csv`` options) whose header must hold ``columns``."""
    try:
        frame = pd.read_csv(path, **kwargs)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not readable ({exc}); expected {expected}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    return frame
