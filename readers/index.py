"""The annotations index (``annotations.csv``, or ``annotations.parquet`` with ``--index
parquet``) as typed NumPy columns, for filtering and lookup.

One row per sample: ``key,shard,bg,fg,flip,placement,x,y,w,h,scale`` (docs/FORMAT.md §4).
The file is untrusted like every other file of a dataset: it is read only when its size is
under a bound taken from the sample count the manifest proved, must hash to the sha256 the
manifest records, and must parse into exactly ``totals.samples`` rows whose keys run 0..n-1
and whose integer columns hold integers. CSV parsing is one NumPy pass (400,000 rows in about
0.3 s), not a Python loop per row. A Parquet file must have exactly the columns and types
fgbg writes, row groups that add up to the samples, and column chunks whose declared
decompressed size is within a bound per row before pyarrow decodes anything; one row group
(whole shards) can be read alone (:class:`IndexRows`), which is how verify streams it.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import MetadataError
from .extras import require
from .fs import Location
from .schema import INDEX_FILES, Manifest

__all__ = ["ANNOTATIONS", "COLUMNS", "PARQUET", "PARQUET_TYPES", "AnnotationIndex", "CsvRows", "IndexRows",
           "index_bound", "parse_index", "parse_parquet_index", "parse_rows", "read_index"]

ANNOTATIONS = INDEX_FILES[None]
PARQUET = INDEX_FILES["parquet"]
COLUMNS = ("key", "shard", "bg", "fg", "flip", "placement", "x", "y", "w", "h", "scale")
#: the Parquet index's column types (pyarrow / NumPy names): exactly these, nothing else
PARQUET_TYPES = {"key": "int64", "shard": "int32", "bg": "int32", "fg": "int32", "flip": "int8", "placement": "int32",
                 "x": "int16", "y": "int16", "w": "int16", "h": "int16", "scale": "float64"}
_INTEGER = COLUMNS[:-1]
_MAX_ROW = 256  # bytes: 10 integers under 2**53 and a float, with commas
_MAX_PARQUET_ROW = 64  # stored bytes a row may take in the Parquet file (fgbg writes 5-9)
_MAX_DECODED_ROW = 2 * sum(8 for _ in COLUMNS)  # declared decompressed bytes a row may take (its values: 33)
_HEADER = (",".join(COLUMNS) + "\n").encode("ascii")


def index_bound(manifest: Manifest) -> int:
    """The most bytes the index ``manifest`` names may take, from the sample count it proved:
    every reader of the index (whole, per row group, streamed) refuses a larger file unread."""
    if manifest.annotations.file == PARQUET:
        return _MAX_PARQUET_ROW * manifest.totals.samples + (1 << 20)  # + the footer
    return len(_HEADER) + _MAX_ROW * manifest.totals.samples


@dataclass(frozen=True)
class AnnotationIndex:
    """Columns by name: int64 for every column but ``scale`` (float64); row i = sample i."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["key"])

    def select(self, **equal: int | None) -> np.ndarray:
        """Sample positions whose columns equal the given values (None: any), in key order."""
        keep = np.ones(len(self), bool)
        for name, value in equal.items():
            if value is not None:
                keep &= self.columns[name] == value
        out: np.ndarray = np.flatnonzero(keep)
        return out

    def counts(self, column: str, size: int) -> list[int]:
        """Samples per value 0..size-1 of ``column`` (per background, per foreground)."""
        values = self.columns[column]
        counted: np.ndarray = np.bincount(values[(values >= 0) & (values < size)], minlength=size)
        return [int(c) for c in counted[:size]]


_NOT_A_NUMBER = re.compile(rb"[^0-9.,+\-e\r\n ]")


def _first_bad_row(body: bytes, line0: int = 2) -> str:
    """``"line N has K fields; "`` for the first row without 11 fields ("" when all have 11);
    ``line0``: the file's line number of the body's first row."""
    raw = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    commas = np.concatenate([[0], np.cumsum(raw == ord(","))[ends]])
    per_line = np.diff(commas)
    bad = np.flatnonzero(per_line != len(COLUMNS) - 1)
    return f"line {int(bad[0]) + line0} has {int(per_line[bad[0]]) + 1} fields; " if len(bad) else ""


def _check_header(header: bytes, where: str) -> None:
    if header.strip() != ",".join(COLUMNS).encode():
        raise MetadataError(f"{where}: header is {header[:80]!r}, expected {','.join(COLUMNS)!r}")


def parse_rows(body: bytes, first: int, count: int, where: str) -> AnnotationIndex:
    """Rows ``first .. first+count-1`` of a CSV index (their lines, header excluded) -> checked
    columns; MetadataError names the file, the line and what is wrong."""
    line0 = first + 2  # the header is line 1
    odd = _NOT_A_NUMBER.search(body)
    if odd:
        line = body.count(b"\n", 0, odd.start()) + line0
        raise MetadataError(f"{where}: line {line} holds a value that is not a number")
    text = body.replace(b",", b" ").replace(b"\n", b" ").decode("ascii")
    with warnings.catch_warnings():  # stopping early is a short count, reported below
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(text, dtype=np.float64, sep=" ") if text.strip() else np.zeros(0)
    if values.size != count * len(COLUMNS):
        raise MetadataError(f"{where}: {_first_bad_row(body, line0)}{values.size} values, expected {count} rows of "
                            f"{len(COLUMNS)}" + (f" from line {line0}" if first else ""))
    table = values.reshape(count, len(COLUMNS))
    ints = table[:, :-1]
    if not (np.isfinite(ints).all() and (ints == np.round(ints)).all() and np.abs(ints).max(initial=0) < 2**53):
        raise MetadataError(f"{where}: a column of whole numbers holds another value")
    columns: dict[str, np.ndarray] = {name: ints[:, k].astype(np.int64) for k, name in enumerate(_INTEGER)}
    columns["scale"] = table[:, -1].copy()
    if not np.array_equal(columns["key"], np.arange(first, first + count)):
        raise MetadataError(f"{where}: keys are not the samples {first}..{first + count - 1} in order")
    return AnnotationIndex(columns)


def parse_index(data: bytes, samples: int, where: str) -> AnnotationIndex:
    """The index's bytes -> checked columns; MetadataError names the file and what is wrong."""
    header, _, body = data.partition(b"\n")
    _check_header(header, where)
    return parse_rows(body, 0, samples, where)


class CsvRows:
    """A CSV index read once from start to end, a block of rows at a time, and hashed on the
    way (verify: one shard's rows per shard check, never the whole file in memory). Blocks
    must be asked for in key order; :meth:`finish` reads the rest and gives the sha256."""

    CHUNK = 1 << 20

    def __init__(self, f: IO[bytes], where: str):
        self._f = f
        self.where = where
        self._hash = hashlib.sha256()
        self._buf = b""
        self._next = 0  # the first row not handed out
        _check_header(self._line(), where)

    def _fill(self) -> bool:
        chunk = self._f.read(self.CHUNK)
        self._hash.update(chunk)
        self._buf += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        """The first line (the header), or what there is of it when it does not end soon."""
        while b"\n" not in self._buf:
            if len(self._buf) > _MAX_ROW or not self._fill():  # a header is one short line
                return self._buf
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def rows(self, first: int, count: int) -> AnnotationIndex:
        """Rows ``first .. first+count-1`` (``first`` is where the last block ended)."""
        if first != self._next:
            raise ValueError(f"rows asked from {first}, the stream is at {self._next}")
        lines = 0
        end = 0
        while True:  # find the end of the count-th line from the buffer's start
            while lines < count:
                at = self._buf.find(b"\n", end)
                if at < 0:
                    break
                end, lines = at + 1, lines + 1
            if lines == count:
                break
            if len(self._buf) - end > _MAX_ROW:  # a row no CSV index holds: held no further
                raise MetadataError(f"{self.where}: line {first + lines + 2} is longer than {_MAX_ROW} bytes")
            if not self._fill():
                break
        body, self._buf = self._buf[:end], self._buf[end:]
        self._next = first + count
        return parse_rows(body, first, count, self.where)

    def finish(self) -> str:
        """Read what is left (nothing but blank space may be) and return the file's sha256."""
        while True:
            if self._buf.strip():
                raise MetadataError(f"{self.where}: rows after the last sample ({self._next} rows expected)")
            self._buf = b""
            if not self._fill():
                return self._hash.hexdigest()


def _parquet(where: str) -> tuple[Any, Any]:
    pa = require("pyarrow", "parquet", f"reading {where}")
    pq = require("pyarrow.parquet", "parquet", f"reading {where}")
    return pa, pq


def _checked_file(pf: Any, samples: int, where: str) -> list[tuple[int, int]]:
    """The footer of a Parquet index, checked before any data is decoded; returns each row
    group's (first row, rows)."""
    meta = pf.metadata
    names = [f.name for f in pf.schema_arrow]
    types = [str(f.type).replace("double", "float64") for f in pf.schema_arrow]
    if names != list(COLUMNS) or types != [PARQUET_TYPES[n] for n in COLUMNS]:
        raise MetadataError(f"{where}: columns are {list(zip(names, types, strict=True))[:12]}, expected "
                            f"{[(n, PARQUET_TYPES[n]) for n in COLUMNS]}")
    if meta.num_rows != samples:
        raise MetadataError(f"{where}: {meta.num_rows} rows, the manifest says {samples} samples")
    groups, first = [], 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        rows = group.num_rows
        declared = sum(max(0, group.column(c).total_uncompressed_size) for c in range(group.num_columns))
        if rows < 0 or declared > _MAX_DECODED_ROW * max(rows, 1) + 65536:
            raise MetadataError(f"{where}: row group {g} declares {declared} decoded bytes for {rows} rows")
        groups.append((first, rows))
        first += rows
    if first != samples:
        raise MetadataError(f"{where}: its row groups hold {first} rows, the manifest says {samples} samples")
    return groups


def _columns(table: Any, first: int, where: str, narrow: bool = False) -> dict[str, np.ndarray]:
    """The table's columns as NumPy arrays (int64/float64, or as stored with ``narrow``),
    checked: no nulls, keys ``first``.. in order."""
    names = table.column_names
    if any(table.column(name).null_count for name in names):
        raise MetadataError(f"{where}: a column holds nulls")
    columns = {name: table.column(name).to_numpy() for name in names}
    out = columns if narrow else {name: columns[name].astype(np.float64 if name == "scale" else np.int64)
                                  for name in names}
    if not np.array_equal(out["key"], np.arange(first, first + len(out["key"]))):
        raise MetadataError(f"{where}: keys are not the samples {first}..{first + len(out['key']) - 1} in order")
    return out


def parse_parquet_index(data: bytes, samples: int, where: str,
                        columns: Sequence[str] | None = None) -> AnnotationIndex:
    """A Parquet index's bytes -> checked columns; MetadataError names the file and what is
    wrong. ``columns``: only these (and ``key``), as stored (int8/int16/int32: a fraction of
    the memory; what a viewer's filters need at 100M samples)."""
    pa, pq = _parquet(where)
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        _checked_file(pf, samples, where)
        table = pf.read(columns=None if columns is None else ["key", *[c for c in columns if c != "key"]])
    except MetadataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise MetadataError(f"{where}: not a readable Parquet index ({type(e).__name__}: {e})") from None
    return AnnotationIndex(_columns(table, 0, where, narrow=columns is not None))


class IndexRows:
    """The rows of a Parquet index one row group at a time (whole shards; docs/FORMAT.md §4):
    :meth:`rows` reads only the groups a range needs and keeps the last one, so a pass over
    the shards in order reads each group once. The file's hash is the caller's to check."""

    def __init__(self, location: Location, manifest: Manifest):
        self.location = location
        self.where = location.path(PARQUET)
        self.size = location.size(PARQUET)
        if self.size > index_bound(manifest):
            raise MetadataError(f"{self.where}: {self.size} bytes for {manifest.totals.samples} samples")
        self._pa, pq = _parquet(self.where)
        self._file = location.open(PARQUET)
        try:
            self._pf = pq.ParquetFile(self._file)
            self.groups = _checked_file(self._pf, manifest.totals.samples, self.where)
        except MetadataError:
            self._file.close()
            raise
        except (self._pa.ArrowException, OSError, ValueError) as e:
            self._file.close()
            raise MetadataError(f"{self.where}: not a readable Parquet index ({type(e).__name__}: {e})") from None
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    def _group(self, g: int) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != g:
            try:
                table = self._pf.read_row_group(g)
            except MetadataError:
                raise
            except (self._pa.ArrowException, OSError, ValueError) as e:
                raise MetadataError(f"{self.where}: row group {g} unreadable ({type(e).__name__}: {e})") from None
            self._cached = (g, _columns(table, self.groups[g][0], self.where))
        return self._cached[1]

    def rows(self, first: int, count: int) -> AnnotationIndex:
        """Rows ``first .. first+count-1`` as columns (row i of the result = sample first+i)."""
        parts = []
        for g, (start, n) in enumerate(self.groups):
            lo, hi = max(first, start), min(first + count, start + n)
            if lo < hi:
                cols = self._group(g)
                parts.append({k: v[lo - start:hi - start] for k, v in cols.items()})
        if not parts:
            return AnnotationIndex({k: np.zeros(0, np.float64 if k == "scale" else np.int64) for k in COLUMNS})
        return AnnotationIndex({k: np.concatenate([p[k] for p in parts]) for k in COLUMNS})

    def close(self) -> None:
        self._file.close()


def read_index(location: Location, manifest: Manifest, columns: Sequence[str] | None = None) -> AnnotationIndex:
    """The annotations index of the dataset at ``location`` (CSV or Parquet, as the manifest
    says), checked against ``manifest``; ``columns``: only these and ``key`` (a Parquet index
    then reads only those columns and keeps their stored widths)."""
    if manifest.annotations.file == PARQUET:
        where = location.path(PARQUET)
        try:
            data = location.read_bytes(PARQUET, limit=index_bound(manifest))
        except FileNotFoundError:
            raise MetadataError(f"{where}: missing") from None
        if hashlib.sha256(data).hexdigest() != manifest.annotations.sha256:
            raise MetadataError(f"{where}: sha256 differs from the manifest")
        return parse_parquet_index(data, manifest.totals.samples, where, columns)
    where = location.path(ANNOTATIONS)
    try:  # bounded by the sample count the manifest proved: a row of 11 numbers is far under 256 bytes
        data = location.read_bytes(ANNOTATIONS, limit=index_bound(manifest))
    except FileNotFoundError:
        raise MetadataError(f"{where}: missing") from None
    if hashlib.sha256(data).hexdigest() != manifest.annotations.sha256:
        raise MetadataError(f"{where}: sha256 differs from the manifest")
    index = parse_index(data, manifest.totals.samples, where)
    if columns is None:
        return index
    return AnnotationIndex({k: v for k, v in index.columns.items() if k == "key" or k in columns})
