"""Where a dataset is read from: a local folder or any fsspec URL (``s3://``, ``memory://``...).

One small class so every reader opens files the same way. Each Location keeps its own
local descriptors (:mod:`readers.handles`): a dataset opened once reads the shard files as
they were when it first touched them, as the HDF5 reader always has -- one repaired since
is seen by opening the dataset again. Remote shards are opened as
seekable fsspec files (ranged reads: a shard streams without being downloaded first);
with ``cache_dir`` each shard is copied to local disk on first use and read from there
afterwards (fsspec's ``filecache``), so later epochs do not touch the network.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from .errors import DatasetError
from .handles import handles

__all__ = ["MAX_METADATA_BYTES", "Location"]

_OPENED = itertools.count()
MAX_METADATA_BYTES = 1 << 28  # 256 MiB: a 100M-sample manifest is far below; a hostile file is refused


class Location:
    """A dataset root. ``open(rel)`` returns a binary file; ``rel`` is a POSIX path inside it."""

    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None):
        text = str(url)
        self.url = text.rstrip("/")
        self.remote = "://" in text and not text.startswith("file://")
        self.storage_options = dict(storage_options or {})
        self.cache_dir = str(cache_dir) if cache_dir else None
        self._fs: Any = None
        self._token = f"{os.getpid()}-{next(_OPENED)}"  # its own descriptors in the handle cache
        self._checked: set[str] = set()  # names already held to _inside
        if not self.remote:
            self.root = Path(text[len("file://"):] if text.startswith("file://") else text)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None  # filesystems (sessions, sockets) are rebuilt in each process
        return state

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            from .extras import filesystem_error

            protocol = self.url.split("://", 1)[0]
            # No listings cache: a reader asks for files by name, and a listing cached by the
            # same (shared) filesystem instance before a file was written made fsspec report that
            # file missing afterwards (seen on S3 while a build's retried shard was committed)
            options = {"use_listings_cache": False, **self.storage_options}
            try:
                if self.cache_dir:
                    self._fs = fsspec.filesystem("filecache", target_protocol=protocol,
                                                 target_options=options, cache_storage=self.cache_dir)
                else:
                    self._fs = fsspec.filesystem(protocol, **options)
            except ImportError as e:
                raise filesystem_error(protocol, e) from e
        return self._fs

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
        data: bytes = self.fs.cat_file(self.path(rel), start=start, end=end)
        return data

    def read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        """Many ``(rel, start, end)`` byte ranges at once: remotely one batch of concurrent
        ranged GETs (fsspec's ``cat_ranges``; async stores such as S3 keep them all in flight),
        so a random batch costs one round trip instead of one per range; locally ``pread``s."""
        if not self.remote:
            return [self.read_range(rel, start, end) for rel, start, end in ranges]
        for rel, _, _ in ranges:
            if rel not in self._checked:
                self._checked.add(self._inside(rel))
        paths = [self.path(rel) for rel, _, _ in ranges]
        out = self.fs.cat_ranges(paths, [a for _, a, _ in ranges], [b for _, _, b in ranges], on_error="return")
        for got in out:
            if isinstance(got, BaseException):
                raise got
        return [bytes(got) for got in out]

    @contextmanager
    def mapped(self, rel: str) -> Iterator[mmap.mmap | None]:
        """``rel`` memory-mapped read-only (local, non-empty files), else None: sequential
        readers slice members straight out of the page cache -- one copy, not a read into a
        buffer and a second copy out of it."""
        if self.remote:
            yield None
            return
        fd = self._open_fd(self._inside(rel))
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
        """Close the cached descriptors of ``rels`` (nothing to do remotely)."""
        if not self.remote:
            handles.forget({f"{self._token}:{r}" for r in rels})

    def read_bytes(self, rel: str, limit: int = MAX_METADATA_BYTES) -> bytes:
        """The whole of a (metadata) file, refused when larger than ``limit``: its size is
        checked before anything is read, so a huge file costs nothing."""
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
        return int(self.fs.size(self.path(rel)))

    def exists(self, rel: str) -> bool:
        self._inside(rel)
        if not self.remote:
            return (self.root / rel).is_file()
        return bool(self.fs.exists(self.path(rel)))
