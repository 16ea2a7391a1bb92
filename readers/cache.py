"""A local disk cache of remote shards (``cache_dir=``), bounded and shared safely.

Later epochs should not touch the network: each shard is downloaded whole on first use (its
ranges fetched concurrently into a temporary file, then renamed into place, so a cached file
is always complete) and read from local disk afterwards -- memory-mapped, through the same
fast paths as a local dataset. The cache is shared by every process that opens the dataset
with the same ``cache_dir`` (DataLoader workers, ranks on one host): a per-file lock makes
one of them download a shard while the others wait for it instead of fetching it again.

``cache_limit`` bounds its size in bytes: after each download the least recently used
shards (by modification time, refreshed on every use) are deleted until the cache fits, the
one just fetched excepted. A process still reading an evicted shard keeps its open mapping
(POSIX unlink semantics); the next use downloads it again. Cached files are named after the
object's ETag (or size where the store has none), so a shard rewritten remotely is never
served from a stale copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from .remote import ObjectInfo

__all__ = ["ShardCache"]

_TEMP = ".part-"


class ShardCache:
    """Whole shard files of one dataset under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, url: str, limit: int | None = None):
        if limit is not None and limit <= 0:
            raise ValueError(f"cache_limit must be a positive number of bytes, got {limit}")
        self.dir = Path(root) / hashlib.sha256(url.encode()).hexdigest()[:16]
        self.limit = limit

    def path(self, rel: str, info: ObjectInfo) -> Path:
        """Where ``rel`` in the version ``info`` describes is cached."""
        stamp = info.etag.strip('"') if info.etag else f"size{info.size}"
        return self.dir / f"{rel}@{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"

    def ready(self, rel: str, info: ObjectInfo) -> Path | None:
        """The cached file of ``rel`` if it is complete now (never waits, never downloads)."""
        final = self.path(rel, info)
        return final if self._fresh(final, info) else None

    def get(self, rel: str, info: ObjectInfo, download: Callable[[Path], None]) -> Path:
        """The cached file of ``rel``, downloaded first (by ``download(tmp)``) if not there."""
        final = self.path(rel, info)
        if self._fresh(final, info):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{final}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching it: wait for its copy
            if not self._fresh(final, info):
                tmp = final.with_name(f"{final.name}{_TEMP}{os.getpid()}-{secrets.token_hex(4)}")
                try:
                    download(tmp)
                    if tmp.stat().st_size != info.size:
                        raise OSError(f"{rel}: downloaded {tmp.stat().st_size} bytes, the store said {info.size}")
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
        self.evict(keep=final)
        return final

    def _fresh(self, path: Path, info: ObjectInfo) -> bool:
        try:
            if path.stat().st_size != info.size:
                return False
            os.utime(path)  # used now: the last to be evicted
            return True
        except FileNotFoundError:
            return False

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used shards until the cache fits its limit; bytes freed."""
        if self.limit is None:
            return 0
        files = []
        for p in self.dir.rglob("*@*"):
            if p.name.endswith(".lock") or _TEMP in p.name:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                files.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in files)
        freed = 0
        for _, size, p in sorted(files, key=lambda f: f[0]):
            if total <= self.limit:
                break
            if p == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                total -= size
                freed += size
        return freed

    def size(self) -> int:
        """Bytes of complete cached shards."""
        return sum(p.stat().st_size for p in self.dir.rglob("*@*")
                   if not p.name.endswith(".lock") and _TEMP not in p.name)
