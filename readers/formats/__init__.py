"""Shard readers, one per format (the counterpart of ``builder/shards``).

The HDF5 reader is imported on first use: h5py and hdf5plugin cost ~0.1 s to import, which
every process that only reads or writes tar shards (each build worker, for one) would pay.
"""

from __future__ import annotations

import importlib

from .base import Member, ShardReader, ShardReadError
from .tar import TarShardReader

__all__ = ["Member", "ShardReadError", "ShardReader", "TarShardReader", "reader_class"]

_READERS = {"tar": (".tar", "TarShardReader"), "hdf5": (".hdf5", "Hdf5ShardReader"),
            "tarzst": (".tarzst", "TarZstShardReader")}


def reader_class(fmt: str) -> type[ShardReader]:
    """The reader of shard format ``fmt`` ("tar", "tarzst" or "hdf5"), imported on first use."""
    module, name = _READERS[fmt]
    cls: type[ShardReader] = getattr(importlib.import_module(module, __name__), name)
    return cls

