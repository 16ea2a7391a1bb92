"""The host-local copy of an object store's inputs: builds read their inputs from it (seeded by
the uploads, else fetched all at once), never trust a damaged copy, and verify never uses it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.storage.input_cache import InputCache

CFG = BuildConfig(placements=2, shard_size=6)  # 36 samples, 6 shards


def test_put_get_damage_and_eviction(tmp_path: Path) -> None:
    cache = InputCache(tmp_path / "c", limit=10_000)
    blobs = [bytes([i]) * 100 for i in range(3)]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    cache.put(blobs[0])
    assert cache.get(digests[0]) == blobs[0] and cache.get(digests[1]) is None
    path = tmp_path / "c" / digests[0][:2] / digests[0]
    path.write_bytes(b"x" * 100)  # a damaged copy is dropped, never handed out
    assert cache.get(digests[0]) is None and not path.exists()
    for i, (b, d) in enumerate(zip(blobs, digests, strict=True)):
        cache.put(b, d)
        os.utime(tmp_path / "c" / d[:2] / d, (1000 + i, 1000 + i))  # put in this order of use
    cache.limit = 250
    assert cache.evict() == 100  # 300 bytes over a 250-byte limit: the least recently used goes
    assert [cache.has(d) for d in digests] == [False, True, True]


def _options(url: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "config_kwargs": {"retries": {"max_attempts": 1}}}


def _input_gets(log: list[str]) -> list[str]:
    """GETs of hashed inputs (the preview also reads a few fg masks, which the record gives no hash)."""
    return [line.split()[1] for line in log
            if line.startswith("GET ") and ("/inputs/bg/" in line or "/inputs/fg/" in line)]


@pytest.mark.xdist_group("s3")
def test_builds_read_inputs_locally_and_verify_reads_the_bucket(
        moto: Any, bucket: str, tmp_path: Path, demo_inputs: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    from netem import NetEm

    from fgbg.builder.commands.verify import verify
    from fgbg.builder.storage import ObjectStore

    monkeypatch.setenv("FGBG_CACHE_DIR", str(tmp_path / "cache"))
    url = f"s3://{bucket}/ds"
    build(tmp_path / "local", CFG, *demo_inputs, progress=False, workers=1)
    local = {p.name: p.read_bytes() for p in (tmp_path / "local" / "shards").glob("*.tar")}
    with NetEm(moto.port) as proxy:
        build(url, CFG, *demo_inputs, progress=False, workers=1, storage_options=_options(proxy.url))
        assert _input_gets(proxy.log) == []  # seeded by the uploads: nothing read back
        store = ObjectStore(url, _options(proxy.url))
        assert {n: store.read_bytes(f"shards/{n}") for n in local} == local

        # another host (an empty cache) resuming: each input fetched once, all at once, same bytes
        monkeypatch.setenv("FGBG_CACHE_DIR", str(tmp_path / "other-host"))
        store.remove("shards/000003.tar.json")
        store.remove("shards/000003.tar")
        proxy.reset_counts()
        build(url, None, progress=False, workers=1, storage_options=_options(proxy.url))
        gets = _input_gets(proxy.log)
        assert sorted(gets) == sorted(set(gets)) and len(gets) == 6  # 3 backgrounds, 3 foregrounds, once each
        assert proxy.peak > 1
        assert store.read_bytes("shards/000003.tar") == local["000003.tar"]

        # verify proves the bucket's own objects, whatever this host holds
        damaged = bytearray(store.read_bytes("inputs/bg/0001.png"))
        damaged[-20] ^= 0xFF
        store.fs.pipe_file(f"{url}/inputs/bg/0001.png", bytes(damaged))
        report = verify(url, storage_options=_options(proxy.url))
        assert not report.ok
        assert any("inputs/bg/0001.png" in p for p in map(str, report.problems))


@pytest.mark.xdist_group("s3")
def test_layered_predictions_come_from_the_local_copy_and_verify_reads_the_bucket(
        moto: Any, bucket: str, tmp_path: Path, demo_inputs: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--depth-layers to a bucket: the workers paint from the predictions this host stored
    (no GET of inputs/bg_depth), the shards are the local build's; verify reads the bucket's."""
    pytest.importorskip("s3fs")
    pytest.importorskip("onnxruntime")
    from netem import NetEm
    from test_onnx_depth import first_channel_model

    from fgbg.builder.commands.verify import verify
    from fgbg.builder.storage import ObjectStore

    monkeypatch.setenv("FGBG_CACHE_DIR", str(tmp_path / "cache"))
    model = first_channel_model(tmp_path / "tiny.onnx", 64)
    cfg = BuildConfig(size=64, fg_size=(28, 20), placements=1, shard_size=6, depth="onnx",
                      depth_preset="midas-v21-small", depth_input=(64, 64), depth_layers=True)
    opts = {"model": str(model)}
    build(tmp_path / "local", cfg, *demo_inputs, progress=False, workers=1, depth_options=opts)
    url = f"s3://{bucket}/layers"
    with NetEm(moto.port) as proxy:
        build(url, cfg, *demo_inputs, progress=False, workers=1, depth_options=opts,
              storage_options=_options(proxy.url))
        assert not [line for line in proxy.log if line.startswith("GET ") and "/inputs/bg_depth/" in line]
        store = ObjectStore(url, _options(proxy.url))
        for shard in sorted((tmp_path / "local" / "shards").glob("*.tar")):
            assert store.read_bytes(f"shards/{shard.name}") == shard.read_bytes()
        store.fs.pipe_file(f"{url}/inputs/bg_depth/0001.npy", b"not a prediction")
        report = verify(url, storage_options=_options(proxy.url))
        assert not report.ok and any("inputs/bg_depth/0001.npy" in p for p in map(str, report.problems))
