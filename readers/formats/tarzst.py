"""Reading ``.tar.zst`` shards: a tar shard stored as one zstd frame per sample.

The receipt's offsets are where each sample's frame starts, so every read is of whole frames:
a window of consecutive samples, one sample, or a batch, each in one read as for ``.tar``.
The frames read are decompressed -- each bounded first by the content size its header
declares (at most ``MAX_SPAN``; a frame that does not declare it, or yields something else, is
refused) -- into the plain tar bytes of those samples, which the tar reader's parsers split
into members exactly as they split a ``.tar`` shard. The general walker, for anything the fast
path does not take, reads the decompressed stream.
"""

from __future__ import annotations

import io
import mmap
from collections.abc import Sequence
from typing import IO

import zstandard

from ..decode import zstd_decompressor
from ..errors import ShardReadError
from .base import Member
from .tar import MAX_SPAN, TarShardReader

__all__ = ["TarZstShardReader"]


class _Plain:
    """Sample boundaries in a decompressed buffer, indexed by the shard's local sample numbers."""

    def __init__(self, first: int, starts: list[int]):
        self.first = first
        self.starts = starts

    def __getitem__(self, local: int) -> int:
        return self.starts[local - self.first]


class TarZstShardReader(TarShardReader):

    def _inflate(self, buf: bytes | mmap.mmap, base: int, locals_: Sequence[int],
                 ends: list[int]) -> tuple[bytes, _Plain]:
        """Frames of samples ``locals_`` (consecutive) out of ``buf`` (starting at byte ``base``
        of the shard), decompressed: the plain tar bytes and where each sample starts in them."""
        lo_local, hi_local = locals_[0], locals_[-1] + 1
        parts, starts, at = [], [0], 0
        d = zstd_decompressor()
        for k in range(lo_local, hi_local):
            frame = buf[ends[k] - base:ends[k + 1] - base]
            try:
                declared = zstandard.frame_content_size(frame)
                if not 0 <= declared <= MAX_SPAN:
                    raise ShardReadError(f"{self.path}: sample {self.key(k)}: its frame declares "
                                         f"{'no' if declared < 0 else declared} content size (bound {MAX_SPAN})")
                plain = d.decompress(frame, max_output_size=declared)
            except zstandard.ZstdError as e:
                raise ShardReadError(f"{self.path}: sample {self.key(k)}: not a zstd frame ({e})") from None
            if len(plain) != declared:
                raise ShardReadError(f"{self.path}: sample {self.key(k)}: frame holds {len(plain)} bytes, "
                                     f"declares {declared}")
            parts.append(plain)
            at += len(plain)
            starts.append(at)
        return b"".join(parts), _Plain(lo_local, starts)

    def _parse(self, buf: bytes | mmap.mmap, base: int, locals_: Sequence[int], ends: list[int],
               fields: tuple[str, ...]) -> list[tuple[str, dict[str, Member]]] | None:
        if isinstance(ends, _Plain):
            return super()._parse(buf, base, locals_, ends, fields)
        plain, at = self._inflate(buf, base, locals_, ends)
        return super()._parse(plain, 0, locals_, at, fields)  # type: ignore[arg-type]  # indexed like ends

    def _parse_each(self, buf: bytes, base: int, locals_: Sequence[int], ends: list[int], fields: tuple[str, ...],
                    last_in: bool) -> list[tuple[str, dict[str, Member]]] | None:
        if isinstance(ends, _Plain):
            return super()._parse_each(buf, base, locals_, ends, fields, last_in)
        plain, at = self._inflate(buf, base, locals_, ends)
        return super()._parse_each(plain, 0, locals_, at, fields, last_in)  # type: ignore[arg-type]

    def _open_at(self, offset: int, buffering: int = 1 << 20) -> IO[bytes]:
        """The decompressed tar stream from the frame at byte ``offset`` on."""
        raw = self._open(buffering)
        raw.seek(offset)
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, buffering)

    def _sample_stream(self, offset: int, end: int) -> IO[bytes]:
        return self._open_at(offset, 65536)
