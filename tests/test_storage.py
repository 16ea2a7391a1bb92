import os
from pathlib import Path

import pytest

from fgbg.builder.errors import LockedError, OutputError
from fgbg.builder.storage import DatasetLock, LocalStore


def test_write_atomic_and_stale_temps(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.create()
    store.write_atomic("shards/a.json", b"one")
    mtime = (tmp_path / "shards/a.json").stat().st_mtime_ns
    store.write_atomic("shards/a.json", b"one")  # identical: not rewritten
    assert (tmp_path / "shards/a.json").stat().st_mtime_ns == mtime
    tmp = store.temp_path("shards/000000.tar")
    assert not tmp.name.endswith(".tar") and ".tmp-" in tmp.name
    tmp.write_bytes(b"partial")
    assert store.remove_stale_temps() == [tmp.relative_to(tmp_path).as_posix()]
    assert not tmp.exists() and store.read_bytes("shards/a.json") == b"one"


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with DatasetLock(tmp_path), pytest.raises(LockedError, match=f"pid {os.getpid()}"), DatasetLock(tmp_path):
        pass
    with DatasetLock(tmp_path):  # released on exit
        pass


def test_output_is_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    with pytest.raises(OutputError, match="is a file"):
        LocalStore(f).check_writable()
    LocalStore(tmp_path / "new" / "deeper").check_writable()
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_write_atomic_chunks(tmp_path: Path) -> None:
    """Streamed writes: the sha256 of what was written comes back, the file appears whole, a
    rerun with the same bytes leaves the stored file untouched, and no temp is left behind."""
    import hashlib

    store = LocalStore(tmp_path / "ds")
    store.create()
    chunks = [b"key,a\n", b"0,1\n" * 1000, b"1,2\n"]
    digest = store.write_atomic_chunks("index.csv", iter(chunks))
    path = tmp_path / "ds" / "index.csv"
    assert digest == hashlib.sha256(b"".join(chunks)).hexdigest() and path.read_bytes() == b"".join(chunks)
    inode = path.stat().st_ino
    assert store.write_atomic_chunks("index.csv", iter(chunks)) == digest
    assert path.stat().st_ino == inode  # the same bytes: not replaced
    assert store.write_atomic_chunks("index.csv", iter([b"other\n"])) != digest
    assert path.read_bytes() == b"other\n" and path.stat().st_ino != inode
    listing = sorted(p.name for p in (tmp_path / "ds").iterdir())
    assert "index.csv" in listing and not [n for n in listing if "tmp" in n]

    def failing() -> object:
        yield b"partial"
        raise RuntimeError("the plan failed")

    with pytest.raises(RuntimeError):
        store.write_atomic_chunks("index.csv", failing())  # type: ignore[arg-type]
    assert path.read_bytes() == b"other\n" and sorted(p.name for p in (tmp_path / "ds").iterdir()) == listing


def test_index_is_made_a_chunk_at_a_time(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    from fgbg.builder import BuildConfig, build
    from fgbg.builder.inputs import fg_boxes
    from fgbg.builder.manifest import annotation_chunks, annotations_csv, read_record
    from fgbg.builder.plan import plan_for

    res = build(tmp_path / "ds", BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    record = read_record(LocalStore(tmp_path / "ds"))
    plan = plan_for(record.build_config, record, fg_boxes(record.inputs), len(record.inputs.bg))
    parts = list(annotation_chunks(plan, record.key_width, chunk=10))
    assert len(parts) == 1 + 6 and all(p.count(b"\n") <= 10 for p in parts)  # header + 54 rows by 10
    stored = (tmp_path / "ds" / "annotations.csv").read_bytes()
    assert b"".join(parts) == annotations_csv(plan, record.key_width) == stored
    import hashlib

    assert res.manifest.annotations.sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
