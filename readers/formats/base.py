"""The shard-reader interface: one class per format, mirroring ``builder/shards``.

A shard reader hands back each sample's *members* -- encoded bytes (``bytes``) or, for
formats that store pixels, ready arrays (``numpy.ndarray``) -- keyed by field name
(``image``, ``mask``, ``depth``, ``meta``). Decoding is the dataset's job, so converting
between formats can copy bytes without ever decoding them.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MetadataError, ShardReadError
from ..fs import Location
from ..schema import MEMBERS, ReceiptRecord, ShardEntry, parse_receipt

if TYPE_CHECKING:
    from ..readahead import ReadAhead

__all__ = ["MEMBER_OF_FIELD", "Member", "ShardReadError", "ShardReader"]

#: sample field -> tar member suffix, in the order builds write them (defined with the format records)
MEMBER_OF_FIELD = MEMBERS

Member = bytes | memoryview | np.ndarray


class ShardReader(ABC):
    """Reads one shard file of a dataset; opened lazily, safe to pickle (no handles kept)."""

    #: hand out encoded members as zero-copy views of the read buffer or mapped file where the
    #: format can (set by datasets opened with ``decode=False``: no copy the caller did not ask for)
    views = False

    def __init__(self, location: Location, entry: ShardEntry, key_width: int, members: Mapping[str, str]):
        """``members``: field -> member suffix of every field the dataset's samples hold (its
        manifest's ``fields``): a sample that holds another set, or a field twice, is refused
        whole, so a reader never hands out a sample pieced together from two."""
        self.location = location
        self.rel = entry.name
        self.entry = entry
        self.key_width = key_width
        self.members = dict(members)

    @functools.cached_property
    def path(self) -> str:
        """The shard's full path or URL, for messages: made when first needed (a dataset of
        100,000 shards makes 100,000 readers at open; joining their paths was most of it)."""
        return str(self.location.path(self.rel))

    @abstractmethod
    def iter_members(self, fields: tuple[str, ...], start: int = 0, stop: int | None = None,
                     ahead: ReadAhead | None = None) -> Iterator[tuple[str, dict[str, Member]]]:
        """(key, {field: member}) for samples ``start..stop-1`` of the shard (local
        positions, default all), in key order, read sequentially; ``ahead``: a remote read's
        read-ahead, for formats read by windows (others ignore it)."""

    @abstractmethod
    def read_members(self, local: int, fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        """The ``local``-th sample of the shard, without reading the others."""

    def plan_many(self, locals_: Sequence[int]) -> list[tuple[list[int], int, int]]:
        """The byte ranges that fetch samples ``locals_`` -- (a run of local positions, its
        first byte, its end) -- for formats read by ranges (tar, .tar.zst); none otherwise."""
        return []

    def read_many(self, locals_: Sequence[int], fields: tuple[str, ...],
                  fetched: Sequence[bytes] | None = None) -> list[tuple[str, dict[str, Member]]]:
        """Samples ``locals_`` (any order, repeats allowed), in that order; formats that can
        coalesce neighbouring reads override this (``fetched``: the bytes of their
        :meth:`plan_many` ranges, already read)."""
        return [self.read_members(k, fields) for k in locals_]

    def close(self) -> None:
        """Drop open handles (they are reopened on demand)."""
        self.location.forget([self.rel])

    _receipt: ReceiptRecord | None = None

    def receipt(self) -> ReceiptRecord:
        """The shard's receipt, parsed and checked against the shard's real size (once)."""
        if self._receipt is None:
            rel = self.rel + ".json"
            where = str(self.location.path(rel))
            try:
                data = self.location.read_bytes(rel)
                size = self.location.size(self.rel)
            except OSError as e:
                raise ShardReadError(f"{where}: cannot read the shard's receipt ({e})") from None
            record = parse_receipt(data, where, size=size)
            if (record.count, record.first) != (self.entry.count, self.entry.first):
                raise MetadataError(f"{where}: samples {record.first}+{record.count}, the manifest says "
                                    f"{self.entry.first}+{self.entry.count}")
            self._receipt = record
        return self._receipt

    def key(self, local: int) -> str:
        """The key the ``local``-th sample of this shard must have."""
        return f"{self.entry.first + local:0{self.key_width}d}"
