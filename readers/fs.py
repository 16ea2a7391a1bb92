"""Where a dataset is read from: a local folder or any fsspec URL (``s3://``, ``memory://``...).

One small class so every reader opens files the same way. Remote shards are opened as
seekable fsspec files (ranged reads: a shard streams without being downloaded first);
with ``cache_dir`` each shard is copied to local disk on first use and read from there
afterwards (fsspec's ``filecache``), so later epochs do not touch the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

__all__ = ["Location"]


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
            try:
                if self.cache_dir:
                    self._fs = fsspec.filesystem("filecache", target_protocol=protocol,
                                                 target_options=self.storage_options, cache_storage=self.cache_dir)
                else:
                    self._fs = fsspec.filesystem(protocol, **self.storage_options)
            except ImportError as e:
                raise filesystem_error(protocol, e) from e
        return self._fs

    def path(self, rel: str) -> str:
        return f"{self.url}/{rel}" if self.remote else str(self.root / rel)

    def open(self, rel: str, buffering: int = 1 << 20) -> IO[bytes]:
        """Open ``rel`` for reading; FileNotFoundError if it is missing."""
        if not self.remote:
            return open(self.root / rel, "rb", buffering=buffering)
        f: IO[bytes] = self.fs.open(self.path(rel), "rb", block_size=max(buffering, 1 << 16))
        return f

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).is_file()
        return bool(self.fs.exists(self.path(rel)))
