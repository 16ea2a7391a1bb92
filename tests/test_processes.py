"""Worker processes: counted from the machine by default, spawned, tied to their parent."""

from __future__ import annotations

import ctypes
import os
import signal

from fgbg.builder.processes import spawn_executor, worker_count


def _settings() -> tuple[int, int, int]:
    """(pid, OpenCV threads, parent-death signal) as seen inside a worker."""
    import cv2

    sig = ctypes.c_int(0)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
    return os.getpid(), cv2.getNumThreads(), sig.value


def test_worker_count() -> None:
    assert worker_count(3) == 3
    assert worker_count(None) == worker_count(0) == max(1, os.cpu_count() or 1)


def test_spawned_workers_are_set_up() -> None:
    with spawn_executor(2) as pool:
        pid, threads, sig = pool.submit(_settings).result()
    assert pid != os.getpid() and threads == 1 and sig == signal.SIGKILL
