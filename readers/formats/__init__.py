"""Shard readers, one per format (the counterpart of ``builder/shards``)."""

from __future__ import annotations

from .base import Member, ShardReader, ShardReadError
from .hdf5 import Hdf5ShardReader
from .tar import TarShardReader

__all__ = ["READERS", "Hdf5ShardReader", "Member", "ShardReadError", "ShardReader", "TarShardReader"]

READERS: dict[str, type[ShardReader]] = {"tar": TarShardReader, "hdf5": Hdf5ShardReader}
