"""The shard-writer interface shared by every output format.

A writer receives finished samples in key order and writes one shard file at a temporary
path; the commit protocol (``builder.storage`` + ``builder.receipts``) then moves it into
place. Writers report the file's size and sha256 and where each sample starts, so
committing never needs to parse a shard again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["EncodedSample", "ShardFile", "ShardMeta", "ShardWriter"]


@dataclass(frozen=True)
class EncodedSample:
    """One sample ready for storage: its key, encoded files (tar member suffix -> bytes, in
    the order they are written) and, for formats that store pixels, the arrays a reader of
    the encoded files would decode (the JPEG round-trip for the image)."""

    key: str
    files: dict[str, bytes]
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    depth: np.ndarray | None = None
    instances: np.ndarray | None = None  # --people: instance ids (0 = background, 1..K in paint order)


@dataclass(frozen=True)
class ShardMeta:
    """What a writer must know before the first sample: its key range and array shapes."""

    shard: int
    first: int
    count: int
    key_width: int
    size: int  # composite side
    depth_size: tuple[int, int] | None  # (w, h), None without depth
    layout: str = "encoded"  # HDF5 only: "encoded" bytes or "raw" pixels
    instances: bool = False  # --people: an instance-id map per sample (format 2)
    members: str | None = None  # "zstd": grey fields as zstd-compressed .npy (format 4); None: PNG


@dataclass
class ShardFile:
    """What a writer reports after closing: size, hash and where each sample starts
    (tar: byte offset of its first member; used for random access without scanning)."""

    bytes: int
    sha256: str
    offsets: list[int] = field(default_factory=list)


class ShardWriter(ABC):
    """Writes one shard. Use as a context manager; ``close`` returns the :class:`ShardFile`."""

    extension: str = ""
    #: Writes its file front to back and never goes back: what is on disk is final, so an
    #: object store may upload it while it is written (``Store.upload_while_writing``).
    append_only: bool = False

    def __init__(self, path: Path, meta: ShardMeta):
        self.path = Path(path)
        self.meta = meta

    @staticmethod
    def needs_pixels(meta: ShardMeta) -> bool:
        """True when ``add`` reads ``sample.image``/``mask``/``depth`` (decoded arrays)."""
        return False

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
