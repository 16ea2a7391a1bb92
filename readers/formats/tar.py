"""Reading WebDataset tar shards: sequentially, one sample by its offset, or many at once.

The receipt records where each sample starts (checked against the shard's real size), so
every read is of whole samples: sequential reads take windows of consecutive samples in
one read each, random reads take one sample's byte range in one ``pread`` (or one ranged
GET), and batched reads coalesce neighbouring samples. A read buffer is split into
members with :func:`parse_span`; whatever that fast path does not recognise -- and a
shard whose receipt cannot be read -- goes through :func:`walk_tar`, the general walker,
so odd archives are read (or refused) exactly as before.
"""

from __future__ import annotations

import functools
import io
import mmap
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING

import numpy as np

from ..errors import DatasetError, ShardReadError
from ..schema import SUFFIX_FIELD
from ..tarwalk import TarFormatError, parse_span, parse_window, walk_tar
from .base import Member, ShardReader

if TYPE_CHECKING:
    from ..readahead import ReadAhead

__all__ = ["FIELD_OF_SUFFIX", "TarShardReader"]

FIELD_OF_SUFFIX = SUFFIX_FIELD  # every suffix a field may be stored under (PNG or, format 4, .npy.zst)
_READ_BUFFER = 1 << 20
WINDOW = 8 << 20  # bytes of consecutive samples per sequential read
MAX_SPAN = 64 << 20  # a sample bigger than this (far above any real one) is walked member by member
VECTOR_MIN = 16  # samples in one buffer from which NumPy checks them faster than a Python loop
COALESCE_GAP = 64 << 10  # batched reads: samples closer than this share one read


def _split(name: str) -> tuple[str, str]:
    key, _, suffix = name.partition(".")
    return key, suffix


class TarShardReader(ShardReader):

    def _open(self, buffering: int = _READ_BUFFER) -> IO[bytes]:
        try:
            return self.location.open(self.rel, buffering)
        except FileNotFoundError:
            raise ShardReadError(f"{self.path}: shard listed in the manifest is missing") from None

    def _read(self, start: int, end: int) -> bytes:
        try:
            return self.location.read_range(self.rel, start, end)
        except FileNotFoundError:
            raise ShardReadError(f"{self.path}: shard listed in the manifest is missing") from None

    @functools.cached_property
    def _expected(self) -> dict[bytes, str]:
        """The dataset's member suffixes (as bytes) -> their fields: what every sample holds."""
        return {suffix.encode(): field for field, suffix in self.members.items()}

    def _group(self, members: Iterator[tuple[str, bytes]], fields: tuple[str, ...],
               stop_after_one: bool = False) -> Iterator[tuple[str, dict[str, Member]]]:
        """Members grouped into samples by key, each checked whole before it is handed out: it
        must hold exactly the dataset's members, each once. A field seen twice (two samples'
        members under one key, say) or missing refuses the sample -- never one piece replacing
        another; members of no fgbg field are skipped with a warning."""
        current: str | None = None
        raw: dict[str, Member] = {}
        seen: set[str] = set()
        try:
            for name, data in members:
                key, suffix = _split(name)
                if key != current:
                    if current is not None:
                        yield current, self._whole(current, seen, raw)
                        if stop_after_one:
                            return
                    current, raw, seen = key, {}, set()
                field = FIELD_OF_SUFFIX.get(suffix)
                if field is None:
                    warnings.warn(f"{self.path}: ignored member {name!r} (not an fgbg field)", stacklevel=2)
                    continue
                if self.members.get(field) != suffix:
                    raise ShardReadError(f"{self.path}: sample {key}: member {name!r} is not one of this dataset's "
                                         f"members ({', '.join(self.members.values())})")
                if field in seen:
                    raise ShardReadError(f"{self.path}: sample {key}: member {name!r} appears twice (members of "
                                         "two samples under one key?)")
                seen.add(field)
                if field in fields:
                    raw[field] = data
        except TarFormatError as e:
            raise ShardReadError(str(e)) from None
        if current is not None:
            yield current, self._whole(current, seen, raw)

    def _whole(self, key: str, seen: set[str], raw: dict[str, Member]) -> dict[str, Member]:
        missing = [suffix for field, suffix in self.members.items() if field not in seen]
        if missing:
            raise ShardReadError(f"{self.path}: sample {key} has no {', '.join(missing)} member")
        return raw

    # -- where samples lie ----------------------------------------------------------------
    _bounds: list[int] | None = None

    def _ends(self) -> list[int] | None:
        """Sample boundaries: offsets of samples 0..count-1, then the shard's size; None when
        the receipt cannot be read (the shard is then walked from its start, as it always could be)."""
        try:
            return self._boundaries()
        except DatasetError:
            return None

    def boundaries(self) -> list[int]:
        """Where samples start (from the receipt, checked against the shard's size), then the
        shard's size: what every read of whole samples is planned from."""
        return self._boundaries()

    def _boundaries(self) -> list[int]:
        if self._bounds is None:
            receipt = self.receipt()
            if len(receipt.offsets) != self.entry.count:
                raise ShardReadError(f"{self.path}: its receipt has {len(receipt.offsets)} offsets for "
                                     f"{self.entry.count} samples")
            self._bounds = [*receipt.offsets, receipt.bytes]
        return self._bounds

    _suffixes: tuple[bytes, ...] | None = None  # the members each sample holds, in order (learnt once)
    #: samples handed out by the fast paths, at their receipt offsets, with their members in the
    #: ``_suffixes`` order: when that is every sample of the shard, its layout is proven header by
    #: header (verify then needs no walk of its own)
    in_order = 0

    def _parse(self, buf: bytes | mmap.mmap, base: int, locals_: Sequence[int], ends: list[int],
               fields: tuple[str, ...]) -> list[tuple[str, dict[str, Member]]] | None:
        """Samples ``locals_`` out of ``buf`` (which starts at byte ``base`` of the shard; the
        mapped shard has base 0): all at once with :func:`parse_window`, else one by one with
        :func:`parse_span`; None when any of them is not the plain case (the caller then walks it)."""
        last = locals_[-1] == self.entry.count - 1
        if self._suffixes is None:
            lo, hi = ends[locals_[0]] - base, ends[locals_[0] + 1] - base
            first = parse_span(buf[lo:hi], 0, hi - lo, self.key(locals_[0]).encode(), self._expected,
                               len(locals_) == 1 and last)
            self._suffixes = tuple(suffix for suffix, _, _ in first) if first else None
        if self._suffixes and len(locals_) >= VECTOR_MIN:
            keys = [f"{self.entry.first + k:0{self.key_width}d}" for k in locals_]
            offsets = self._window(buf, base, locals_, ends, last, keys)
            if offsets is not None:
                take = [(m, self._expected[x]) for m, x in enumerate(self._suffixes) if self._expected[x] in fields]
                # views: pixels as zero-copy views, the annotation as bytes (json.loads takes no views)
                view = memoryview(buf) if self.views else buf
                src = [(m, f, buf if f == "meta" else view) for m, f in take]
                self.in_order += len(keys)
                return [(key, {f: b[o[m][0]:o[m][1]] for m, f, b in src}) for key, o in zip(keys, offsets, strict=True)]
        if not isinstance(buf, bytes):  # a mapped file: the sample-by-sample path reads bytes
            lo, hi = ends[locals_[0]], ends[locals_[-1] + 1]
            buf, base = buf[lo - base:hi - base], lo
        return self._parse_each(buf, base, locals_, ends, fields, last)

    def _window(self, buf: bytes | mmap.mmap, base: int, locals_: Sequence[int], ends: list[int],
                last: bool, keys: list[str]) -> list[list[list[int]]] | None:
        assert self._suffixes is not None
        starts = np.fromiter((ends[k] for k in locals_), np.int64, len(locals_)) - base
        stops = np.fromiter((ends[k + 1] for k in locals_), np.int64, len(locals_)) - base
        table = np.frombuffer("".join(keys).encode(), np.uint8).reshape(len(locals_), -1)
        found = parse_window(buf, starts, stops, table, self._suffixes, last)
        return None if found is None else found.tolist()

    def _parse_each(self, buf: bytes, base: int, locals_: Sequence[int], ends: list[int], fields: tuple[str, ...],
                    last_in: bool) -> list[tuple[str, dict[str, Member]]] | None:
        out = []
        ordered = 0
        view = memoryview(buf) if self.views else buf
        for local in locals_:
            key = self.key(local)
            span = parse_span(buf, ends[local] - base, ends[local + 1] - base, key.encode(),
                              self._expected, last_in and local == locals_[-1])
            if span is None:
                return None
            ordered += tuple(suffix for suffix, _, _ in span) == self._suffixes
            members: dict[str, Member] = {}
            for suffix, a, b in span:
                field = self._expected[suffix]
                if field in fields:
                    members[field] = (buf if field == "meta" else view)[a:b]
            out.append((key, members))
        self.in_order += ordered
        return out

    # -- sequential -----------------------------------------------------------------------
    def iter_members(self, fields: tuple[str, ...], start: int = 0, stop: int | None = None,
                     ahead: ReadAhead | None = None) -> Iterator[tuple[str, dict[str, Member]]]:
        """As :meth:`ShardReader.iter_members`; ``ahead``: where a remote shard's windows
        were requested in advance (they are taken from it in order)."""
        count = self.entry.count
        stop = count if stop is None else min(stop, count)
        if start >= stop:
            return
        ends = self._ends()
        local = start
        if ends is not None:
            try:
                with self.location.mapped(self.rel) as mm:
                    if mm is not None and len(mm) != ends[-1]:
                        mm = None  # changed since its receipt was read: reads below find out how
                    for parsed in self._windows(mm, ends, start, stop, fields, ahead):
                        if parsed is None:
                            break  # the general walker takes over from this window
                        yield from parsed
                        local += len(parsed)
            except FileNotFoundError:
                raise ShardReadError(f"{self.path}: shard listed in the manifest is missing") from None
        if local < stop:
            yield from self._walk(fields, local, stop, ends[local] if ends is not None else None)

    @staticmethod
    def windows(ends: list[int], local: int, stop: int) -> list[tuple[int, int]]:
        """Samples ``local..stop-1`` cut into runs of consecutive samples of up to WINDOW bytes
        (at least one sample each): what a sequential read fetches at a time. Runs longer than
        MAX_SPAN (one huge sample) are walked instead of read whole."""
        out = []
        while local < stop:
            hi = local + 1
            while hi < stop and ends[hi + 1] - ends[local] <= WINDOW:
                hi += 1
            if ends[hi] - ends[local] <= MAX_SPAN:
                out.append((local, hi))
            local = hi
        return out

    def _windows(self, mm: mmap.mmap | None, ends: list[int], local: int, stop: int, fields: tuple[str, ...],
                 ahead: ReadAhead | None = None) -> Iterator[list[tuple[str, dict[str, Member]]] | None]:
        """Consecutive samples up to WINDOW bytes at a time (at least one), parsed; None for a
        window the fast paths do not take."""
        for lo, hi in self.windows(ends, local, stop):
            if lo != local:  # a sample over MAX_SPAN lies between: the walker reads it
                yield None
                return
            size = ends[hi] - ends[lo]
            if mm is not None:
                yield self._parse(mm, 0, range(lo, hi), ends, fields)
            else:
                try:
                    buf = ahead.take(self.rel, ends[lo], ends[hi]) if ahead else self._read(ends[lo], ends[hi])
                except FileNotFoundError:
                    raise ShardReadError(f"{self.path}: shard listed in the manifest is missing") from None
                yield self._parse(buf, ends[lo], range(lo, hi), ends, fields) if len(buf) == size else None
            local = hi
        if local < stop:
            yield None

    def _walk(self, fields: tuple[str, ...], start: int, stop: int,
              offset: int | None) -> Iterator[tuple[str, dict[str, Member]]]:
        """Samples ``start..stop-1`` by the general walker, from ``offset`` (None: the shard's
        start, skipping samples before ``start``)."""
        with self._open_at(offset or 0) as f:
            local = start if offset is not None else 0
            for key, members in self._group(walk_tar(f, str(self.path)), fields):
                if key != self.key(local):  # a reader never hands out a sample under another key
                    raise ShardReadError(f"{self.path}: sample {self.key(local)} expected, found {key!r}")
                if local >= start:
                    yield key, members
                local += 1
                if local >= stop:
                    return
        raise ShardReadError(f"{self.path}: ends after {max(0, local - start)} of samples {self.key(start)}-"
                             f"{self.key(stop - 1)} (the manifest says {self.entry.count} samples)")

    # -- random access --------------------------------------------------------------------
    def read_members(self, local: int, fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        ends = self._boundaries()
        lo, hi = ends[local], ends[local + 1]
        buf = self._read(lo, hi) if hi - lo <= MAX_SPAN else b""
        parsed = self._parse_each(buf, lo, (local,), ends, fields, local == self.entry.count - 1) if len(
            buf) == hi - lo else None
        return parsed[0] if parsed else self._read_one(local, ends, fields)

    def plan_many(self, locals_: Sequence[int]) -> list[tuple[list[int], int, int]]:
        """The reads that fetch samples ``locals_``: (a run of local positions, its first byte,
        its end), sorted, neighbours coalesced (gaps under COALESCE_GAP, runs up to WINDOW)."""
        ends = self._boundaries()
        wanted = sorted(set(locals_))
        runs = []
        i = 0
        while i < len(wanted):
            j = i + 1
            while (j < len(wanted) and ends[wanted[j]] - ends[wanted[j - 1] + 1] <= COALESCE_GAP
                   and ends[wanted[j] + 1] - ends[wanted[i]] <= WINDOW):
                j += 1
            run = wanted[i:j]
            runs.append((run, ends[run[0]], ends[run[-1] + 1]))
            i = j
        return runs

    def read_many(self, locals_: Sequence[int], fields: tuple[str, ...],
                  fetched: Sequence[bytes] | None = None) -> list[tuple[str, dict[str, Member]]]:
        """Samples ``locals_`` (any order, repeats allowed) in that order, from the reads
        :meth:`plan_many` makes -- done here one after another, or ``fetched`` already (their
        bytes, in plan order: a caller that fetched many shards' ranges at once)."""
        ends = self._boundaries()
        runs = self.plan_many(locals_)
        if fetched is None:
            fetched = [self._read(lo, hi) if hi - lo <= MAX_SPAN else b"" for _, lo, hi in runs]
        found: dict[int, tuple[str, dict[str, Member]]] = {}
        for (run, lo, hi), buf in zip(runs, fetched, strict=True):
            parsed = self._parse(buf, lo, run, ends, fields) if len(buf) == hi - lo else None
            for local, got in zip(run, parsed or (self._read_one(k, ends, fields) for k in run), strict=True):
                found[local] = got
        return [found[k] for k in locals_]

    def layout_proven(self, order: Sequence[str]) -> bool:
        """Whether every sample of the shard came through the fast paths with exactly the
        members ``order`` names, in that order: then each header was checked where its receipt
        puts it (name, type, size, checksum, tiling, zeros after the last)."""
        return (self.entry.count > 0 and self.in_order == self.entry.count
                and self._suffixes == tuple(suffix.encode() for suffix in order))

    def stream(self) -> IO[bytes]:
        """The shard as one plain tar stream from its start (decompressed, for ``.tar.zst``):
        what a layout check walks header by header."""
        return self._open_at(0)

    def _open_at(self, offset: int, buffering: int = _READ_BUFFER) -> IO[bytes]:
        """The tar stream from byte ``offset`` of the shard on (a sample's start)."""
        f = self._open(buffering)
        if offset:
            f.seek(offset)
        return f

    def _sample_stream(self, offset: int, end: int) -> IO[bytes]:
        """The tar stream of the sample at ``offset`` (whose stretch ends at ``end``)."""
        return io.BytesIO(self._read(offset, end)) if end - offset <= MAX_SPAN else self._open_at(offset, 65536)

    def _read_one(self, local: int, ends: list[int], fields: tuple[str, ...]) -> tuple[str, dict[str, Member]]:
        """One sample by the general walker (anything the fast path did not take)."""
        key, offset = self.key(local), ends[local]
        with self._sample_stream(offset, ends[local + 1]) as f:
            for got, members in self._group(walk_tar(f, str(self.path)), fields, stop_after_one=True):
                if got == key:
                    return got, members
                raise ShardReadError(f"{self.path}: sample {key} expected at byte {offset}, found {got!r}")
        raise ShardReadError(f"{self.path}: no sample {key} at byte {offset}")

