"""Shard formats: one writer per format behind :class:`ShardWriter`."""

from __future__ import annotations

from ..errors import FgbgError
from .base import EncodedSample, ShardFile, ShardWriter
from .tar import TarShardWriter

__all__ = ["FORMATS", "EncodedSample", "ShardFile", "ShardWriter", "TarShardWriter", "writer_class"]

FORMATS: dict[str, type[ShardWriter]] = {"tar": TarShardWriter}


def writer_class(fmt: str) -> type[ShardWriter]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise FgbgError(f"unknown shard format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def shard_name(shard: int, fmt: str) -> str:
    """File name of shard number ``shard`` (relative to the dataset's ``shards/``)."""
    return f"{shard:06d}{writer_class(fmt).extension}"
