"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM: the first signal becomes an ``Interrupted`` exception at
the next point where the driver can stop cleanly, later ones are ignored while the harness stops Ray and
the processes it started (no traceback, whichever signal comes when); the run then exits 128 + the signal."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt: no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name
        self.exit_code = 128 + signum


_received: int | None = None  # the first stop signal of the current block
_raised = False


def stopping() -> bool:
    """Whether a stop signal has arrived in this ``signals_interrupt`` block."""
    return _received is not None


def check() -> None:
    """Raise Interrupted (once) if a stop signal has arrived. Called where the harness can stop cleanly,
    such as each step of Tune's loop: a signal handler that raised itself would raise inside Ray's
    compiled calls, which turn it into a SystemError."""
    global _raised
    if _received is not None and not _raised:
        _raised = True
        raise Interrupted(_received)


def _note(signum: int, frame: object) -> None:
    """Remember the first stop signal; later ones (a second Ctrl-C while stopping) change nothing."""
    global _received
    if _received is None:
        _received = signum


def install() -> None:
    """(Re)install the handlers: ``ray.init`` replaces SIGTERM's with one that aborts with a dump."""
    for sig in SIGNALS:
        signal.signal(sig, _note)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM are noted, and ``check`` raises Interrupted for the first; the handlers
    stay until the block is left, so a second signal while the harness stops does nothing."""
    global _received, _raised
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _received, _raised = None, False
    install()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received, _raised = None, False


def descendants() -> list[psutil.Process]:
    """Every process this one started, and theirs (Ray's GCS, raylet, agents and workers)."""
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def marked(marker: str) -> list[psutil.Process]:
    """Every process whose command line names ``marker`` (a run's Ray temp folder: its GCS, raylet, log
    monitor and any worker still starting, before it renames itself ``ray::...``)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.pid != os.getpid() and marker in " ".join(process.info["cmdline"] or ()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop_processes(processes: list[psutil.Process], grace: float = 2.0) -> list[psutil.Process]:
    """SIGTERM the ``processes`` that still run (each worker with its own process group), SIGKILL what is
    left after ``grace`` seconds; return those still alive after that (none, normally)."""
    own_group = os.getpgrp()
    for process in processes:
        try:
            group = os.getpgid(process.pid)
            if group == process.pid and group != own_group:
                os.killpg(group, signal.SIGTERM)  # a Ray worker leads its own group: its children too
            else:
                process.terminate()
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(alive, timeout=grace)
    return alive
