"""readers/remote.py: ranged reads from S3 (moto_server behind the netem proxy) survive resets
mid-body, 503s and stalls by retrying, end in one error naming the shard when the faults
persist, never hand out a short body, and refuse a shard rewritten since it was first seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs")

from netem import Fault, NetEm
from s3server import MotoServer

from fgbg.builder import BuildConfig, build
from fgbg.readers import DatasetError, open_dataset
from fgbg.readers.remote import RangeFetcher, transient

CFG = BuildConfig(placements=2, shard_size=12)  # 36 samples, 3 shards
pytestmark = pytest.mark.xdist_group("s3")


def options(url: str, read_timeout: float = 5) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "skip_instance_cache": True,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": read_timeout}}


@pytest.fixture()
def remote(moto: MotoServer, bucket: str, demo_inputs: tuple[Path, Path]) -> str:
    url = f"s3://{bucket}/ds"
    build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url), workers=1)
    return url


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("local") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return list(open_dataset(out))


def _equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    return [s["key"] for s in got] == [s["key"] for s in want] and all(
        np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"]) and a["meta"] == b["meta"]
        for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("fault", [Fault(b".tar HTTP", "reset", times=2, after=20000), Fault(b".tar HTTP", "503"),
                                   Fault(b".tar HTTP", "stall", seconds=3)], ids=["reset", "503", "stall"])
def test_transient_faults_are_retried_to_the_exact_bytes(moto: MotoServer, remote: str,
                                                         local: list[dict[str, Any]], fault: Fault) -> None:
    """Each shard's first GETs fail (a reset 20 kB into the body, twice; a 503; a response
    held past the 1 s read timeout): the pass retries them and hands out the local samples."""
    with NetEm(moto.port) as proxy:
        ds = open_dataset(remote, storage_options=options(proxy.url, read_timeout=1), check=True)
        ds.get_many([0, 12, 24])  # receipts read before the faults are armed
        proxy.add(fault)
        proxy.reset_counts()
        assert _equal(list(ds), local)
        assert fault.hits == fault.times
        assert sum(line.startswith("GET") for line in proxy.log) == 3 + fault.times  # each failure cost one retry


def test_persistent_faults_end_in_one_error_naming_the_shard(moto: MotoServer, remote: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FGBG_RETRIES", "3")
    with NetEm(moto.port) as proxy:
        ds = open_dataset(remote, storage_options=options(proxy.url))
        ds.get_many([0, 12, 24])
        proxy.add(Fault(b"/ds/shards/000001.tar HTTP", "reset", times=1000, after=5000))
        got = []
        with pytest.raises(DatasetError, match=r"shards/000001\.tar: bytes 0-\d+ unreadable after 3 tries"):
            for sample in ds:
                got.append(sample["key"])
        assert got == [f"{i:08d}" for i in range(12)]  # shard 0 whole; nothing of shard 1
        with pytest.raises(DatasetError, match=r"shards/000001\.tar"):
            ds[13]
        with pytest.raises(DatasetError, match=r"shards/000001\.tar"):
            ds.get_many([1, 13])


def test_a_shard_rewritten_while_open_is_an_error_naming_it(moto: MotoServer, remote: str,
                                                           local: list[dict[str, Any]]) -> None:
    import s3fs

    ds = open_dataset(remote, storage_options=options(moto.url))
    assert ds[13]["key"] == "00000013"  # shard 1's ETag is known from here on
    fs = s3fs.S3FileSystem(**options(moto.url))
    path = remote.removeprefix("s3://") + "/shards/000001.tar"
    data = bytearray(fs.cat_file(path))
    data[-1] ^= 1  # same size, another version
    fs.pipe_file(path, bytes(data))
    with pytest.raises(DatasetError, match=r"shards/000001\.tar: changed since this dataset was opened"):
        ds[14]
    with pytest.raises(DatasetError, match=r"shards/000001\.tar: changed since this dataset was opened"):
        list(ds)
    fresh = open_dataset(remote, storage_options=options(moto.url))  # opened again: the new version is read
    assert _equal(list(fresh), local)  # (its last byte is tar padding: every sample is intact)


def test_short_bodies_are_retried_on_synchronous_filesystems(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without async support (``memory://``) goes through the thread pool; a
    response shorter than its range is never returned -- it is retried, then refused."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/remote-test/blob", bytes(range(256)) * 64)
    with pytest.raises(FileNotFoundError):  # missing stays missing (callers name the shard)
        RangeFetcher(fs).submit("memory://remote-test/none", 0, 10).result()
    calls = []
    real = fs.cat_file

    def flaky(path: str, start: int, end: int) -> bytes:
        calls.append(1)
        data: bytes = real(path, start=start, end=end)
        return data[:-1] if len(calls) == 1 else data

    monkeypatch.setattr(fs, "cat_file", flaky)
    fetcher = RangeFetcher(fs, connections=4)
    assert fetcher.submit("memory://remote-test/blob", 100, 5000).result() == (bytes(range(256)) * 64)[100:5000]
    assert len(calls) == 2
    monkeypatch.setattr(fs, "cat_file", lambda path, start, end: b"x")
    monkeypatch.setenv("FGBG_RETRIES", "2")
    with pytest.raises(DatasetError, match=r"blob: bytes 0-9 unreadable after 2 tries \(ShortRead"):
        fetcher.submit("memory://remote-test/blob", 0, 10).result()
    fetcher.close()


def test_what_is_transient() -> None:
    assert transient(TimeoutError()) and transient(ConnectionResetError())
    assert not transient(FileNotFoundError()) and not transient(PermissionError()) and not transient(ValueError())


def test_orphaned_network_errors_of_the_loop_are_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    """A cut connection leaves aiohttp tasks whose errors nobody retrieves; their tracebacks
    must not bury the one error line (the request that owned them fails and is reported),
    while any other error of the loop is still logged."""
    import asyncio
    import gc
    import types

    from fgbg.readers.remote import quiet_dropped_connections

    loop = asyncio.new_event_loop()
    quiet_dropped_connections(types.SimpleNamespace(loop=loop))

    async def fail(e: BaseException) -> None:
        raise e

    for error in (ConnectionResetError("connection reset mid-body"), ValueError("a bug")):
        task = loop.create_task(fail(error))
        loop.run_until_complete(asyncio.sleep(0.01))
        assert task.done()
        del task
        gc.collect()
    loop.close()
    logged = [r.exc_info[1] for r in caplog.records if r.name == "asyncio" and r.exc_info]
    assert [type(e) for e in logged] == [ValueError]
