"""The per-process cache of open shard files: bounded, reused, safe across fork and threads."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from fgbg.readers.handles import HandleCache


def _files(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        p = tmp_path / f"{i}.bin"
        p.write_bytes(bytes([i]) * 100)
        paths.append(p)
    return paths


def _opener(p: Path, opened: list[str]) -> int:
    opened.append(p.name)
    return os.open(p, os.O_RDONLY)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_bounded_and_reused(tmp_path: Path) -> None:
    cache, opened = HandleCache(limit=3), []
    paths = _files(tmp_path, 5)
    base = _fd_count()
    for _ in range(2):
        for p in paths[:3]:
            assert cache.pread(str(p), lambda p=p: _opener(p, opened), 2, 10) == bytes([int(p.stem)]) * 2
    assert opened == ["0.bin", "1.bin", "2.bin"] and _fd_count() == base + 3  # opened once each
    for p in paths[3:]:
        cache.pread(str(p), lambda p=p: _opener(p, opened), 1, 0)
    assert len(cache) == 3 and _fd_count() == base + 3  # the least recently used were closed
    cache.pread(str(paths[0]), lambda: _opener(paths[0], opened), 1, 0)
    assert opened[-1] == "0.bin"  # evicted earlier, so opened again
    cache.forget({str(p) for p in paths})
    assert len(cache) == 0 and _fd_count() == base


def test_eviction_waits_for_a_read_in_flight(tmp_path: Path) -> None:
    """A descriptor evicted while a thread reads from it is closed when that read returns,
    never under it (its number could go to another file mid-read)."""
    cache = HandleCache(limit=1)
    a, b = _files(tmp_path, 2)
    h = cache._acquire(str(a), lambda: os.open(a, os.O_RDONLY))  # a reader holds a's descriptor...
    base = _fd_count()
    done = threading.Thread(target=cache.pread, args=(str(b), lambda: os.open(b, os.O_RDONLY), 1, 0))
    done.start()  # ...while another thread's read of b evicts it
    done.join()
    assert _fd_count() == base + 1 and len(cache) == 1  # a's descriptor still open: in use
    assert os.pread(h.fd, 3, 0) == b"\0\0\0"
    cache._return(h)
    assert _fd_count() == base  # closed by its last user
    cache.forget({str(b)})
    assert _fd_count() == base - 1


def _child_reads(path: str, cache: HandleCache, q: multiprocessing.Queue[object]) -> None:
    inherited = len(cache)  # the parent's descriptors are not this process's to use
    q.put((inherited, cache.pread(path, lambda: os.open(path, os.O_RDONLY), 4, 0), len(cache)))


def test_a_forked_child_opens_its_own(tmp_path: Path) -> None:
    cache = HandleCache()
    (p,) = _files(tmp_path, 1)
    cache.pread(str(p), lambda: os.open(p, os.O_RDONLY), 1, 0)
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(str(p), cache, q))
    child.start()
    assert q.get(timeout=30) == (0, b"\0\0\0\0", 1)
    child.join(30)
    assert child.exitcode == 0
    assert len(cache) == 1  # the parent's own entry is untouched
    cache.forget({str(p)})
