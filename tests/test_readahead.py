"""readers/readahead.py: sequential reads of a dataset on S3 (moto_server behind the netem
proxy) fetch ahead -- many requests in flight, in consumption order, within the byte budget --
and hand out exactly the local samples on every path."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs")

from netem import NetEm
from s3server import MotoServer

import fgbg.readers.formats.tar as tar_format
from fgbg.builder import BuildConfig, build
from fgbg.readers import open_dataset
from fgbg.readers.readahead import ReadAhead

CFG = BuildConfig(placements=4, shard_size=6)  # 72 samples, 12 shards
pytestmark = pytest.mark.xdist_group("s3")


def options(url: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "skip_instance_cache": True}


@pytest.fixture(scope="module")
def remote(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> str:
    import boto3

    boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket="readahead")
    build("s3://readahead/ds", CFG, *demo_inputs, progress=False, storage_options=options(moto.url), workers=1)
    return "s3://readahead/ds"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("local") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return out


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [s["key"] for s in got] == [s["key"] for s in want]
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], np.ndarray):
                assert np.array_equal(a[k], b[k]), (a["key"], k)
            else:
                assert bytes(a[k]) == bytes(b[k]) if isinstance(a[k], (bytes, memoryview)) else a[k] == b[k]


def test_every_sequential_path_hands_out_the_local_samples(moto: MotoServer, remote: str, local: Path,
                                                           tmp_path: Path) -> None:
    with NetEm(moto.port, delay=0.005) as proxy:
        for decode in (False, True):
            ds = open_dataset(remote, storage_options=options(proxy.url), decode=decode, check=True)
            want = open_dataset(local, decode=decode, check=True)
            _same(list(ds), list(want))
            spec = {"shuffle": True, "seed": 3, "epoch": 1, "buffer": 10}
            _same(list(ds.stream(**spec)), list(want.stream(**spec)))
            for rank in range(2):  # ranks split the epoch exactly as locally
                _same(list(ds.stream(rank=rank, world=2, **spec)), list(want.stream(rank=rank, world=2, **spec)))
        cached = open_dataset(remote, storage_options=options(proxy.url), cache_dir=tmp_path / "cache")
        _same(list(cached), list(open_dataset(local)))
        # a stream resumed mid-epoch: the buffered samples re-read, the rest fetched ahead
        ds = open_dataset(remote, storage_options=options(proxy.url))
        stream = ds.stream(shuffle=True, seed=1, buffer=8)
        first = [s["key"] for _, s in zip(range(30), stream, strict=False)]
        rest = [s["key"] for s in ds.stream(shuffle=True, seed=1, buffer=8, resume=stream.state_dict())]
        assert first + rest == [s["key"] for s in open_dataset(local).stream(shuffle=True, seed=1, buffer=8)]


def test_requests_are_in_flight_together_in_consumption_order(moto: MotoServer, remote: str) -> None:
    """One pass over 12 shards: receipts and windows of the next shards are requested while
    the first are consumed (several waiting at once), and the shards' GETs come in the order
    the pass reads them."""
    with NetEm(moto.port, delay=0.05) as proxy:
        ds = open_dataset(remote, storage_options=options(proxy.url), decode=False)
        proxy.reset_counts()
        assert len(list(ds)) == 72
        assert proxy.peak >= 4
        gets = [line.split()[1] for line in proxy.log if line.startswith("GET") and line.split()[1].endswith(".tar")]
        assert gets == sorted(gets) and len(gets) == 12


def test_the_byte_budget_holds_with_a_shard_larger_than_it(moto: MotoServer, remote: str, local: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of 16 KiB (each about one sample); a budget of 48 KiB, below any shard's size:
    the read-ahead never holds more than the budget plus one window, and the memory a pass
    allocates (measured with tracemalloc, against a pass without read-ahead) grows by no more
    than that -- while a large budget visibly holds whole shards ahead."""
    monkeypatch.setattr(tar_format, "WINDOW", 16 << 10)
    sizes = [s.bytes for s in open_dataset(local).shards]
    assert min(sizes) > 48 << 10
    made: list[ReadAhead] = []
    real = ReadAhead.__init__

    def keep(self: ReadAhead, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ReadAhead, "__init__", keep)
    peaks = {}
    with NetEm(moto.port) as proxy:
        for budget in (8 << 20, 0, 48 << 10, 8 << 20):  # the first pass warms the S3 client's caches
            ds = open_dataset(remote, storage_options=options(proxy.url), decode=False, read_ahead=budget)
            ds.get_many([0])
            tracemalloc.start()
            assert sum(1 for _ in ds) == 72
            peaks[budget] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    small, large = made[1], made[2]
    window = max(max(b - a for a, b in zip(r.boundaries(), r.boundaries()[1:], strict=False))
                 for r in open_dataset(local)._readers)
    assert small.peak <= (48 << 10) + window
    # beyond the budget, only the requests' own bookkeeping (a few in flight; HTTP and botocore
    # objects, measured at ~100 KiB each): a fixed allowance, not one that grows with the shards
    assert peaks[48 << 10] - peaks[0] <= (48 << 10) + window + (512 << 10)
    assert large.peak > 2 * max(sizes)
    assert peaks[8 << 20] - peaks[0] > 2 * max(sizes)  # the measurement sees what is held ahead


def test_read_ahead_off_reads_the_same(moto: MotoServer, remote: str, local: Path) -> None:
    ds = open_dataset(remote, storage_options=options(moto.url), read_ahead=0, decode=False)
    _same(list(ds), list(open_dataset(local, decode=False)))
