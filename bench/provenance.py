"""Which code made a record: the git commit (where there is one) and content hashes of the sources a
trial's numbers depend on, the harness core and the method's own package. A record made by other
sources is stale: ``bench run`` reruns it unless told to keep it, and reports mark suites that mix them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# harness modules that never change a trial's numbers: the driver side, reports and hand-run tools
NOT_CORE = ("cli.py", "runner.py", "ray_session.py", "run_plan.py", "trial_lines.py", "profile.py", "leakage.py",
            "provenance.py", "lock.py", "interrupt.py", "reaper.py", "report")


@cache
def hash_files(files: tuple[Path, ...]) -> str:
    """Short content hash of source files (their names and bytes, in the order given)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _python_files(folder: Path, exclude: tuple[str, ...] = ()) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.rglob("*.py")
                        if not any(part in exclude for part in p.relative_to(folder).parts)))


def harness_hash() -> str:
    """Hash of the harness core: every module under ``bench/`` that a trial runs."""
    return hash_files(_python_files(BENCH, NOT_CORE))


def method_hash(cls: type) -> str:
    """Hash of a method's own code: the package its class lives in (every module of it, since a method
    imports its siblings), or its module where it is a single file. The harness's hash covers bench/."""
    module = sys.modules[cls.__module__]
    path = Path(module.__file__).resolve()
    package = cls.__module__.split(".")[0]
    if package == "bench" or path.name != "__init__.py" and "." not in cls.__module__:
        return hash_files((path,))
    root = Path(sys.modules[package].__file__).resolve().parent
    return hash_files(_python_files(root))


@cache
def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` where tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCH, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=BENCH,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip()[:12] + ("+dirty" if dirty else "")


def sources(cls: type) -> dict[str, Any]:
    """What a record of method ``cls`` remembers of the code that made it."""
    return {"commit": git_commit(), "harness": harness_hash(), "method": method_hash(cls)}


def same_sources(record: dict[str, Any], cls: type) -> bool:
    """Whether ``record`` was made by the sources here (the commit may differ: only code counts)."""
    made = record.get("sources") or {}
    now = sources(cls)
    return made.get("harness") == now["harness"] and made.get("method") == now["method"]
