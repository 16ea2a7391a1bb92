"""The one exception family readers raise: :class:`DatasetError`, always naming the file
(and the sample, where one is concerned). Subclasses say which kind of file was wrong."""

from __future__ import annotations

__all__ = ["DatasetError", "MetadataError", "ShardReadError"]


class DatasetError(ValueError):
    """The dataset or one of its files is missing or malformed; the message names it."""


class MetadataError(DatasetError):
    """A metadata file (manifest, receipt, HDF5 attributes) is malformed or lies."""


class ShardReadError(DatasetError):
    """A shard is missing, truncated or corrupt, or does not hold what its metadata says."""
