"""Reading HDF5 shards (``encoded`` or ``raw`` layout) with process-safe lazy handles.

HDF5 handles must never cross a ``fork`` or be pickled (the classic ``num_workers > 1``
failure): a reader opens its file on first use, remembers the PID that opened it, and
reopens after a fork; pickling drops the handle, so ``spawn`` workers open their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Zstd filter used by the raw layout)
import numpy as np

from ..errors import MetadataError, ShardReadError
from ..schema import parse_hdf5_attributes
from .base import Member, ShardReader

if TYPE_CHECKING:
    from ..readahead import ReadAhead

__all__ = ["Hdf5ShardReader"]

_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
RAW_BLOCK = 32  # raw-layout samples read per HDF5 call when streaming


class Hdf5ShardReader(ShardReader):
    _file: h5py.File | None = None
    _pid: int = -1
    _cache: tuple[h5py.File, list[str], dict[str, np.ndarray], dict[str, h5py.Dataset]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_file", "_pid", "_cache"):
            state.pop(name, None)
        return state

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = self._cache = None  # a handle inherited through fork is never used
            if not self.location.exists(self.rel):
                raise ShardReadError(f"{self.path}: shard listed in the manifest is missing")
            try:
                source = self.location.root / self.rel if not self.location.remote else self.location.open(self.rel)
                f = h5py.File(source, "r")
                attrs = dict(f.attrs)
            except _H5_ERRORS as e:
                raise ShardReadError(f"{self.path}: not a readable HDF5 shard ({e})") from None
            try:
                declared = parse_hdf5_attributes(attrs, str(self.path))
                if (declared.count, declared.first) != (self.entry.count, self.entry.first):
                    raise ShardReadError(f"{self.path}: holds samples {declared.first}+{declared.count}, the "
                                         f"manifest says {self.entry.first}+{self.entry.count}")
                self._check_layout(f)
            except BaseException:
                f.close()  # a file that fails its checks is never kept open
                raise
            self._file, self._pid = f, os.getpid()
        return self._file

    def _check_layout(self, f: h5py.File) -> None:
        """Exactly the dataset's fields, and declared shapes against the count, before any data
        is read: a 200 KB file whose ``keys`` claims 2*10^8 entries must cost nothing. Offsets
        are read (count + 1 numbers, bounded by the count the manifest and the file agree on)
        and must run from 0 up to the blob's length without going back."""
        count = self.entry.count
        problems: list[str] = []
        keys = f.get("keys")
        if not isinstance(keys, h5py.Dataset) or keys.shape != (count,):
            problems.append(f"keys has shape {getattr(keys, 'shape', None)}, expected ({count},)")
        stored = sorted(name for name in f if name not in ("keys", "annotations"))
        if stored != sorted(self.members):  # a field missing or one the dataset does not have
            problems.append(f"holds fields {', '.join(stored) or 'none'}, the dataset's are {', '.join(self.members)}")
        for name, node in f.items():
            if name in ("keys", "annotations"):
                continue
            if isinstance(node, h5py.Group):
                offsets, blob = node.get("offsets"), node.get("bytes")
                if not isinstance(offsets, h5py.Dataset) or offsets.shape != (count + 1,) or \
                        not isinstance(blob, h5py.Dataset) or len(blob.shape) != 1:
                    problems.append(f"{name}: offsets/bytes do not describe {count} samples")
                    continue
                o = offsets[:].astype(np.int64)
                if count and (o[0] != 0 or o[-1] != blob.shape[0] or bool(np.any(np.diff(o) < 0))):
                    problems.append(f"{name}: offsets do not run from 0 to the end of its bytes")
            elif isinstance(node, h5py.Dataset) and (not node.shape or node.shape[0] != count):
                problems.append(f"{name} has shape {node.shape}, expected {count} samples")
        if problems:
            raise MetadataError(f"{self.path}: " + "; ".join(problems))

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._cache = None

    def _index(self, f: h5py.File) -> tuple[list[str], dict[str, np.ndarray], dict[str, h5py.Dataset]]:
        """Keys, offsets of every encoded field and the datasets, looked up once per open file
        (h5py path lookups cost more than reading a small sample)."""
        if self._cache is None or self._cache[0] is not f:
            keys = [k.decode("ascii", "replace") for k in f["keys"][:]]
            for local, key in enumerate(keys):
                if key != self.key(local):
                    raise ShardReadError(f"{self.path}: sample {self.key(local)} expected, /keys holds {key!r}")
            offsets = {name: node["offsets"][:] for name, node in f.items() if isinstance(node, h5py.Group)}
            data = {name: node["bytes"] if isinstance(node, h5py.Group) else node
                    for name, node in f.items() if name not in ("keys", "annotations")}
            self._cache = (f, keys, offsets, data)
        return self._cache[1], self._cache[2], self._cache[3]

    def read_members(self, local: int, fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        f = self._h5()
        try:
            keys, offsets, data = self._index(f)
            members: dict[str, Member] = {}
            for field in fields:
                if field in offsets:
                    start, stop = int(offsets[field][local]), int(offsets[field][local + 1])
                    members[field] = data[field][start:stop].tobytes()
                else:  # raw layout: pixels
                    members[field] = data[field][local]
            return keys[local], members
        except _H5_ERRORS as e:
            raise ShardReadError(f"{self.path}: sample {local} unreadable ({e})") from None

    def iter_members(self, fields: tuple[str, ...], start: int = 0, stop: int | None = None,
                     ahead: ReadAhead | None = None) -> Iterator[tuple[str, dict[str, Member]]]:
        f = self._h5()
        try:
            keys, offsets, data = self._index(f)
            stop = len(keys) if stop is None else stop
            if start >= stop:
                return
            # one read per field for the whole range; offsets re-based to the range's start
            lo = {field: int(offsets[field][start]) for field in fields if field in offsets}
            blobs = {field: data[field][lo[field] : int(offsets[field][stop])].tobytes() for field in lo}
        except _H5_ERRORS as e:
            raise ShardReadError(f"{self.path}: unreadable ({e})") from None
        raw = [field for field in fields if field not in offsets]
        for block_start in range(start, stop, RAW_BLOCK):
            block_stop = min(stop, block_start + RAW_BLOCK)
            try:
                block = {field: data[field][block_start:block_stop] for field in raw}  # one read per block
            except _H5_ERRORS as e:
                raise ShardReadError(f"{self.path}: samples {block_start}-{block_stop - 1} unreadable ({e})") from None
            for i in range(block_start, block_stop):
                members: dict[str, Member] = {}
                for field in fields:
                    if field in blobs:
                        a, b = int(offsets[field][i]) - lo[field], int(offsets[field][i + 1]) - lo[field]
                        members[field] = blobs[field][a:b]
                    else:
                        members[field] = block[field][i - block_start]
                yield keys[i], members
