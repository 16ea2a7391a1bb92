"""Reading HDF5 shards (``encoded`` or ``raw`` layout) with process-safe lazy handles.

HDF5 handles must never cross a ``fork`` or be pickled (the classic ``num_workers > 1``
failure): a reader opens its file on first use, remembers the PID that opened it, and
reopens after a fork; pickling drops the handle, so ``spawn`` workers open their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Zstd filter used by the raw layout)
import numpy as np

from .base import Member, ShardReader, ShardReadError

__all__ = ["Hdf5ShardReader"]

_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


class Hdf5ShardReader(ShardReader):
    _file: h5py.File | None = None
    _pid: int = -1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_file", None)
        state.pop("_pid", None)
        return state

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = None  # a handle inherited through fork is never used
            if not self.path.exists():
                raise ShardReadError(f"{self.path}: shard listed in the manifest is missing")
            try:
                f = h5py.File(self.path, "r")
                count = int(f.attrs["count"])
            except _H5_ERRORS as e:
                raise ShardReadError(f"{self.path}: not a readable HDF5 shard ({e})") from None
            if count != self.entry["count"]:
                raise ShardReadError(f"{self.path}: holds {count} samples, the manifest says {self.entry['count']}")
            self._file, self._pid = f, os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def _member(self, f: h5py.File, field: str, i: int) -> Member:
        node = f[field]
        if isinstance(node, h5py.Dataset):  # raw layout: pixels
            return np.asarray(node[i])
        start, stop = (int(v) for v in node["offsets"][i : i + 2])
        return bytes(node["bytes"][start:stop])

    def read_members(self, local: int, fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        f = self._h5()
        try:
            key = f["keys"][local].decode("ascii")
            return key, {field: self._member(f, field, local) for field in fields}
        except _H5_ERRORS as e:
            raise ShardReadError(f"{self.path}: sample {local} unreadable ({e})") from None

    def iter_members(self, fields: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Member]]]:
        f = self._h5()
        try:
            keys = [k.decode("ascii") for k in f["keys"][:]]
            blobs: dict[str, tuple[bytes, np.ndarray]] = {}
            for field in fields:
                node = f[field]
                if isinstance(node, h5py.Group):  # one read per field for the whole shard
                    blobs[field] = (node["bytes"][:].tobytes(), node["offsets"][:])
        except _H5_ERRORS as e:
            raise ShardReadError(f"{self.path}: unreadable ({e})") from None
        for i, key in enumerate(keys):
            members: dict[str, Member] = {}
            for field in fields:
                if field in blobs:
                    data, off = blobs[field]
                    members[field] = data[int(off[i]) : int(off[i + 1])]
                else:
                    try:
                        members[field] = np.asarray(f[field][i])
                    except _H5_ERRORS as e:
                        raise ShardReadError(f"{self.path}: sample {key} {field} unreadable ({e})") from None
            yield key, members
