from pathlib import Path

from fgbg.builder.receipts import Receipt, check_shard, load_receipt, receipt_name, write_receipt
from fgbg.builder.storage import LocalStore

FP = "a" * 64  # a fingerprint is a sha256


def _setup(tmp_path: Path) -> tuple[LocalStore, Receipt]:
    store = LocalStore(tmp_path)
    store.create()
    store.write_atomic("shards/000000.h5", b"x" * 1024)
    r = Receipt(0, "shards/000000.h5", 0, 3, 1024, store.sha256("shards/000000.h5"), FP, {})
    write_receipt(store, r)
    return store, r


def test_done_only_when_receipt_matches(tmp_path: Path) -> None:
    store, r = _setup(tmp_path)
    assert receipt_name("shards/000000.tar") == "shards/000000.tar.json"
    assert check_shard(store, r.name, FP) == r
    assert check_shard(store, r.name, "b" * 64) is None
    (tmp_path / "shards/000000.h5").write_bytes(b"y" * 1024)  # same size, other bytes
    assert check_shard(store, r.name, FP, full_hash=False) is not None
    assert check_shard(store, r.name, FP) is None
    (tmp_path / "shards/000000.h5").write_bytes(b"x" * 1000)
    assert check_shard(store, r.name, FP) is None
    (tmp_path / "shards/000000.h5").unlink()
    assert check_shard(store, r.name, FP) is None


def test_unreadable_receipt_means_not_done(tmp_path: Path) -> None:
    store, r = _setup(tmp_path)
    (tmp_path / "shards/000000.h5.json").write_bytes(b'{"shard": 0, "na')
    assert load_receipt(store, r.name) is None and check_shard(store, r.name, FP) is None
