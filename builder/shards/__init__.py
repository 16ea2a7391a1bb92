"""Shard formats: one writer per format behind :class:`ShardWriter`."""

from __future__ import annotations

from ..errors import FgbgError
from .base import EncodedSample, ShardFile, ShardMeta, ShardWriter
from .hdf5 import Hdf5ShardWriter
from .tar import TarShardWriter

__all__ = [
    "FORMATS", "HDF5_LAYOUTS", "EncodedSample", "Hdf5ShardWriter", "ShardFile", "ShardMeta", "ShardWriter",
    "TarShardWriter",
    "parse_formats", "shard_name", "writer_class",
]

FORMATS: dict[str, type[ShardWriter]] = {"tar": TarShardWriter, "hdf5": Hdf5ShardWriter}
HDF5_LAYOUTS = ("encoded", "raw")


def writer_class(fmt: str) -> type[ShardWriter]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise FgbgError(f"unknown shard format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


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
    return f"shards/{shard:06d}{writer_class(fmt).extension}"
