"""A host-local copy of a remote dataset's input files, addressed by their sha256.

Why: every shard worker reads the stored inputs (``inputs/bg``, ``inputs/fg``...) and checks
each against the hash the build record holds; the plan's samples are a permutation of every
(bg, fg) pair, so each shard touches nearly all of them, and the bounded in-memory cache of
decoded images evicts and re-reads them. On a local disk a re-read is a page-cache copy; on an
object store it was a round trip each (a HEAD and a GET: 110 ms at 50 ms latency), one after
another, in every worker -- most of a build's time to a bucket. An input is immutable once
its hash is recorded, so a local file named by that hash is as good as the object: it is
re-hashed whenever it is read (a damaged cache file is dropped and fetched again), written
by atomic rename (several workers may fill it at once), and the folder is bounded in bytes
(least recently used files evicted). The builder seeds it with the files it uploads, so the
workers on the driver's host read nothing back.

Where: ``$FGBG_CACHE_DIR/inputs`` (default ``~/.cache/fgbg/inputs``), at most
``$FGBG_INPUT_CACHE_BYTES`` (default 4 GiB).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from ..depth.runtimes import cache_dir

__all__ = ["DEFAULT_LIMIT", "InputCache"]

DEFAULT_LIMIT = 4 << 30


def _limit() -> int:
    value = os.environ.get("FGBG_INPUT_CACHE_BYTES")
    return int(value) if value else DEFAULT_LIMIT


class InputCache:
    """Verified input files under ``root``, one per sha256 (see the module docstring)."""

    def __init__(self, root: Path | None = None, limit: int | None = None):
        self.root = root if root is not None else cache_dir() / "inputs"
        self.limit = limit if limit is not None else _limit()
        self._added = 0  # bytes written since the last eviction pass

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def get(self, sha256: str) -> bytes | None:
        """The file whose content hashes to ``sha256``, or None (absent, or damaged: dropped)."""
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return data

    def put(self, data: bytes, sha256: str | None = None) -> None:
        """Keep ``data`` (whose hash is ``sha256`` when the caller already proved it). Never
        fails the build: a cache that cannot be written only costs reads."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.is_file():
            return
        tmp = path.with_name(f".{digest}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        self._added += len(data)
        if self._added > self.limit // 16:
            self._added = 0
            self.evict()

    def evict(self) -> int:
        """Delete least recently used files until the folder fits its limit; bytes freed."""
        files: list[tuple[float, int, Path]] = []
        for path in self.root.glob("*/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        freed = 0
        for _, size, path in sorted(files):
            if total - freed <= self.limit:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                freed += size
        return freed
