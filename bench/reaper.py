"""``python -m bench.reaper PID RAY_TEMP``: started beside a ``bench run`` with a local Ray, in a session
of its own; when that run dies without stopping Ray (kill -9, an out-of-memory kill), it stops every
process the run had started, so nothing of Ray is left running. It watches the run's process tree once a
second, and at the end also stops whatever names the run's Ray temp folder (a worker still starting)."""

from __future__ import annotations

import os
import sys
import time

import psutil

from bench.interrupt import marked, stop_processes


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int, ray_temp: str, every: float = 1.0, rounds: int = 3) -> None:
    """Remember ``pid``'s descendants while it lives; once it is gone, stop those still running and those
    naming ``ray_temp``, in a few rounds (a dying raylet may still start a worker)."""
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
    for _ in range(rounds):
        left = [p for p in started.values() if _alive(p)] + marked(ray_temp)  # psutil checks pids are not reused
        if not left:
            break
        stop_processes(left)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
