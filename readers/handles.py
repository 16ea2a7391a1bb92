"""A bounded, per-process cache of open local shard files for positional reads.

Random access used to open the shard file for every ``ds[i]``: an ``open``/``close`` pair
costs about as much as reading the sample. Here each process keeps up to ``LIMIT`` read-only
descriptors and reads with ``os.pread`` (no shared file position, so threads may read the
same file at once).

Why not simply keep file objects on the readers: datasets are pickled into DataLoader
workers and forked; a descriptor must never cross a process boundary silently. The cache
is keyed by process id: a forked child drops (closes its copies of) what its parent had
open and opens its own. A descriptor evicted while another thread is reading from it is
closed only when that read returns -- closing it earlier could hand its number to another
file mid-read.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

__all__ = ["LIMIT", "HandleCache", "handles"]

LIMIT = 64  # open shards per process; far below the usual 1024 descriptors


@dataclass
class _Handle:
    fd: int
    users: int = 0
    evicted: bool = False


class HandleCache:
    """Open descriptors by path, least recently used closed first."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: OrderedDict[str, _Handle] = OrderedDict()

    def _after_fork(self) -> None:
        """In a forked child: its copies of the parent's descriptors are closed, not reused
        (the child has one thread; no read of it is in flight)."""
        for h in self._open.values():
            with suppress(OSError):
                os.close(h.fd)
        self._open.clear()
        self._pid = os.getpid()

    def pread(self, path: str, opener: Callable[[], int], size: int, offset: int) -> bytes:
        """``size`` bytes at ``offset`` of ``path`` (``opener`` opens it when it is not cached;
        its errors pass through)."""
        h = self._acquire(path, opener)
        try:
            return os.pread(h.fd, size, offset)
        finally:
            self._return(h)

    def _acquire(self, path: str, opener: Callable[[], int]) -> _Handle:
        with self._lock:
            if os.getpid() != self._pid:
                self._after_fork()
            h = self._open.get(path)
            if h is None:
                h = _Handle(opener())
                self._open[path] = h
                self._evict()
            else:
                self._open.move_to_end(path)
            h.users += 1
            return h

    def _return(self, h: _Handle) -> None:
        with self._lock:
            h.users -= 1
            if h.evicted and h.users == 0:
                os.close(h.fd)

    def _evict(self) -> None:
        while len(self._open) > self.limit:
            _, old = self._open.popitem(last=False)
            self._release(old)

    @staticmethod
    def _release(h: _Handle) -> None:
        if h.users == 0:
            os.close(h.fd)
        else:
            h.evicted = True  # closed by its last user

    def forget(self, paths: set[str]) -> None:
        """Close the descriptors of ``paths`` (a dataset being closed)."""
        with self._lock:
            if os.getpid() != self._pid:
                self._after_fork()
                return
            for p in [p for p in self._open if p in paths]:
                self._release(self._open.pop(p))

    def __len__(self) -> int:
        with self._lock:
            return 0 if os.getpid() != self._pid else len(self._open)


#: the process's cache (one per process, whatever the number of datasets open)
handles = HandleCache()
