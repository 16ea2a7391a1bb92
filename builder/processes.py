"""Worker processes shared by build and verify: how many, and how each one starts.

Spawned, never forked (cv2/TensorFlow state must not be inherited, see NOTES.md), each
one tied to its parent's life (a builder killed with -9 leaves no orphan writing shards),
with OpenCV's own thread pool off (there is already one process per core).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["die_with_parent", "init_worker_process", "spawn_executor", "worker_count"]


def worker_count(workers: int | None) -> int:
    """Worker processes asked for: ``workers``, by default one per core."""
    return max(1, workers or os.cpu_count() or 1)


def die_with_parent() -> None:
    """Ask Linux to kill this process if its parent dies (no orphans after kill -9)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def init_worker_process() -> None:
    """Cheap per-process settings, run first in every worker."""
    import cv2

    die_with_parent()
    cv2.setNumThreads(1)


def spawn_executor(workers: int, initializer: Callable[..., None] = init_worker_process,
                   initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes. A ProcessPoolExecutor, not multiprocessing.Pool:
    a worker that dies (OOM killer, kill -9) fails the waiting call with BrokenProcessPool
    instead of leaving its task pending forever."""
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
