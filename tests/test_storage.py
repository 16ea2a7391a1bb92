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
