"""The dataset formats a user would pick instead of fgbg, measured on the same encoded sample bytes, one CPU core.

Why: "fgbg reads N samples/s" says little on its own. ``tools/bench.py read`` calls :func:`run_peers` with the
very bytes it gives fgbg, so fgbg and each peer are printed side by side from one run, and the ratios hold on
any machine. Each peer is written with the library's own writer at its defaults (64 MB shards: MDS's default;
LitData needs one given, "64MB" as in its README), read back with its own reader as a ``{suffix: bytes}`` dict,
and only then handed to the caller's ``decode``, so decoding costs the same everywhere and only the format
differs.

The peers pull in torch and much else, so they live in their own environment, never in fgbg's (pin as tested):

    python3 -m venv peervenv && peervenv/bin/pip install torch==2.13.0   # the CPU build; unpinned is CUDA, GBs
    echo torch==2.13.0 > c.txt && peervenv/bin/pip install -c c.txt numpy opencv-python-headless \\
        webdataset==1.0.2 mosaicml-streaming==0.13.0 litdata==0.2.76 datasets==5.0.1 pylance==14.0.2 pyarrow==26.0.1

torchvision 0.28.0 comes in with mosaicml-streaming and does not load beside the CPU torch: see ``_mds`` for the
stand-in module. A peer that is not installed, or that fails, is reported with zeros and a ``note``; the others
still run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Sample = dict[str, bytes]  # {"jpg": ..., "mask.png": ..., "depth.png": ..., "json": ...}: webdataset suffixes

# key -> (import name, pip name, format): the pip name gives the version and the install hint
PEERS: dict[str, tuple[str, str, str]] = {
    "mds": ("streaming", "mosaicml-streaming", "MDS"),
    "litdata": ("litdata", "litdata", "LitData chunks"),
    "datasets": ("datasets", "datasets", "Arrow"),
    "lance": ("lance", "pylance", "Lance"),
    "webdataset": ("webdataset", "webdataset", "tar"),
}


@dataclass
class PeerResult:
    """One peer's rates in samples/s (0 where not measured: see ``note``), best of the interleaved repeats."""

    name: str  # e.g. "mosaicml-streaming 0.13.0 (MDS)", with the installed version
    write: float
    seq_raw: float  # sequential, every member's bytes touched (len), not decoded
    seq_decoded: float  # sequential, each sample through decode()
    rand_raw: float  # in the caller's order, through the format's own random-access API
    rand_decoded: float
    bytes_per_sample: float  # on-disk bytes / n
    note: str = ""


@dataclass
class _Peer:
    """How to write, open, stream and index one format; the harness times every peer alike."""

    write: Callable[[list[Sample], Path], None]
    open: Callable[[Path], Any]
    iterate: Callable[[Any], Iterable[Sample]]
    get: Callable[[Any, int], Sample] | None  # None: the format has no random access
    size: Callable[[Path], int]  # on-disk bytes of what open() reads


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _mds(n: int) -> _Peer:
    # streaming/__init__ imports streaming.vision, which imports torchvision; a torchvision wheel that does not
    # match the installed torch (torchvision 0.28.0 beside the local torch 2.13.0+cpu) raises RuntimeError
    # "operator torchvision::nms does not exist" on import. MDS needs none of it: an empty module stands in.
    if "streaming" not in sys.modules:
        sys.modules.setdefault("streaming.vision", types.ModuleType("streaming.vision"))
    from streaming import MDSWriter, StreamingDataset

    def write(samples: list[Sample], out: Path) -> None:
        with MDSWriter(out=str(out), columns=dict.fromkeys(samples[0], "bytes"), max_workers=1) as w:
            for s in samples:
                w.write(s)

    # StreamingDataset, not the bare LocalDataset: it is what MDS users train from (local dir, no remote). Its
    # iterator yields only what a "ready" thread has passed, which runs at most `predownload` samples ahead and
    # then sleeps 7 ms: the default 8 x batch_size (8 here) caps iteration at ~1,100 samples/s. Local shards need
    # no download, so the whole dataset may be ready at once.
    def open_(d: Path) -> Any:
        return StreamingDataset(local=str(d), shuffle=False, batch_size=1, predownload=n)

    return _Peer(write, open_, iter, lambda ds, i: ds[i], _du)


def _litdata() -> _Peer:
    import litdata
    from litdata.streaming.writer import BinaryWriter

    def write(samples: list[Sample], out: Path) -> None:
        # what litdata.optimize(num_workers=1) runs inside, without its worker process
        w = BinaryWriter(str(out), chunk_bytes="64MB")
        for i, s in enumerate(samples):
            w.add_item(i, s)
        w.done()
        w.merge()

    # ds[i] (0.2.76) decodes the whole 256-row Arrow record batch around i and keeps only that window:
    # cheap in key order, one batch decode per item in random order (batch_decode=0 does not change it)
    return _Peer(write, lambda d: litdata.StreamingDataset(str(d)), iter, lambda ds, i: ds[i], _du)


def _datasets() -> _Peer:
    import datasets

    datasets.disable_progress_bars()

    def write(samples: list[Sample], out: Path) -> None:
        keys = list(samples[0])
        features = datasets.Features({k: datasets.Value("binary") for k in keys})
        datasets.Dataset.from_dict({k: [s[k] for s in samples] for k in keys}, features=features).save_to_disk(out)

    return _Peer(write, lambda d: datasets.load_from_disk(str(d)), iter, lambda ds, i: ds[i], _du)


def _lance(keys: list[str]) -> _Peer:
    import lance
    import pyarrow as pa

    columns = {k.replace(".", "_"): k for k in keys}  # Lance takes "mask.png" as a nested field: "mask_png"

    def write(samples: list[Sample], out: Path) -> None:
        table = pa.table({c: pa.array([s[k] for s in samples], pa.binary()) for c, k in columns.items()})
        lance.write_dataset(table, str(out))

    def iterate(ds: Any) -> Iterator[Sample]:
        for batch in ds.to_batches(columns=list(columns)):
            yield from (dict(zip(keys, values, strict=True)) for values in zip(
                *(batch.column(c).to_pylist() for c in columns), strict=True))

    def get(ds: Any, i: int) -> Sample:
        return {columns[c]: v for c, v in ds.take([i], columns=list(columns)).to_pylist()[0].items()}

    return _Peer(write, lambda d: lance.dataset(str(d)), iterate, get, _du)


def _webdataset(tar_urls: list[str]) -> _Peer:
    import webdataset as wds

    def write(samples: list[Sample], out: Path) -> None:
        out.mkdir(parents=True)
        with wds.TarWriter(str(out / "shard-000000.tar")) as w:
            for i, s in enumerate(samples):
                w.write({"__key__": f"{i:08d}", **s})

    def urls(d: Path) -> list[str]:  # the caller's tars (fgbg's own shards); what write() made if none
        return list(tar_urls) or [str(p) for p in sorted(d.glob("*.tar"))]

    def iterate(urls: list[str]) -> Iterator[Sample]:
        for s in wds.WebDataset(urls, shardshuffle=False):
            yield {k: v for k, v in s.items() if not k.startswith("__")}

    return _Peer(write, urls, iterate, None, lambda d: sum(os.path.getsize(u) for u in urls(d)))


def _one_core() -> None:
    """One thread per library where it has a knob; the caller pins the process (taskset) for the rest."""
    for var in ("LANCE_CPU_THREADS", "LANCE_IO_THREADS", "OMP_NUM_THREADS"):  # read when lance/torch start
        os.environ.setdefault(var, "1")
    if importlib.util.find_spec("pyarrow") is not None:  # datasets and lance read through Arrow
        import pyarrow as pa

        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)


def _check(n: int, count: int) -> int:
    if count != n:
        raise RuntimeError(f"read {count} samples, wrote {n}")
    return count


def run_peers(samples: list[Sample], tar_urls: list[str], work: Path, decode: Callable[[Sample], object],
              order: list[int], repeat: int = 3, peers: Sequence[str] | None = None) -> list[PeerResult]:
    """Write, stream and randomly read ``samples`` in each peer format under ``work``; one result per peer.

    ``tar_urls`` must hold exactly ``samples``, in order (stock webdataset reads them; fgbg's own shards are
    meant). ``order`` is the random-access permutation, the same for every peer. Every dataset is written once,
    opened once (not timed) and read in full once, its bytes checked against ``samples``, so the page cache is
    warm and a peer never reports a fast wrong answer. Then ``repeat`` rounds time each column of each peer in
    turn, interleaved so a noisy moment on a shared machine hits every peer alike; each column reports the
    best (fastest) round, as ``tools/bench.py``'s ``_rate`` does. Write rates include the writer's final flush
    and index, into a fresh folder each round.
    """
    _one_core()
    n, keys = len(samples), list(samples[0])
    factories: dict[str, Callable[[], _Peer]] = {
        "mds": lambda: _mds(n), "litdata": _litdata, "datasets": _datasets,
        "lance": lambda: _lance(keys), "webdataset": lambda: _webdataset(tar_urls),
    }
    chosen = list(PEERS if peers is None else peers)
    if unknown := [p for p in chosen if p not in PEERS]:
        raise ValueError(f"unknown peers {unknown}; known: {list(PEERS)}")
    results: dict[str, PeerResult] = {}
    live: dict[str, tuple[_Peer, Any]] = {}  # peer, opened dataset
    for key in chosen:
        module, pip, fmt = PEERS[key]
        result = results[key] = PeerResult(f"{pip} ({fmt})", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        if importlib.util.find_spec(module) is None:
            result.note = f"skipped: not installed (pip install {pip})"
            continue
        try:
            result.name = f"{pip} {importlib.metadata.version(pip)} ({fmt})"
            peer = factories[key]()
            shutil.rmtree(work / key, ignore_errors=True)
            peer.write(samples, work / key / "data")
            ds = peer.open(work / key / "data")
            result.bytes_per_sample = peer.size(work / key / "data") / n
            count = 0
            for s in peer.iterate(ds):  # warm-up and proof: the same bytes come back
                if count >= n or s != samples[count]:
                    raise ValueError(f"sample {count} read back differs from the one written")
                count += 1
            _check(n, count)
            if peer.get is not None:
                for i in order:
                    if peer.get(ds, i) != samples[i]:
                        raise ValueError(f"sample {i} read back at random differs from the one written")
            live[key] = (peer, ds)
        except Exception as e:
            result.note = f"failed: {type(e).__name__}: {e}"
    for _ in range(repeat):
        for key, (peer, ds) in list(live.items()):
            try:
                _round(peer, ds, samples, work / key / "scratch", decode, order, results[key])
            except Exception as e:
                results[key].note = f"failed: {type(e).__name__}: {e}"
                del live[key]
    for key, (peer, _) in live.items():
        if peer.get is None:
            results[key].note = "no random access"
    return [results[k] for k in chosen]


def _round(peer: _Peer, ds: Any, samples: list[Sample], scratch: Path, decode: Callable[[Sample], object],
           order: list[int], result: PeerResult) -> None:
    """Time each column once and keep the best rate so far in ``result``."""
    n = len(samples)

    def seq(raw: bool) -> int:
        count = 0
        for s in peer.iterate(ds):
            if raw:
                sum(len(v) for v in s.values())
            else:
                decode(s)
            count += 1
        return _check(n, count)

    def rand(raw: bool) -> int:
        assert peer.get is not None
        for i in order:
            s = peer.get(ds, i)
            if raw:
                sum(len(v) for v in s.values())
            else:
                decode(s)
        return len(order)

    def write() -> int:
        peer.write(samples, scratch)
        return n

    shutil.rmtree(scratch, ignore_errors=True)
    columns: dict[str, Callable[[], int]] = {"write": write, "seq_raw": lambda: seq(True),
                                             "seq_decoded": lambda: seq(False)}
    if peer.get is not None:
        columns |= {"rand_raw": lambda: rand(True), "rand_decoded": lambda: rand(False)}
    for column, fn in columns.items():
        t = time.perf_counter()
        count = fn()
        rate = count / (time.perf_counter() - t)
        setattr(result, column, max(rate, getattr(result, column)))
