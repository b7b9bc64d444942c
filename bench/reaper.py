"""``python -m bench.reaper PID``: started beside a ``bench run`` with a local Ray, in a session of its own;
when that run dies without stopping Ray (kill -9, an out-of-memory kill), it stops every process the run
had started, so nothing of Ray is left running. It watches the run's process tree once a second."""

from __future__ import annotations

import os
import sys
import time

import psutil

from bench.interrupt import stop_processes


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int, every: float = 1.0) -> None:
    """Remember ``pid``'s descendants while it lives; once it is gone, stop those still running."""
    try:
        run = psutil.Process(pid)
    except psutil.Error:
        return
    started: dict[int, psutil.Process] = {}
    while _alive(run):
        try:
            for child in run.children(recursive=True):
                if child.pid != os.getpid():  # the run started this watcher too
                    started.setdefault(child.pid, child)
        except psutil.Error:
            pass  # a child exited while the tree was read: read it again next time
        time.sleep(every)
    stop_processes([p for p in started.values() if _alive(p)])  # psutil checks a pid still names the same process


if __name__ == "__main__":
    watch(int(sys.argv[1]))
