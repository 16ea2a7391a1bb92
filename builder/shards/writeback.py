"""Early writeback of a shard being written, so that its final fsync does not stall a worker.

A shard (~12 MB) is fsynced before it is committed; left to the end, that fsync waits ~10 ms
for the device while the worker's core idles. Asking Linux to start writing each finished
stretch (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which returns at once) overlaps the
device's work with the compositing of the next samples. Durability is unchanged: the
commit still fsyncs. Elsewhere (no ``sync_file_range``) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

__all__ = ["WRITEBACK_EVERY", "Writeback"]

WRITEBACK_EVERY = 4 << 20  # bytes between two requests
_SYNC_FILE_RANGE_WRITE = 2


def _libc_call() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _libc_call()


class Writeback:
    """Tracks how much of a file was written and starts writeback every ``every`` bytes."""

    def __init__(self, fd: int, every: int = WRITEBACK_EVERY):
        self.fd = fd
        self.every = every
        self.started = 0  # bytes already handed to the kernel for writing

    def written(self, end: int) -> None:
        """The file now holds ``end`` bytes (all flushed to the OS)."""
        if _SYNC_FILE_RANGE is not None and end - self.started >= self.every:
            _SYNC_FILE_RANGE(self.fd, self.started, end - self.started, _SYNC_FILE_RANGE_WRITE)  # best effort
            self.started = end
