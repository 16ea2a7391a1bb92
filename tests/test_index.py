"""``annotations.csv`` as checked NumPy columns: parsed in one pass, every lie named by line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import open_dataset
from fgbg.readers.errors import DatasetError, MetadataError
from fgbg.readers.index import parse_index, read_index

HEADER = b"key,shard,bg,fg,flip,placement,x,y,w,h,scale\n"
ROW = b"%08d,0,1,2,0,1,3,4,5,6,1.25\n"


def test_columns_select_and_counts(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    build(tmp_path / "ds", BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    ds = open_dataset(tmp_path / "ds")
    index = read_index(ds.location, ds.metadata)
    metas = [s["meta"] for s in ds]
    assert len(index) == 54 and index.columns["key"].tolist() == list(range(54))
    for name in ("bg", "fg"):
        assert index.columns[name].tolist() == [m[name]["index"] for m in metas]
    assert index.columns["scale"].dtype == np.float64 and index.columns["x"].tolist() == [m["x"] for m in metas]
    assert index.select(bg=1, flip=0).tolist() == [i for i, m in enumerate(metas) if m["bg"]["index"] == 1
                                                   and m["flip"] == 0]
    assert sum(index.counts("fg", len(ds.metadata.inputs["fg"]))) == 54
    (tmp_path / "ds" / "annotations.csv").write_bytes(HEADER + ROW % 0)
    with pytest.raises(MetadataError, match=r"annotations\.csv: sha256 differs from the manifest"):
        read_index(ds.location, ds.metadata)


@pytest.mark.parametrize(("body", "samples", "what"), [
    (ROW % 0 + b"abc00001,0,1,2,0,1,3,4,5,6,1.0\n", 2, "line 3 holds a value that is not a number"),
    (ROW % 0 + b"00000001,0,1,2,0,1,3,4,5,1.0\n", 2, "line 3 has 10 fields"),
    (ROW % 0, 2, "11 values, expected 2 rows of 11"),
    (ROW % 0 + ROW % 5, 2, r"keys are not the samples 0\.\.1 in order"),
    (ROW % 0 + b"00000001,0,1.5,2,0,1,3,4,5,6,1.0\n", 2, "a column of whole numbers holds another value"),
    (ROW % 0 + b"00000001,0,1e300,2,0,1,3,4,5,6,1.0\n", 2, "a column of whole numbers holds another value"),
])
def test_lies_are_named(body: bytes, samples: int, what: str) -> None:
    with pytest.raises(MetadataError, match=what):
        parse_index(HEADER + body, samples, "a.csv")
    with pytest.raises(MetadataError, match="header is"):
        parse_index(b"key,bg\n" + body, samples, "a.csv")


def test_an_index_larger_than_its_rows_can_be_is_refused_unread(tmp_path: Path,
                                                                demo_inputs: tuple[Path, Path]) -> None:
    build(tmp_path / "ds", BuildConfig(placements=1, shard_size=7), *demo_inputs, progress=False, workers=1)
    ds = open_dataset(tmp_path / "ds")
    with open(tmp_path / "ds" / "annotations.csv", "ab") as f:
        f.truncate(100 + 256 * 18)  # past what 18 rows of numbers can take
    with pytest.raises(DatasetError, match=r"annotations\.csv: \d+ bytes, over the \d+-byte bound"):
        read_index(ds.location, ds.metadata)


def test_streamed_rows_stay_bounded_and_named() -> None:
    """CsvRows (verify's reader): a block of rows, never more than a row's bound past it, and
    every lie named -- a long line, a long header, rows after the last sample however many."""
    import hashlib
    import io

    from fgbg.readers.index import CsvRows

    good = HEADER + b"".join(ROW % i for i in range(6))
    rows = CsvRows(io.BytesIO(good), "i.csv")
    assert rows.rows(0, 4).columns["key"].tolist() == [0, 1, 2, 3]
    assert rows.rows(4, 2).columns["key"].tolist() == [4, 5]
    assert rows.finish() == hashlib.sha256(good).hexdigest()

    class Counted(io.BytesIO):
        most = 0

        def read(self, n: int = -1) -> bytes:
            Counted.most = max(Counted.most, self.tell())
            return super().read(n)

    class Small(CsvRows):
        CHUNK = 4096

    long_line = HEADER + ROW % 0 + b"1" * 5_000_000 + b"\n"
    rows = Small(Counted(long_line), "i.csv")
    rows.rows(0, 1)
    with pytest.raises(MetadataError, match=r"^i\.csv: line 3 is longer than 256 bytes"):
        rows.rows(1, 1)
    assert Counted.most < 2 * Small.CHUNK  # refused within a block or two, not after the whole line
    with pytest.raises(MetadataError, match=r"^i\.csv: header is"):
        CsvRows(io.BytesIO(b"k" * 100_000), "i.csv")
    for pad in (0, 1, 77):  # extra rows past a read's size; the file ending on a read boundary too (pad 0)
        tail = HEADER + ROW % 0 + ROW % 1 * 400
        tail += b" " * ((-len(tail) - 1) % Small.CHUNK + pad) + b"\n"
        assert (len(tail) % Small.CHUNK == 0) == (pad == 0)
        rows = Small(io.BytesIO(tail), "i.csv")
        rows.rows(0, 1)
        with pytest.raises(MetadataError, match=r"rows after the last sample \(1 rows expected\)"):
            rows.finish()
