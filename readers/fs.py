"""Where a dataset is read from: a local folder or any fsspec URL (``s3://``, ``memory://``...).

One small class so every reader opens files the same way. Each Location keeps its own
local descriptors (:mod:`readers.handles`): a dataset opened once reads the shard files as
they were when it first touched them, as the HDF5 reader always has -- one repaired since
is seen by opening the dataset again.

Remotely, byte ranges go through one :class:`~readers.remote.RangeFetcher` per process
(concurrent, retried, length-checked; on S3 conditional on the ETag first seen, so a file
rewritten while the dataset is open is an error naming it); what the store says about a
file (size, ETag) is asked once and kept. With ``cache_dir`` every shard is downloaded whole
on first use into a bounded, shared :class:`~readers.cache.ShardCache` and read from local
disk afterwards, through the local fast paths, so later epochs do not touch the network.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from .cache import ShardCache
from .errors import DatasetError
from .handles import handles
from .remote import ObjectInfo, RangeFetcher, quiet_dropped_connections

__all__ = ["MAX_METADATA_BYTES", "Location"]

_OPENED = itertools.count()
MAX_METADATA_BYTES = 1 << 28  # 256 MiB: a 100M-sample manifest is far below; a hostile file is refused
_BEHIND: tuple[int, ThreadPoolExecutor] | None = None


def _behind_pool() -> ThreadPoolExecutor:
    """This process's two threads for shard downloads behind random reads (made again after
    a fork: a thread pool does not survive one)."""
    global _BEHIND
    if _BEHIND is None or _BEHIND[0] != os.getpid():
        _BEHIND = (os.getpid(), ThreadPoolExecutor(2, thread_name_prefix="fgbg-cache-behind"))
    return _BEHIND[1]


CHUNK = 8 << 20  # bytes per ranged GET of a whole-file download (measured: tools/bench.py cloud)
CONNECTIONS = 16  # requests in flight per process, by default


class Location:
    """A dataset root. ``open(rel)`` returns a binary file; ``rel`` is a POSIX path inside it."""

    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None, cache_limit: int | None = None,
                 connections: int = CONNECTIONS):
        text = str(url)
        self.url = text.rstrip("/")
        self.remote = "://" in text and not text.startswith("file://")
        self.storage_options = dict(storage_options or {})
        self.cache_dir = str(cache_dir) if cache_dir else None
        if connections < 1:
            raise DatasetError(f"connections must be >= 1, got {connections}")
        self.connections = connections
        self.cache = ShardCache(cache_dir, self.url, cache_limit) if cache_dir and self.remote else None
        self._fs: Any = None
        self._fetcher: RangeFetcher | None = None
        self._behind: dict[str, Future[Path]] = {}  # cache_dir: shards downloading while ranges are read
        self._pid = os.getpid()
        self._infos: dict[str, ObjectInfo] = {}
        self._token = f"{os.getpid()}-{next(_OPENED)}"  # its own descriptors in the handle cache
        self._checked: set[str] = set()  # names already held to _inside
        if not self.remote:
            self.root = Path(text[len("file://"):] if text.startswith("file://") else text)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None  # filesystems (sessions, sockets) are rebuilt in each process
        state["_fetcher"] = None
        state["_behind"] = {}
        return state

    @property
    def fs(self) -> Any:
        if self._pid != os.getpid():  # forked (a DataLoader worker): sessions and loops are the parent's
            self._fs = self._fetcher = None
            self._behind = {}
            self._pid = os.getpid()
        if self._fs is None:
            import fsspec

            from .extras import filesystem_error

            protocol = self.url.split("://", 1)[0]
            # No listings cache: a reader asks for files by name, and a listing cached by the
            # same (shared) filesystem instance before a file was written made fsspec report that
            # file missing afterwards (seen on S3 while a build's retried shard was committed)
            options = {"use_listings_cache": False, **self.storage_options}
            if protocol in ("s3", "s3a"):  # botocore pools 10 connections: fewer than the requests in flight
                config = dict(options.get("config_kwargs") or {})
                config.setdefault("max_pool_connections", max(10, 2 * self.connections))
                options["config_kwargs"] = config
            try:
                self._fs = fsspec.filesystem(protocol, **options)
            except ImportError as e:
                raise filesystem_error(protocol, e) from e
            quiet_dropped_connections(self._fs)
        return self._fs

    @property
    def fetcher(self) -> RangeFetcher:
        """This process's concurrent ranged reader (remote datasets)."""
        fs = self.fs
        if self._fetcher is None:
            self._fetcher = RangeFetcher(fs, self.connections)
        return self._fetcher

    def info(self, rel: str) -> ObjectInfo:
        """Size and ETag of ``rel`` as the store first told this dataset (one HEAD, kept:
        reads that follow are held to this version)."""
        got = self._infos.get(rel)
        if got is None:
            detail = self.fs.info(self.path(self._inside(rel)))
            etag = detail.get("ETag") or detail.get("etag")
            got = self._infos[rel] = ObjectInfo(int(detail["size"]), str(etag) if etag else None)
        return got

    def cached(self, rel: str) -> Path:
        """The local copy of the remote file ``rel`` in the shard cache (downloaded first if
        absent: whole, its ranges fetched concurrently)."""
        assert self.cache is not None
        info = self.info(rel)
        return self.cache.get(rel, info, lambda tmp: self.download(rel, tmp, info))

    def _ready(self, rel: str) -> Path | None:
        """``cache_dir``, random reads: the shard's local copy if it is complete; else None, with
        its download started in the background. A random read on a shard not cached yet is
        served by one ranged GET now, not after the whole shard arrived (the first touch of
        each shard cost a whole download before); later reads of it are local."""
        assert self.cache is not None
        info = self.info(rel)
        local = self.cache.ready(rel, info)
        if local is None:
            _ = self.fs  # resets the per-process state after a fork first
            job = self._behind.get(rel)
            if job is None or (job.done() and job.exception() is not None):  # failed: tried again on use
                self._behind[rel] = _behind_pool().submit(self.cached, rel)
        return local

    def download(self, rel: str, local: Path, info: ObjectInfo | None = None) -> None:
        """``rel`` copied whole into the new local file ``local``: ranges of CHUNK bytes with
        up to ``connections`` in flight, each written where it belongs as it arrives (memory:
        the ranges in flight)."""
        info = info or self.info(rel)
        path, fetcher = self.path(rel), self.fetcher
        pending: list[tuple[int, Any]] = []
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for start in range(0, info.size, CHUNK):
                if len(pending) >= self.connections:
                    at, fut = pending.pop(0)
                    os.pwrite(fd, fut.result(), at)
                pending.append((start, fetcher.submit(path, start, min(info.size, start + CHUNK), info)))
            for at, fut in pending:
                os.pwrite(fd, fut.result(), at)
        except BaseException:
            for _, fut in pending:
                fut.cancel()
            raise
        finally:
            os.close(fd)

    def path(self, rel: str) -> str:
        return f"{self.url}/{rel}" if self.remote else str(self.root / rel)

    def _inside(self, rel: str) -> str:
        """``rel`` if it names a file inside the dataset: relative, POSIX, no ``..`` or empty parts.
        Every open goes through here, so no name from a metadata file can reach outside."""
        parts = rel.split("/")
        if not rel or rel.startswith("/") or "\\" in rel or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
            raise DatasetError(f"{self.url}: {rel!r} is not a file name inside the dataset")
        return rel

    def _open_fd(self, rel: str) -> int:
        try:
            return os.open(self.root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise DatasetError(f"{self.path(rel)}: is a symbolic link; fgbg reads only the dataset's "
                                   "own files") from None
            raise

    def open(self, rel: str, buffering: int = 1 << 20) -> IO[bytes]:
        """Open ``rel`` for reading; FileNotFoundError if it is missing. Locally a symbolic link
        is refused (O_NOFOLLOW): a dataset's files are its own, never links to elsewhere."""
        self._inside(rel)
        if not self.remote:
            return os.fdopen(self._open_fd(rel), "rb", buffering=buffering)
        if self.cache is not None:
            return open(self.cached(rel), "rb", buffering=buffering)
        f: IO[bytes] = self.fs.open(self.path(rel), "rb", block_size=max(buffering, 1 << 16))
        return f

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes ``start..end-1`` of ``rel`` in one read: ``os.pread`` on a cached descriptor
        locally (see :mod:`readers.handles`), one ranged GET remotely. Callers take the range
        from checked metadata and bound it; a short result means the file is shorter."""
        if rel not in self._checked:
            self._checked.add(self._inside(rel))
        if not self.remote:
            return handles.pread(f"{self._token}:{rel}", lambda: self._open_fd(rel), end - start, start)
        got = self._remote_range(rel, start, end)
        return got if isinstance(got, bytes) else got.result()

    def _remote_range(self, rel: str, start: int, end: int) -> bytes | Future[bytes]:
        """A remote range: from the shard cache's complete copy (``cache_dir``), else one ranged
        GET put in flight, up to what the file holds (a range past its end reads short)."""
        if self.cache is not None and (local := self._ready(rel)) is not None:
            return handles.pread(f"{self._token}:{local}", lambda: os.open(local, os.O_RDONLY), end - start, start)
        info = self.info(rel)
        return self.fetcher.submit(self.path(rel), start, min(end, max(start, info.size)), info)

    def read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        """Many ``(rel, start, end)`` byte ranges at once: remotely one batch of concurrent
        ranged GETs (fsspec's ``cat_ranges``; async stores such as S3 keep them all in flight),
        so a random batch costs one round trip instead of one per range; locally ``pread``s."""
        if not self.remote:
            return [self.read_range(rel, start, end) for rel, start, end in ranges]
        got = [self._remote_range(rel, start, end) for rel, start, end in ranges]  # all in flight, then collected
        return [g if isinstance(g, bytes) else g.result() for g in got]

    @contextmanager
    def mapped(self, rel: str) -> Iterator[mmap.mmap | None]:
        """``rel`` memory-mapped read-only (local, non-empty files), else None: sequential
        readers slice members straight out of the page cache -- one copy, not a read into a
        buffer and a second copy out of it."""
        if self.remote and self.cache is None:
            yield None
            return
        fd = os.open(self.cached(rel), os.O_RDONLY) if self.remote else self._open_fd(self._inside(rel))
        try:
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if os.fstat(fd).st_size else None
        finally:
            os.close(fd)  # the mapping keeps its own reference to the file
        try:
            yield mm
        finally:
            if mm is not None:
                with suppress(BufferError):  # a view still alive (an error's traceback): freed with it
                    mm.close()

    def forget(self, rels: list[str]) -> None:
        """Close the cached descriptors of ``rels``."""
        if not self.remote:
            handles.forget({f"{self._token}:{r}" for r in rels})
        elif self.cache is not None:
            handles.forget({f"{self._token}:{self.cache.path(r, i)}" for r in rels if (i := self._infos.get(r))})

    def read_bytes(self, rel: str, limit: int = MAX_METADATA_BYTES) -> bytes:
        """The whole of a (metadata) file, refused when larger than ``limit``: its size is
        checked before anything is read, so a huge file costs nothing."""
        if self.remote:  # one HEAD (kept) and one GET, never through the shard cache
            size = self.info(rel).size
            if size > limit:
                raise DatasetError(f"{self.path(rel)}: {size} bytes, over the {limit}-byte bound of a metadata file")
            return self.fetcher.submit(self.path(rel), 0, size, self.info(rel)).result()
        with self.open(rel) as f:
            size = f.seek(0, os.SEEK_END)  # a fact, before anything is allocated (read(n) allocates n)
            if size > limit:
                raise DatasetError(f"{self.path(rel)}: {size} bytes, over the {limit}-byte bound of a metadata file")
            f.seek(0)
            return f.read(size)

    def size(self, rel: str) -> int:
        """The file's size in bytes (a fact metadata is checked against)."""
        self._inside(rel)
        if not self.remote:
            return os.lstat(self.root / rel).st_size
        return self.info(rel).size

    def exists(self, rel: str) -> bool:
        self._inside(rel)
        if not self.remote:
            return (self.root / rel).is_file()
        try:
            self.info(rel)
        except FileNotFoundError:
            return False
        return True
