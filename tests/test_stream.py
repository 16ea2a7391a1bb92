"""Training streams: exactly-once splits, determinism, resume, equal counts, memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import open_dataset
from fgbg.readers.stream import StreamSpec, buffer_order, consumer_plan

CFG = BuildConfig(placements=5, shard_size=40)  # 90 samples in 3 shards: fewer shards than most consumers


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("stream") / "ds"
    build(out, CFG, *demo_inputs, formats=("tar", "hdf5"), progress=False, workers=1)
    return out


def _keys(stream) -> list[tuple[int, bool]]:  # type: ignore[no-untyped-def]
    return [(s["meta"]["index"], bool(s.get("padding"))) for s in stream]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 1, 2, 4])
@pytest.mark.parametrize("partial", ["pad", "drop", "uneven"])
def test_exactly_once_per_epoch(dataset: Path, world: int, workers: int, partial: str) -> None:
    ds = open_dataset(dataset, fields=("meta",))
    n = len(ds)
    seen: list[int] = []
    per_rank = []
    for rank in range(world):
        got = []
        for worker in range(max(1, workers)):
            got += _keys(ds.stream(shuffle=True, seed=3, epoch=1, rank=rank, world=world, buffer=16,
                                   partial=partial, worker=worker, workers=max(1, workers)))
        per_rank.append(len(got))
        seen += [k for k, pad in got if not pad]
    if partial == "uneven":
        assert sorted(seen) == list(range(n)) and max(per_rank) - min(per_rank) <= 1
    elif partial == "pad":
        assert sorted(seen) == list(range(n)) and len(set(per_rank)) == 1 and per_rank[0] == -(-n // world)
    else:
        assert len(seen) == len(set(seen)) == (n // world) * world and len(set(per_rank)) == 1


def test_order_is_deterministic_and_changes_with_epoch(dataset: Path) -> None:
    ds = open_dataset(dataset, fields=("meta",))
    a = _keys(ds.stream(shuffle=True, seed=0, epoch=3, buffer=30))
    assert a == _keys(ds.stream(shuffle=True, seed=0, epoch=3, buffer=30))
    assert a != _keys(ds.stream(shuffle=True, seed=0, epoch=4, buffer=30))
    assert a != _keys(ds.stream(shuffle=True, seed=1, epoch=3, buffer=30))
    assert [k for k, _ in _keys(ds.stream())] == list(range(len(ds)))  # no shuffle: key order
    # shuffled well: not in key order, every shard's samples spread out
    order = [k for k, _ in a]
    assert order != sorted(order) and np.corrcoef(order, range(len(order)))[0, 1] < 0.9


def test_workers_get_different_seeds(dataset: Path) -> None:
    ds = open_dataset(dataset, fields=("meta",))
    w0 = [k for k, _ in _keys(ds.stream(shuffle=True, seed=0, worker=0, workers=2, buffer=40))]
    w1 = [k for k, _ in _keys(ds.stream(shuffle=True, seed=0, worker=1, workers=2, buffer=40))]
    assert not set(w0) & set(w1)
    rank0 = np.argsort(np.argsort(w0))
    rank1 = np.argsort(np.argsort(w1))[: len(rank0)]
    assert not np.array_equal(rank0, rank1)  # the same permutation pattern would mean the same seed


@pytest.mark.parametrize("fmt", ["tar", "hdf5"])
@pytest.mark.parametrize("stop", [0, 1, 7, 20, 44, 89, 90])
def test_resume_gives_the_remaining_sequence(dataset: Path, fmt: str, stop: int) -> None:
    ds = open_dataset(dataset, format=fmt)
    full = list(ds.stream(shuffle=True, seed=5, epoch=2, buffer=25))
    it = ds.stream(shuffle=True, seed=5, epoch=2, buffer=25)
    before = []
    gen = iter(it)
    for _ in range(stop):
        before.append(next(gen))
    state = json.loads(json.dumps(it.state_dict()))  # JSON-able
    assert state["yielded"] == stop and state["epoch"] == 2
    after = list(ds.stream(shuffle=True, seed=5, epoch=2, buffer=25, resume=state))
    assert [s["key"] for s in before + after] == [s["key"] for s in full]
    for a, b in zip(before + after, full, strict=True):
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])


def test_resume_refuses_another_stream(dataset: Path) -> None:
    ds = open_dataset(dataset, fields=("meta",))
    it = ds.stream(shuffle=True, seed=5, epoch=2)
    state = it.state_dict()
    with pytest.raises(ValueError, match="epoch: 2 != 3"):
        ds.stream(shuffle=True, seed=5, epoch=3, resume=state)


def test_buffer_bounds_the_cache() -> None:
    order, reads = buffer_order(1000, 50, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(1000))
    # output k can only be yielded after it was read; at most buffer + 1 (the incoming one) wait
    assert all(order[k] < reads[k] for k in range(1000))
    assert max(int(reads[k]) - k for k in range(1000)) == 51


def test_plan_with_fewer_shards_than_consumers() -> None:
    spec = StreamSpec(shuffle=True, seed=0, rank=5, world=8, worker=1, workers=3, buffer=4)
    plan = consumer_plan([0, 10], [10, 7], spec)  # 17 samples, 24 consumers
    assert len(plan) in (0, 1)


def test_normalize_and_resize(dataset: Path) -> None:
    ds = open_dataset(dataset)
    s = next(iter(ds.stream(normalize=True, resize=(112, 96))))
    assert s["image"].dtype == np.float32 and s["image"].shape == (96, 112, 3)
    assert s["mask"].shape == (96, 112) and set(np.unique(s["mask"]).tolist()) <= {0.0, 1.0}
    assert s["depth"].shape == (96, 112) and s["depth"].dtype == np.float32
    raw = next(iter(ds.stream()))
    stats = ds.statistics["image"]
    expected = (raw["image"][0, 0] / 255 - np.array(stats["mean"])) / np.array(stats["std"])
    full = next(iter(ds.stream(normalize=True)))
    assert np.allclose(full["image"][0, 0], expected, atol=1e-5)


def test_memory_flat_across_epochs(dataset: Path) -> None:
    ds = open_dataset(dataset)
    tracemalloc.start()
    peaks = []
    for epoch in range(10):
        for _ in ds.stream(shuffle=True, seed=0, epoch=epoch, buffer=30):
            pass
        peaks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert peaks[-1] - peaks[1] < 256 * 1024, peaks  # no growth from epoch 2 to epoch 10


def test_memory_fsspec_url(dataset: Path, tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for p in dataset.rglob("*"):
        if p.is_file():
            mem.pipe(f"/fgbgtest/{p.relative_to(dataset).as_posix()}", p.read_bytes())
    local = open_dataset(dataset)
    for fmt in ("tar", "hdf5"):
        remote = open_dataset("memory://fgbgtest", format=fmt)
        assert [s["key"] for s in remote] == [s["key"] for s in local]
        assert np.array_equal(remote[17]["image"], local[17]["image"])
        got = [s["key"] for s in remote.stream(shuffle=True, seed=1, buffer=10)]
        assert got == [s["key"] for s in local.stream(shuffle=True, seed=1, buffer=10)]
    cached = open_dataset("memory://fgbgtest", cache_dir=tmp_path / "cache")
    assert len(list(cached)) == len(local) and any((tmp_path / "cache").iterdir())


def test_epoch_slices_without_the_whole_order() -> None:
    """A consumer makes only its slice of the epoch's order (100M samples: 800 MB whole), and
    every slice equals the same slice of the whole order, shuffled or not."""
    from fgbg.readers.stream import _rng, epoch_sequence

    rng = np.random.default_rng(0)
    counts = rng.integers(1, 40, 30).tolist()
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    for shuffle in (False, True):
        order = _rng(5, 2, 0x5EED).permutation(30) if shuffle else np.arange(30)
        whole = np.concatenate([np.arange(firsts[s], firsts[s] + counts[s]) for s in order])
        assert np.array_equal(epoch_sequence(firsts, counts, shuffle, 5, 2), whole)
        for lo, hi in ((0, 1), (3, 97), (len(whole) - 5, len(whole)), (50, 50), (0, len(whole))):
            assert np.array_equal(epoch_sequence(firsts, counts, shuffle, 5, 2, lo, hi), whole[lo:hi])
