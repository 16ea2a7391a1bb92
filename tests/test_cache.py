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
