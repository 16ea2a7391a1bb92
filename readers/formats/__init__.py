"""Shard readers, one per format (the counterpart of ``builder/shards``).

The HDF5 reader is imported on first use: h5py and hdf5plugin cost ~0.1 s to import, which
every process that only reads or writes tar shards (each build worker, for one) would pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Member, ShardReader, ShardReadError
from .tar import TarShardReader

if TYPE_CHECKING:
    from .hdf5 import Hdf5ShardReader

__all__ = ["Hdf5ShardReader", "Member", "ShardReadError", "ShardReader", "TarShardReader", "reader_class"]

_READERS = {"tar": ("readers.formats.tar", "TarShardReader"), "hdf5": ("readers.formats.hdf5", "Hdf5ShardReader")}


def reader_class(fmt: str) -> type[ShardReader]:
    """The reader of shard format ``fmt`` ("tar" or "hdf5"), imported on first use."""
    module, name = _READERS[fmt]
    cls: type[ShardReader] = getattr(importlib.import_module(module), name)
    return cls


def __getattr__(name: str) -> Any:
    if name == "Hdf5ShardReader":
        return reader_class("hdf5")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
