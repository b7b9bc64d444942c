"""Reading source files: one guarded reader per format (JSON lines, delimited text) that turns any
decode, decompress or parse failure into one DataError naming the file, the line and what was
expected; and the event columns every loader needs, with rows missing one of them dropped and counted."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import DataError

# every failure a decompressor, a decoder or a parser raises on damaged bytes
READ_FAILURES = (ValueError, OSError, EOFError, zlib.error, UnicodeDecodeError, TypeError, AttributeError,
                 KeyError, IndexError, pd.errors.ParserError)
EVENT_FIELDS = ("user", "item", "rating", "timestamp")


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


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from handle


def _first_bad_line(path: Path, check: Callable[[str], None]) -> str:
    """Where reading ``path`` line by line first fails, as "line N: what" (the slow path, taken only after
    the fast reader failed, to say where)."""
    number = 0
    try:
        for number, raw in enumerate(_lines(path), start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}: bytes that are not UTF-8 ({exc.reason} at byte {exc.start})"
            try:
                check(text)
            except (ValueError, TypeError) as exc:
                return f"line {number}: {exc}"
    except (OSError, EOFError, zlib.error) as exc:
        what = "a damaged or truncated gzip file" if path.suffix == ".gz" else "unreadable"
        return f"after line {number}: {what} ({type(exc).__name__}: {exc})"
    return ""


def _json_object(text: str) -> None:
    if not text.strip():
        return
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__} ({text.strip()[:40]!r}) instead of an object")


def read_json_lines(path: Path, columns: list[str], expected: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a (gzipped) JSON-lines file of objects and keep ``columns`` (all required) and ``optional``
    (filled with None)."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False, compression="infer")
    except READ_FAILURES as exc:
        where = _first_bad_line(path, _json_object) or f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: not readable as JSON lines: {where}; expected {expected}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}; expected {expected}")
    return frame.reindex(columns=[*columns, *optional])


def read_table(path: Path, columns: list[str], expected: str, **kwargs: Any) -> pd.DataFrame:
    """Read a delimited text file (pandas ``read_csv`` options) whose header must hold ``columns``."""
    try:
        frame = pd.read_csv(path, **kwargs)
    except READ_FAILURES as exc:
        where = (_first_bad_line(path, lambda text: None) or _first_bad_number(path, kwargs)
                 or f"{type(exc).__name__}: {exc}")
        raise DataError(f"{path}: not readable: {where}; expected {expected}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    return frame


def _first_bad_number(path: Path, options: dict[str, Any]) -> str:
    """The first cell of a column read as numbers that holds something else, as "line N: column=value
    ..." (the slow path: the file read again as text, only after the fast read failed)."""
    dtypes = options.get("dtype")
    numeric = [n for n, kind in dtypes.items() if pd.api.types.is_numeric_dtype(kind)] if isinstance(dtypes, dict) else []
    try:
        text = pd.read_csv(path, **{**options, "dtype": str, "keep_default_na": False})
    except READ_FAILURES:
        return ""
    for name in (n for n in numeric if n in text.columns):
        values = text[name].str.strip()
        bad = np.flatnonzero((values != "") & pd.to_numeric(values, errors="coerce").isna())
        if len(bad):
            return f"line {int(bad[0]) + 2}: {name}={text[name].iat[bad[0]]!r} is not a number"
    return ""


def _missing(column: pd.Series) -> np.ndarray:
    """Null, NaN, or a string that is empty or blank."""
    blank = column.map(lambda v: isinstance(v, str) and not v.strip()) if column.dtype == object else False
    return np.asarray(column.isna() | blank, dtype=bool)


def _numbers(column: pd.Series, path: Path, source: str, expected: str, first_line: int) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        row = bad[0]
        raise DataError(f"{path}: line {first_line + int(column.index[row])}: {source}={column.iat[row]!r} is not a "
                        f"number; expected {expected}")
    return values


def _keys(column: pd.Series) -> pd.Series:
    """Ids as the source has them: integers (a numeric column read as float because of a missing value
    is integral again once that row is dropped) or strings."""
    return column.astype(np.int64) if pd.api.types.is_numeric_dtype(column) else column.astype(str)


def event_columns(frame: pd.DataFrame, fields: dict[str, str], path: Path, expected: str, first_line: int = 1,
                  texts: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The events of ``frame``: ``fields`` maps user, item, rating and timestamp to the source's column
    names; ``texts`` maps optional text columns (a review) to theirs, a missing text read as "". A row missing any of them is dropped and counted (``rows_without_<field>``), never read as NaN
    or as the string "None"; a rating or timestamp that is there but not a number is a DataError naming
    the line (``first_line``: the line of the frame's first row)."""
    missing = {field: _missing(frame[fields[field]]) for field in EVENT_FIELDS}
    notes = {f"rows_without_{field}": int(mask.sum()) for field, mask in missing.items()}
    keep = ~np.logical_or.reduce(list(missing.values()))
    kept = frame if keep.all() else frame[keep]
    events = pd.DataFrame({
        "user_key": _keys(kept[fields["user"]]),
        "item_key": _keys(kept[fields["item"]]),
        "timestamp": _numbers(kept[fields["timestamp"]], path, fields["timestamp"], expected, first_line).astype(np.int64),
        "rating": _numbers(kept[fields["rating"]], path, fields["rating"], expected, first_line).astype(np.float32),
    })
    for name, column in (texts or {}).items():
        events[name] = kept[column].fillna("").astype(str)
    return events.reset_index(drop=True), notes
