"""One ``bench run`` per suite results folder at a time: an exclusive lock on ``<folder>/.lock`` that
holds its owner's PID, host and command. The kernel drops the lock when its owner dies, however it died,
so a lock left by a dead process is taken over; the file's text is only there to say who holds it."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import BenchError

LOCK_NAME = ".lock"


class Locked(BenchError):
    """Another live ``bench run`` holds the results folder."""


def _owner(text: str) -> str:
    try:
        owner = json.loads(text)
        return (f"PID {owner['pid']} on host {owner['host']} since {owner['started']} "
                f"({owner['command']})")
    except (ValueError, KeyError, TypeError):
        return "a process that left no owner line"


@contextmanager
def results_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock while inside; a Locked error naming the holder when another process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise Locked(f"{folder}: another bench run is using this results folder: {_owner(handle.read())}; "
                         f"wait for it to finish or stop it (its lock is {path})") from None
        handle.seek(0)
        left = handle.read().strip()
        if left:
            print(f"note: took over the lock of a run that is no longer running ({_owner(left)})", flush=True)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "command": " ".join(["bench", *sys.argv[1:]])}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # a clean exit leaves no owner behind
    finally:
        handle.close()  # releases the lock
