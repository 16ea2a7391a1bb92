"""The shard-writer interface shared by every output format.

A writer receives finished samples in key order and writes one shard file at a temporary
path; the commit protocol (``builder.commit``) then moves it into place. Writers hash
what they write as they write it, so committing never re-reads a shard.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["EncodedSample", "ShardFile", "ShardWriter"]


@dataclass(frozen=True)
class EncodedSample:
    """One sample ready for storage: its key, encoded files (tar member suffix -> bytes, in
    the order they are written) and the raw arrays for formats that store pixels."""

    key: str
    files: dict[str, bytes]
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    depth: np.ndarray | None = None


@dataclass
class ShardFile:
    """What a writer reports after closing: size, hash and where each sample starts
    (byte offset of its first member, for random access without scanning)."""

    bytes: int
    sha256: str
    offsets: list[int] = field(default_factory=list)


class ShardWriter(ABC):
    """Writes one shard. Use as a context manager; ``close`` returns the :class:`ShardFile`."""

    extension: str = ""

    def __init__(self, path: Path):
        self.path = Path(path)

    @abstractmethod
    def add(self, sample: EncodedSample) -> None:
        """Append one sample (keys arrive in increasing order)."""

    @abstractmethod
    def close(self) -> ShardFile:
        """Finish the file, fsync it, and report its size and hash."""

    @abstractmethod
    def abort(self) -> None:
        """Stop writing and delete the partial file."""

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
