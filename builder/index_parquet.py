"""``annotations.parquet`` (``--index parquet``): the annotations index as a Parquet file,
written one row group at a time.

Why Parquet: the CSV index costs ~42 bytes a sample (4.2 GB at 100M samples) and must be
parsed whole; this file costs 5-9 bytes a sample (keys and shard numbers delta-encoded, the
small-range columns dictionary-encoded, zstd on top), and pandas, polars, DuckDB, Spark and
Hugging Face ``datasets`` read it as it is. Row groups hold whole shards (about
``ROW_GROUP`` rows each), so one shard's rows are one ranged read of one row group: verify
reads per shard what it checks, never the whole index.

The bytes are a function of the plan and the pyarrow version (recorded in ``tool.pyarrow``),
like the shards are of OpenCV's: a resumed or repaired build writes the same file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from fgbg.readers.extras import require
from fgbg.readers.index import COLUMNS, PARQUET_TYPES

from .manifest import index_columns
from .plan import Plan

__all__ = ["ROW_GROUP", "parquet_chunks", "pyarrow_version", "row_groups"]

ROW_GROUP = 1 << 18  # rows per row group, rounded to whole shards (at least one shard)
_DICTIONARY = ["bg", "fg", "flip", "placement", "x", "y", "w", "h", "scale"]
_DELTA = {"key": "DELTA_BINARY_PACKED", "shard": "DELTA_BINARY_PACKED"}


def pyarrow_version() -> str:
    return str(require("pyarrow", "parquet", "--index parquet").__version__)


def row_groups(plan: Plan) -> Iterator[tuple[int, int]]:
    """(first position, count) of each row group: consecutive whole shards, ~ROW_GROUP rows."""
    per = max(1, ROW_GROUP // plan.cfg.shard_size)
    for s in range(0, plan.n_shards, per):
        first, _ = plan.shard_range(s)
        last_first, last_count = plan.shard_range(min(plan.n_shards, s + per) - 1)
        yield first, last_first + last_count - first


class _Drain:
    """A write-only file for pyarrow that hands its bytes on instead of keeping them."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.written = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def parquet_chunks(plan: Plan, key_width: int) -> Iterator[bytes]:
    """The index file's bytes, one row group at a time (one row group in memory)."""
    pa = require("pyarrow", "parquet", "--index parquet")
    pq = require("pyarrow.parquet", "parquet", "--index parquet")
    schema = pa.schema([(name, getattr(pa, PARQUET_TYPES[name])()) for name in COLUMNS],
                       metadata={b"fgbg.key_width": str(key_width).encode()})
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=_DICTIONARY, column_encoding=_DELTA)
    try:
        for first, count in row_groups(plan):
            values = index_columns(plan, first, count)
            arrays = [pa.array(np.asarray(values[name], dtype=PARQUET_TYPES[name])) for name in COLUMNS]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=count)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()
