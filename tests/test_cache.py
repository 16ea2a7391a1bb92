"""readers/cache.py: the shard cache (``cache_dir=``) holds whole shards, stays within
``cache_limit`` by evicting the least recently used, never serves a stale version, and is
shared by processes -- each shard downloaded once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from fgbg.readers.cache import ShardCache
from fgbg.readers.remote import ObjectInfo


def _writer(data: bytes, calls: list[str], name: str) -> Any:
    def download(tmp: Path) -> None:
        calls.append(name)
        tmp.write_bytes(data)
    return download


def test_least_recently_used_shards_are_evicted_to_the_limit(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, "s3://b/ds", limit=250)
    calls: list[str] = []
    infos = {f"shards/{i}.tar": ObjectInfo(100, f'"etag{i}"') for i in range(4)}
    for rel in ("shards/0.tar", "shards/1.tar"):
        cache.get(rel, infos[rel], _writer(b"x" * 100, calls, rel))
        time.sleep(0.01)
    cache.get("shards/0.tar", infos["shards/0.tar"], _writer(b"x" * 100, calls, "again"))  # used: now the newest
    time.sleep(0.01)
    p2 = cache.get("shards/2.tar", infos["shards/2.tar"], _writer(b"y" * 100, calls, "shards/2.tar"))
    assert calls == ["shards/0.tar", "shards/1.tar", "shards/2.tar"]  # 0 came from the cache
    assert not cache.path("shards/1.tar", infos["shards/1.tar"]).exists()  # least recently used: gone
    assert cache.path("shards/0.tar", infos["shards/0.tar"]).exists() and p2.read_bytes() == b"y" * 100
    assert cache.size() == 200
    big = cache.get("shards/3.tar", ObjectInfo(300, '"big"'), _writer(b"z" * 300, calls, "big"))
    assert big.exists() and cache.size() == 300  # a shard over the limit is kept while it is the one in use


def test_a_new_version_is_never_served_from_a_stale_copy(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path, "s3://b/ds")
    calls: list[str] = []
    old = cache.get("shards/0.tar", ObjectInfo(3, '"v1"'), _writer(b"old", calls, "v1"))
    new = cache.get("shards/0.tar", ObjectInfo(3, '"v2"'), _writer(b"new", calls, "v2"))
    assert (old.read_bytes(), new.read_bytes(), calls) == (b"old", b"new", ["v1", "v2"])
    with pytest.raises(OSError, match="downloaded 2 bytes, the store said 3"):  # a short download is not cached
        cache.get("shards/1.tar", ObjectInfo(3, '"v1"'), _writer(b"ab", calls, "short"))
    assert not cache.path("shards/1.tar", ObjectInfo(3, '"v1"')).exists()
    assert [p.name for p in (tmp_path / cache.dir.name / "shards").iterdir() if ".part-" in p.name] == []
    with pytest.raises(ValueError, match="cache_limit"):
        ShardCache(tmp_path, "x", limit=0)


def _fetch_in_process(root: str, log: str) -> None:
    cache = ShardCache(root, "s3://b/ds")

    def slow(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # the other process arrives meanwhile and must wait, not download too
        tmp.write_bytes(b"s" * 1000)

    assert cache.get("shards/0.tar", ObjectInfo(1000, '"e"'), slow).read_bytes() == b"s" * 1000


def test_processes_sharing_the_cache_download_each_shard_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    log = tmp_path / "downloads.log"
    procs = [ctx.Process(target=_fetch_in_process, args=(str(tmp_path / "cache"), str(log))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1


@pytest.mark.xdist_group("s3")
def test_random_reads_do_not_wait_for_the_whole_shard(moto: Any, bucket: str, tmp_path: Path,
                                                      demo_inputs: tuple[Path, Path]) -> None:
    """cache_dir with random access: a sample of a shard not cached yet comes from a ranged
    GET at once while the shard downloads behind it; once it is there, reads are local (no
    request at all), and every sample is the local build's."""
    pytest.importorskip("s3fs")
    from netem import NetEm

    from fgbg.builder import BuildConfig, build
    from fgbg.readers import open_dataset

    cfg = BuildConfig(placements=2, shard_size=12)
    opts = {"client_kwargs": {"endpoint_url": moto.url}}
    build(f"s3://{bucket}/ds", cfg, *demo_inputs, progress=False, workers=1, storage_options=opts)
    build(tmp_path / "local", cfg, *demo_inputs, progress=False, workers=1)
    want = open_dataset(tmp_path / "local", decode=False)
    with NetEm(moto.port, delay=0.02, rate=100e3) as proxy:  # 100 kB/s: a shard takes seconds to arrive
        ds = open_dataset(f"s3://{bucket}/ds", storage_options={"client_kwargs": {"endpoint_url": proxy.url}},
                          decode=False, cache_dir=tmp_path / "cache")
        first = ds[5]
        shard = ds.shards[0]
        assert bytes(first["image"]) == bytes(want[5]["image"])
        assert ds.location.cache.ready(shard.name, ds.location.info(shard.name)) is None  # answered before it came
        deadline = time.monotonic() + 60
        while ds.location.cache.ready(shard.name, ds.location.info(shard.name)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proxy.reset_counts()
        got = [ds[i] for i in (0, 11, 7)] + ds.get_many([3, 9])
        assert proxy.requests == 0  # the local copy
        assert [bytes(s["image"]) for s in got] == [bytes(want[i]["image"]) for i in (0, 11, 7, 3, 9)]
