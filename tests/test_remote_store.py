"""ObjectStore on S3 (moto_server behind the netem proxy): shards sent while written, stale
multipart uploads aborted, listings in one request."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs")

from netem import Fault, NetEm

from fgbg.builder.storage import ObjectStore
from fgbg.builder.storage.remote import PART_BYTES

pytestmark = pytest.mark.xdist_group("s3")


def _options(url: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "config_kwargs": {"retries": {"max_attempts": 1}}}


def _pending(store: ObjectStore, bucket: str) -> list[str]:
    return [u["Key"] for u in store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])]


def _write_slowly(tmp: Path, chunks: list[bytes], pause: float) -> None:
    with open(tmp, "wb", buffering=0) as f:
        for chunk in chunks:
            f.write(chunk)
            time.sleep(pause)


def test_a_shard_goes_up_while_it_is_written(moto: Any, bucket: str, tmp_path: Path) -> None:
    chunks = [bytes([i]) * (3 << 20) for i in range(7)]  # 21 MiB: two full parts and a short last one
    with NetEm(moto.port) as proxy:
        refused = proxy.add(Fault(b"partNumber=2", "503"))  # a part refused once: retried
        store = ObjectStore(f"s3://{bucket}/ds", _options(proxy.url))
        tmp = tmp_path / "shard.tar"
        tmp.touch()
        upload = store.upload_while_writing(tmp, "shards/000000.tar")
        assert upload is not None
        _write_slowly(tmp, chunks, 0.15)
        sent_before_close = [line for line in proxy.log if "partNumber=" in line]
        assert sent_before_close  # the first part left while the file was still being written
        assert not store.exists("shards/000000.tar")  # nothing visible before it is finished
        upload.finish(len(b"".join(chunks)))
        assert store.read_bytes("shards/000000.tar") == b"".join(chunks)
        assert not tmp.exists() and _pending(store, bucket) == []
        parts = sorted({m for line in proxy.log for m in re.findall(r"partNumber=(\d+)", line)})
        assert parts == ["1", "2", "3"] and len(b"".join(chunks)) > 2 * PART_BYTES
        assert refused.hits == 1


def test_small_shards_go_in_one_put_and_an_abort_leaves_nothing(moto: Any, bucket: str, tmp_path: Path) -> None:
    with NetEm(moto.port) as proxy:
        store = ObjectStore(f"s3://{bucket}/ds", _options(proxy.url))
        small = tmp_path / "small.tar"
        small.write_bytes(b"x" * 1000)
        upload = store.upload_while_writing(small, "shards/000001.tar")
        assert upload is not None
        upload.finish(1000)
        assert store.read_bytes("shards/000001.tar") == b"x" * 1000
        assert not any("uploads" in line for line in proxy.log)

        big = tmp_path / "big.tar"
        big.touch()
        upload = store.upload_while_writing(big, "shards/000002.tar")
        assert upload is not None
        _write_slowly(big, [b"y" * PART_BYTES, b"y" * 1000], 0.3)
        upload.abort()  # the writer failed
        assert not store.exists("shards/000002.tar") and _pending(store, bucket) == []


def test_stale_multipart_uploads_are_aborted_and_listings_take_one_request(moto: Any, bucket: str) -> None:
    with NetEm(moto.port) as proxy:
        store = ObjectStore(f"s3://{bucket}/ds", _options(proxy.url))
        other = ObjectStore(f"s3://{bucket}/other", _options(proxy.url))
        for s in (store, other):  # a builder killed mid-upload left one each
            s.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=s._s3_key("shards/000003.tar")[1])  # type: ignore[index]
        assert store.remove_stale_temps() == ["ds/shards/000003.tar (unfinished upload)"]
        assert _pending(store, bucket) == ["other/shards/000003.tar"]  # another dataset's stay

        for rel in ("build.json", "shards/000000.tar", "shards/000000.tar.json", "inputs/bg/0000.png"):
            store.write_atomic(rel, b"{}")
        proxy.reset_counts()
        assert store.listdir("") == ["build.json", "inputs", "shards"]
        assert store.listdir("shards") == ["000000.tar", "000000.tar.json"]
        assert store.listdir("nothing") == []
        assert len(proxy.log) == 3
        assert not store.exists("nothing.json") and store.size("build.json") == 2
