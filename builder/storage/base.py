"""The dataset-store interface: where a dataset's files live, and how they appear atomically.

Two implementations: ``LocalStore`` (a folder; temp file + fsync + rename) and
``ObjectStore`` (any fsspec URL such as ``s3://bucket/prefix``; shards are written to a
local temp file and uploaded to their final key in one PUT or a completed multipart upload
-- object stores have no rename -- so a key either holds a whole object or nothing).
Both keep the commit protocol of docs/FORMAT.md §5: shard first, receipt after, manifest last.

Paths inside a store are relative POSIX strings such as ``"shards/000000.tar"``.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from fgbg.readers.errors import MetadataError
from fgbg.readers.fs import MAX_METADATA_BYTES

__all__ = ["TMP_MARK", "HashedInputs", "Store", "Upload"]

TMP_MARK = ".tmp-"
LOCK_NAME = ".fgbg.lock"


class Upload(Protocol):
    """A file being uploaded while it is written (see ``Store.upload_while_writing``)."""

    def finish(self, size: int) -> None:
        """The writer closed the file at ``size`` bytes: send the rest, make the object appear."""

    def abort(self) -> None:
        """Give up: nothing appears (called when the writer failed)."""


class HashedInputs:
    """One kind of input file whose sha256 the build record holds, ``(rel, sha256)`` pairs, read
    one at a time by a bounded decoder that checks each against its hash.

    ``fresh`` reads the stored objects themselves (what verify proves). Otherwise the first
    read asks the store to prefetch them all -- an object store fetches them concurrently into
    the host's verified copy -- because every shard uses nearly every input, in plan order.
    """

    def __init__(self, store: Store, files: Sequence[tuple[str, str]], fresh: bool = False):
        self.store = store
        self.files = files
        self.fresh = fresh
        self._prefetched = fresh

    def read(self, rel: str, sha256: str) -> bytes:
        if not self._prefetched:
            self._prefetched = True
            self.store.prefetch_inputs(self.files)
        return self.store.read_bytes(rel) if self.fresh else self.store.read_input(rel, sha256)


class Store(ABC):
    """A dataset location. Picklable: workers receive the store itself."""

    url: str

    @abstractmethod
    def check_writable(self) -> None:
        """Fail early, naming the location, if a dataset cannot be written there."""

    @abstractmethod
    def create(self) -> None:
        """Make the dataset's folders (no-op where folders do not exist)."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[object]:
        """Exclusive access for one builder; a second gets ``LockedError``."""

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def size(self, rel: str) -> int: ...

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes: ...

    def read_metadata(self, rel: str) -> bytes:
        """A metadata file's bytes (manifest, record, receipt): its size is a fact checked before
        anything is read, so a file claiming to be metadata cannot make fgbg allocate gigabytes."""
        size = self.size(rel)
        if size > MAX_METADATA_BYTES:
            raise MetadataError(f"{rel}: {size} bytes, over the {MAX_METADATA_BYTES}-byte bound of a metadata file")
        return self.read_bytes(rel)

    def read_input(self, rel: str, sha256: str) -> bytes:
        """An input file the build record says hashes to ``sha256`` (the caller still checks:
        a store may serve it from a local copy, never unchecked bytes it did not prove)."""
        return self.read_bytes(rel)

    def prefetch_inputs(self, files: Sequence[tuple[str, str]]) -> None:
        """Make ``(rel, sha256)`` input files cheap to read next (object stores: fetched
        concurrently into a local copy). A file that cannot be fetched is left for
        :meth:`read_input` to report."""

    def write_input(self, rel: str, data: bytes) -> None:
        """Store an input file (``write_atomic``; object stores also keep a local copy)."""
        self.write_atomic(rel, data)

    @abstractmethod
    def listdir(self, folder: str = "") -> list[str]:
        """Names (not paths) of the entries directly inside ``folder`` ("" = the root)."""

    @abstractmethod
    def temp_path(self, rel: str) -> Path:
        """A fresh *local* path to write the content of ``rel`` before it is committed."""

    @abstractmethod
    def commit(self, tmp: Path, rel: str) -> None:
        """Make the fully written, fsynced local file ``tmp`` appear as ``rel``, atomically."""

    def upload_while_writing(self, tmp: Path, rel: str) -> Upload | None:
        """Start sending ``tmp`` to ``rel`` while a writer still appends to it (object stores
        that can; None elsewhere: ``commit`` does it all). ``Upload.finish`` replaces
        ``commit``; the object appears only when finished, whole."""
        return None

    @abstractmethod
    def write_atomic(self, rel: str, data: bytes) -> None:
        """Make ``data`` appear as ``rel`` atomically (skipped if already identical)."""

    def write_atomic_chunks(self, rel: str, chunks: Iterable[bytes]) -> str:
        """Make the concatenated ``chunks`` appear as ``rel`` atomically and return their
        sha256, never holding more than one chunk: written to a local temp file while hashed,
        committed unless the stored file already holds exactly those bytes (a finished build
        rerun rewrites nothing). For files that grow with the dataset (the index: 4 GB at 100M)."""
        tmp = self.temp_path(rel)
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            try:
                same = self.size(rel) == size and self.sha256(rel) == digest
            except FileNotFoundError:
                same = False
            if not same:
                self.commit(tmp, rel)
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    @abstractmethod
    def remove(self, rel: str) -> None: ...

    def existing(self) -> bool:
        """Whether the dataset location holds anything yet (before ``create``)."""
        return bool(self.listdir(""))

    def discard_new(self) -> None:
        """Undo ``create`` (and whatever a failed start wrote) for a dataset that held nothing
        before: a failed first build leaves no folder behind. Object stores: nothing to undo
        beyond the lock, which the lease releases."""

    @abstractmethod
    def remove_stale_temps(self) -> list[str]:
        """Delete temporaries left by dead builders (only while holding the lock)."""

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        h.update(self.read_bytes(rel))
        return h.hexdigest()
