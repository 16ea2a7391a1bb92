"""``--index parquet``: annotations.parquet written a row group (whole shards) at a time, the
same rows as the CSV index, read by pandas and pyarrow, checked as untrusted input, read per
shard by verify, repaired and resumed byte-identically, exported back to the CSV."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.readers import open_dataset
from fgbg.readers.errors import MetadataError
from fgbg.readers.index import COLUMNS, PARQUET_TYPES, IndexRows, parse_parquet_index, read_index

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
CFG = BuildConfig(placements=3, shard_size=7, fg_scale=(0.8, 1.2))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> tuple[Path, Path]:
    """The same dataset with a CSV and with a Parquet index."""
    root = tmp_path_factory.mktemp("pq")
    build(root / "csv", CFG, *demo_inputs, progress=False, workers=1)
    build(root / "pq", CFG, *demo_inputs, progress=False, workers=1, index="parquet")
    return root / "csv", root / "pq"


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    """A Parquet index in row groups of 2 shards (the writer's target made small: 14 rows)."""
    import fgbg.builder.index_parquet as writer

    out = tmp_path_factory.mktemp("pq") / "grouped"
    mp = pytest.MonkeyPatch()
    mp.setattr(writer, "ROW_GROUP", 14)
    try:
        build(out, CFG, *demo_inputs, progress=False, workers=1, index="parquet")
    finally:
        mp.undo()
    return out


def test_same_rows_as_the_csv(pair: tuple[Path, Path]) -> None:
    csv, parquet = pair
    a, b = open_dataset(csv), open_dataset(parquet)
    assert b.metadata.format_version == 3 and b.metadata.annotations.file == "annotations.parquet"
    record = json.loads((parquet / "build.json").read_bytes())
    assert record["index"] == "parquet" and record["tool"]["pyarrow"] == pa.__version__
    assert "index" not in json.loads((csv / "build.json").read_bytes())  # the default: no key, format 1
    x, y = read_index(a.location, a.metadata), read_index(b.location, b.metadata)
    for name in COLUMNS:
        assert np.array_equal(x.columns[name], y.columns[name]), name
    for s in range(0, len(a.shards)):  # the shards' bytes do not depend on the index kind
        assert (csv / a.shards[s].name).read_bytes() == (parquet / b.shards[s].name).read_bytes()
    df = __import__("pandas").read_parquet(parquet / "annotations.parquet")
    assert list(df.columns) == list(COLUMNS) and [str(t) for t in df.dtypes] == [PARQUET_TYPES[c] for c in COLUMNS]
    assert df["x"].tolist() == x.columns["x"].tolist()
    datasets = pytest.importorskip("datasets")  # Hugging Face reads it as it is (local file, no network)
    hf = datasets.load_dataset("parquet", data_files=str(parquet / "annotations.parquet"), split="train",
                               cache_dir=str(parquet.parent / "hf-cache"))
    assert hf.column_names == list(COLUMNS) and hf["scale"] == x.columns["scale"].tolist()


def test_only_the_columns_asked_for(pair: tuple[Path, Path]) -> None:
    """A viewer's filters need four columns: read as stored (int32/int8), not as int64."""
    for root in pair:
        ds = open_dataset(root)
        whole = read_index(ds.location, ds.metadata)
        part = read_index(ds.location, ds.metadata, columns=("bg", "flip"))
        assert sorted(part.columns) == ["bg", "flip", "key"]
        assert part.select(bg=1, flip=0).tolist() == whole.select(bg=1, flip=0).tolist()
        if root == pair[1]:
            assert part.columns["bg"].dtype == np.int32 and part.columns["flip"].dtype == np.int8


def test_rows_per_shard(grouped: Path) -> None:
    meta = pq.ParquetFile(grouped / "annotations.parquet").metadata
    groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert groups == [14, 14, 14, 12]  # two whole shards of 7 each (the last: 7 + 5)
    assert verify(str(grouped)).ok
    ds = open_dataset(grouped)
    whole = read_index(ds.location, ds.metadata)
    rows = IndexRows(ds.location, ds.metadata)
    try:
        for first, count in ((0, 7), (7, 14), (10, 30), (50, 4), (53, 1)):
            part = rows.rows(first, count)
            for name in COLUMNS:
                assert np.array_equal(part.columns[name], whole.columns[name][first:first + count])
    finally:
        rows.close()


def test_verify_repair_resume(pair: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(pair[1], copy)
    before = snapshot(copy)
    assert verify(str(copy), deep=True).ok
    data = bytearray((copy / "annotations.parquet").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (copy / "annotations.parquet").write_bytes(bytes(data))
    report = verify(str(copy))
    assert [(p.where, p.what) for p in report.problems] == [("annotations.parquet", "sha256 differs from the manifest")]
    _, result, after = repair(str(copy), workers=1, progress=False)
    assert after.ok and result.built == 0 and snapshot(copy) == before  # rewritten byte-identically
    (copy / "annotations.parquet").unlink()
    (copy / "manifest.json").unlink()
    assert build(copy, None, progress=False, workers=1).built == 0 and snapshot(copy) == before


def test_a_lying_annotation_is_found_per_shard(grouped: Path, tmp_path: Path) -> None:
    """An index whose rows disagree with the shards (rewritten, its hash put in the manifest):
    verify reads each shard's rows from the row groups and names the sample."""
    import hashlib

    from fgbg.builder.manifest import manifest_bytes, read_manifest
    from fgbg.builder.storage import open_store

    copy = tmp_path / "ds"
    shutil.copytree(grouped, copy)
    table = pq.read_table(copy / "annotations.parquet")
    x = table.column("x").to_numpy().copy()
    x[20] += 1
    table = table.set_column(COLUMNS.index("x"), "x", pa.array(x, pa.int16()))
    pq.write_table(table, copy / "annotations.parquet", row_group_size=14)
    m = read_manifest(open_store(copy))
    digest = hashlib.sha256((copy / "annotations.parquet").read_bytes()).hexdigest()
    forged = json.loads(manifest_bytes(m))
    forged["annotations"]["sha256"] = digest
    (copy / "manifest.json").write_text(json.dumps(forged))
    problems = verify(str(copy)).problems
    assert any(p.sample == "00000020" and "annotation differs from the index in x" in p.what for p in problems)


def _parquet_bytes(table: object, **kw: object) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def _table(n: int, **changes: object) -> object:
    cols = {name: np.zeros(n, PARQUET_TYPES[name]) for name in COLUMNS}
    cols["key"] = np.arange(n, dtype=np.int64)
    cols.update(changes)  # type: ignore[arg-type]
    return pa.table(cols)


def test_lies_are_named() -> None:
    assert len(parse_parquet_index(_parquet_bytes(_table(5)), 5, "i.parquet")) == 5
    cases = [
        (_parquet_bytes(_table(5)), 6, "5 rows, the manifest says 6 samples"),
        (_parquet_bytes(_table(5, key=np.array([0, 1, 2, 4, 3], np.int64))), 5, r"keys are not the samples 0\.\.4"),
        (_parquet_bytes(_table(5, x=np.zeros(5, np.int32))), 5, "columns are"),
        (_parquet_bytes(pa.table({"key": np.arange(5)})), 5, "columns are"),
        (b"PAR1 not really" * 3, 5, "not a readable Parquet index"),
    ]
    for data, samples, what in cases:
        with pytest.raises(MetadataError, match=r"^i\.parquet: .*" + what):
            parse_parquet_index(data, samples, "i.parquet")


def test_export_writes_the_csv_a_csv_build_writes(pair: tuple[Path, Path], tmp_path: Path) -> None:
    assert main(["export", str(pair[1]), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "annotations.csv").read_bytes() == (pair[0] / "annotations.csv").read_bytes()


def test_card_and_view(pair: tuple[Path, Path]) -> None:
    from fgbg.builder.view import ViewData
    from fgbg.builder.view.data import Filters

    card = (pair[1] / "README.md").read_text()
    assert "pandas.read_parquet(\"annotations.parquet\")" in card and "annotations.csv" not in card
    data = ViewData(str(pair[1]))
    assert data.index is not None and data.positions(Filters(bg=1)).tolist() == \
        ViewData(str(pair[0])).positions(Filters(bg=1)).tolist()
