"""Shard formats: one writer per format behind :class:`ShardWriter`.

The HDF5 writer is imported on first use (h5py and hdf5plugin cost ~0.1 s to import, paid
otherwise by every build worker that writes tar shards only).
"""

from __future__ import annotations

import importlib

from fgbg.readers.schema import EXTENSIONS

from ..errors import FgbgError
from .base import EncodedSample, ShardFile, ShardMeta, ShardWriter
from .tar import TarShardWriter

__all__ = [
    "FORMATS", "HDF5_LAYOUTS", "EncodedSample", "ShardFile", "ShardMeta", "ShardWriter",
    "TarShardWriter",
    "parse_formats", "shard_name", "writer_class",
]

FORMATS = EXTENSIONS  # format -> shard file extension (defined with the format records the readers check)
_WRITERS = {"tar": (".tar", "TarShardWriter"), "hdf5": (".hdf5", "Hdf5ShardWriter"),
            "tarzst": (".tarzst", "TarZstShardWriter")}
HDF5_LAYOUTS = ("encoded", "raw")


def writer_class(fmt: str) -> type[ShardWriter]:
    if fmt not in _WRITERS:
        raise FgbgError(f"unknown shard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module, name = _WRITERS[fmt]
    cls: type[ShardWriter] = getattr(importlib.import_module(module, __name__), name)
    return cls


def parse_formats(text: str) -> list[str]:
    """``"tar,hdf5"`` -> ``["tar", "hdf5"]`` (checked, no duplicates, order kept)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        writer_class(name)
    if not names or len(set(names)) != len(names):
        raise FgbgError(f"--format: expected a comma-separated list of {', '.join(FORMATS)}, got {text!r}")
    return names


def shard_name(shard: int, fmt: str) -> str:
    """Path of shard number ``shard`` in format ``fmt``, relative to the dataset."""
    if fmt not in FORMATS:
        writer_class(fmt)  # the named error
    return f"shards/{shard:06d}{FORMATS[fmt]}"
