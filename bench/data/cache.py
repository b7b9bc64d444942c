"""Prepared-dataset cache: Parquet files in a folder keyed by the checksums of the source files."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd


def _loader_fingerprint() -> str:
    """Checksum of the data-layer source code, so a changed loader never reads a stale cache."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cache_root() -> Path:
    """Where prepared datasets live: $USERLLM_BENCH_CACHE, else ~/.cache/userllm-bench."""
    env = os.environ.get("USERLLM_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "userllm-bench"


def file_checksum(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_key(name: str, sources: list[Path], options: str = "") -> str:
    """A folder name that changes whenever a source file, the loader or its options change."""
    digest = hashlib.sha256(f"{name}|{_loader_fingerprint()}|{options}".encode())
    for source in sorted(sources):
        digest.update(file_checksum(source).encode())
    return f"{name}-{digest.hexdigest()[:16]}"


def write_frames_atomically(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Write each frame as <folder>/<name>.parquet; the folder appears whole or not at all."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    for name, frame in frames.items():
        frame.to_parquet(staging / f"{name}.parquet", index=False)
    try:
        staging.rename(folder)
    except OSError:
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()
        if not folder.exists():
            raise


def read_frames(folder: Path, names: list[str]) -> dict[str, pd.DataFrame] | None:
    """The cached frames, or None when the folder is not there. A folder that is incomplete or holds a
    damaged file (truncated, overwritten) is removed, with a note, so that the caller rebuilds it."""
    if not folder.exists():
        return None
    try:
        return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names}
    except Exception as exc:  # pyarrow raises its own types (ArrowInvalid, OSError, ...) on damaged bytes
        print(f"note: the prepared-data cache {folder} is damaged ({type(exc).__name__}: {str(exc)[:120]}); "
              "rebuilding it", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        return None
