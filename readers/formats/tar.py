"""Reading WebDataset tar shards: a sequential walk, or one sample by its recorded offset."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import IO

from ..errors import ShardReadError
from ..tarwalk import TarFormatError, walk_tar
from .base import MEMBER_OF_FIELD, Member, ShardReader

__all__ = ["FIELD_OF_SUFFIX", "TarShardReader"]

FIELD_OF_SUFFIX = {suffix: field for field, suffix in MEMBER_OF_FIELD.items()}
_READ_BUFFER = 1 << 20


def _split(name: str) -> tuple[str, str]:
    key, _, suffix = name.partition(".")
    return key, suffix


class TarShardReader(ShardReader):

    def _open(self, buffering: int = _READ_BUFFER) -> IO[bytes]:
        try:
            return self.location.open(self.rel, buffering)
        except FileNotFoundError:
            raise ShardReadError(f"{self.path}: shard listed in the manifest is missing") from None

    def _group(self, members: Iterator[tuple[str, bytes]], fields: tuple[str, ...],
               stop_after_one: bool = False) -> Iterator[tuple[str, dict[str, Member]]]:
        current: str | None = None
        raw: dict[str, Member] = {}
        try:
            for name, data in members:
                key, suffix = _split(name)
                if key != current:
                    if current is not None:
                        yield current, raw
                        if stop_after_one:
                            return
                    current, raw = key, {}
                field = FIELD_OF_SUFFIX.get(suffix)
                if field is None:
                    warnings.warn(f"{self.path}: ignored member {name!r} (not an fgbg field)", stacklevel=2)
                elif field in fields:
                    raw[field] = data
        except TarFormatError as e:
            raise ShardReadError(str(e)) from None
        if current is not None:
            yield current, raw

    def iter_members(self, fields: tuple[str, ...], start: int = 0,
                     stop: int | None = None) -> Iterator[tuple[str, dict[str, Member]]]:
        count = self.entry.count
        stop = count if stop is None else min(stop, count)
        if start >= stop:
            return
        with self._open() as f:
            if start:
                f.seek(self._offset(start))
            local = start
            for key, members in self._group(walk_tar(f, str(self.path)), fields):
                if key != self.key(local):  # a reader never hands out a sample under another key
                    raise ShardReadError(f"{self.path}: sample {self.key(local)} expected, found {key!r}")
                yield key, members
                local += 1
                if local >= stop:
                    return
        raise ShardReadError(f"{self.path}: ends after {local - start} of samples {self.key(start)}-"
                             f"{self.key(stop - 1)} (the manifest says {count} samples)")

    def _offset(self, local: int) -> int:
        """The byte offset of sample ``local``, from the receipt (checked against the file once)."""
        return self.receipt().offsets[local]

    def read_members(self, local: int, fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        key = self.key(local)
        offset = self._offset(local)
        with self._open(buffering=65536) as f:
            f.seek(offset)
            for got, members in self._group(walk_tar(f, str(self.path)), fields, stop_after_one=True):
                if got == key:
                    return got, members
                raise ShardReadError(f"{self.path}: sample {key} expected at byte {offset}, found {got!r}")
        raise ShardReadError(f"{self.path}: no sample {key} at byte {offset}")
