"""HDF5 shards: one ``.h5`` file per shard, for random access (map-style loaders).

Layout, chosen per dataset (``--hdf5-layout``), with names a person can read in ``h5ls``:

* ``encoded`` -- the same JPEG/PNG/JSON bytes as the tar shards, one contiguous ``uint8``
  dataset per field plus ``offsets`` (N+1): ``/image/bytes``, ``/image/offsets``, likewise
  ``/mask``, ``/depth``, ``/meta``. Small, and byte-identical to the tar members.
* ``raw`` -- decoded pixels, ``/image`` (N, H, W, 3), ``/mask`` (N, H, W), ``/depth``
  (N, h, w), chunked one sample per chunk, compressed with Zstd through ``hdf5plugin``
  (readers ``import hdf5plugin`` to register the filter) and checksummed (Fletcher-32, so
  a corrupted chunk is an error, not wrong pixels); ``/meta`` stays encoded JSON. The
  image is the JPEG decoded back, so readers see the same pixels as from the tar shards.

Both carry ``/keys`` (N,), ``/annotations`` (a compound table: index, bg, fg, flip,
placement, x, y, w, h, scale) and root attributes that make the file self-describing.
Files are written with ``libver="earliest"`` so old HDF5 tools open them, and without
timestamps, so equal builds give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from fgbg.readers.schema import MEMBERS, ZSTD_MEMBERS, format_version_of

from .base import EncodedSample, ShardFile, ShardMeta, ShardWriter

__all__ = ["ANNOTATION_DTYPE", "Hdf5ShardWriter"]

ANNOTATION_DTYPE = np.dtype([
    ("index", "<i8"), ("bg", "<i4"), ("fg", "<i4"), ("flip", "u1"), ("placement", "<i4"),
    ("x", "<i4"), ("y", "<i4"), ("w", "<i4"), ("h", "<i4"), ("scale", "<f8"),
])
_ENCODING = {"image": "jpeg", "mask": "png", "depth": "png", "instances": "png", "meta": "json"}
ZSTD_LEVEL = 3
RAW_BLOCK = 32  # raw samples buffered per HDF5 write call (per-call overhead dominates otherwise)


def _annotation_row(meta: dict[str, Any]) -> tuple[Any, ...]:
    return (meta["index"], meta["bg"]["index"], meta["fg"]["index"], meta["flip"], meta["placement"],
            meta["x"], meta["y"], meta["w"], meta["h"], meta["scale"])


class Hdf5ShardWriter(ShardWriter):
    extension = ".h5"

    @staticmethod
    def needs_pixels(meta: ShardMeta) -> bool:
        return meta.layout == "raw"

    def __init__(self, path: Path, meta: ShardMeta):
        super().__init__(path, meta)
        if meta.layout not in ("encoded", "raw"):
            raise ValueError(f"unknown HDF5 layout {meta.layout!r}")
        self._f = h5py.File(self.path, "w", libver="earliest")
        self._fields = (["image", "mask"] + (["depth"] if meta.depth_size else [])
                        + (["instances"] if meta.instances else []) + ["meta"])
        self._names = {**MEMBERS, **(ZSTD_MEMBERS if meta.members == "zstd" else {})}  # field -> member suffix
        self._blobs: dict[str, list[bytes]] = {f: [] for f in self._fields}
        self._rows: list[tuple[Any, ...]] = []
        self._keys: list[bytes] = []
        self._raw: dict[str, h5py.Dataset] = {}
        self._pending: dict[str, list[np.ndarray]] = {}
        self._flushed = 0
        if meta.layout == "raw":
            s, n = meta.size, meta.count
            shapes = {"image": (s, s, 3), "mask": (s, s)}
            if meta.depth_size:
                shapes["depth"] = (meta.depth_size[1], meta.depth_size[0])
            if meta.instances:
                shapes["instances"] = (s, s)
            for name, shape in shapes.items():
                self._raw[name] = self._f.create_dataset(
                    name, shape=(n, *shape), dtype=np.uint8, chunks=(1, *shape), fletcher32=True,
                    **hdf5plugin.Zstd(clevel=ZSTD_LEVEL),
                )

    def add(self, sample: EncodedSample) -> None:
        self._keys.append(sample.key.encode("ascii"))
        self._rows.append(_annotation_row(json.loads(sample.files["json"])))
        for field in self._fields:
            if field in self._raw:
                self._pending.setdefault(field, []).append(getattr(sample, field))
            else:
                self._blobs[field].append(sample.files[self._names[field]])
        if len(self._keys) - self._flushed >= RAW_BLOCK:
            self._flush()

    def _flush(self) -> None:
        end = len(self._keys)
        for field, arrays in self._pending.items():
            self._raw[field][self._flushed : end] = np.stack(arrays)
        self._pending = {}
        self._flushed = end

    def close(self) -> ShardFile:
        m, f = self.meta, self._f
        if len(self._keys) != m.count:
            raise ValueError(f"{self.path}: {len(self._keys)} samples written, {m.count} expected")
        if self._raw:
            self._flush()
        for field, blobs in self._blobs.items():
            if field in self._raw:
                continue
            g = f.create_group(field)
            g.attrs["encoding"] = "npy+zstd" if self._names[field].endswith(".npy.zst") else _ENCODING[field]
            g.create_dataset("bytes", data=np.frombuffer(b"".join(blobs), np.uint8))
            g.create_dataset("offsets", data=np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64))
        f.create_dataset("keys", data=np.array(self._keys, dtype=f"S{m.key_width}"))
        f.create_dataset("annotations", data=np.array(self._rows, dtype=ANNOTATION_DTYPE))
        version = format_version_of(m.instances, False, m.members == "zstd")
        attrs = {"format": "fgbg", "format_version": version, "layout": m.layout, "shard": m.shard,
                 "first": m.first, "count": m.count, "key_width": m.key_width, "image_size": [m.size, m.size],
                 "fields": self._fields, "compression": f"zstd({ZSTD_LEVEL})" if m.layout == "raw" else "none"}
        if m.depth_size:
            attrs["depth_size"] = [m.depth_size[1], m.depth_size[0]]
        for k, v in attrs.items():
            f.attrs[k] = v
        f.close()
        h = hashlib.sha256()
        with open(self.path, "rb+") as fh:
            os.fsync(fh.fileno())
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return ShardFile(self.path.stat().st_size, h.hexdigest())

    def abort(self) -> None:
        if self._f.id.valid:
            self._f.close()
        self.path.unlink(missing_ok=True)
