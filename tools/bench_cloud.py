"""``tools/bench.py cloud``: fgbg against the peers a user would pick instead, read from and
built to an S3 endpoint that behaves like a bucket far away.

A real ``moto_server`` on 127.0.0.1 sits behind :class:`netem.NetEm`, which adds a fixed delay
to every request and caps each connection's bandwidth (``--settings 20:80,50:40``: ms per
request : MB/s per connection). The same encoded samples are stored as fgbg tar shards (built
through the proxy: that is the build figure), as MDS and as LitData (their own writers,
uploaded directly), and read back cold -- empty caches, one process unless said -- each
figure measured in the same run, so the ratios hold on any machine:

- a full pass undecoded (fgbg ``iter(ds)``, ``ds.stream()``, ``cache_dir=``; MDS; LitData),
  decoded, and through a PyTorch DataLoader with 2 workers; time to first sample;
- random access: single ``ds[i]`` and ``get_many`` batches of 32 (MDS: single);
- a build to the bucket against the same build to a local folder.

The link bound is ``connections x`` the per-connection cap; the CPU bound is the same pass over
a local copy. The peers need their own environment (see ``tools/bench_peers.py``); without
them fgbg's figures are printed alone.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' moto_server launcher
sys.path.insert(0, str(ROOT / "tools"))

from netem import NetEm  # noqa: E402
from s3server import MotoServer, apply_env  # noqa: E402

__all__ = ["bench_cloud"]

BUCKET = "bench"


@dataclass
class Pass:
    """One cold read: samples, seconds to the first sample, seconds in all."""

    n: int
    first: float
    total: float

    @property
    def rate(self) -> float:
        return self.n / self.total if self.total else 0.0


def _timed(items: Iterable[Any], samples: Callable[[Any], int] = lambda _: 1) -> Pass:
    """A cold pass over ``items``, counting ``samples(item)`` samples in each (a DataLoader's
    list batches: ``len``)."""
    t = time.perf_counter()
    first = 0.0
    n = 0
    for item in items:
        if n == 0:
            first = time.perf_counter() - t
        n += samples(item)
    return Pass(n, first, time.perf_counter() - t)


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


def _cpu(moto: MotoServer) -> float:
    """CPU seconds used so far by moto_server and by this process (the proxy runs in it; the
    builder's workers are other processes)."""
    import psutil

    return sum(psutil.Process(moto.proc.pid).cpu_times()[:2]) + sum(psutil.Process().cpu_times()[:2])


def _opts(url: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url}, "skip_instance_cache": True}


def _fgbg_reads(url: str, proxy: str, scratch: Path) -> dict[str, Pass]:
    from fgbg.readers import open_dataset

    out: dict[str, Pass] = {}

    def ds(**kw: Any) -> Any:
        return open_dataset(url, storage_options=_opts(proxy), **kw)

    out["fgbg iter(ds), undecoded"] = _timed(ds(decode=False))
    out["fgbg ds.stream(), undecoded"] = _timed(ds(decode=False).stream())
    cache = scratch / "fgbg-cache"
    out["fgbg cache_dir=, undecoded"] = _timed(ds(decode=False, cache_dir=cache))
    shutil.rmtree(cache, ignore_errors=True)
    out["fgbg iter(ds), decoded"] = _timed(ds())
    try:
        import torch.utils.data as tud

        loader = tud.DataLoader(ds().torch_dataset(shuffle=False), batch_size=32, num_workers=2)
        out["fgbg DataLoader 2 workers, batches of 32, decoded"] = _timed(loader, lambda b: len(b["index"]))
        out["fgbg DataLoader 2 workers, batches of 32, undecoded"] = _timed(
            tud.DataLoader(ds(decode=False).torch_dataset(shuffle=False), batch_size=32, num_workers=2,
                           collate_fn=_as_list), len)
    except ImportError:
        pass
    return out


def _fgbg_random(url: str, proxy: str, n: int, count: int, scratch: Path) -> dict[str, float]:
    from fgbg.readers import open_dataset

    rng = random.Random(0)
    picks = [rng.randrange(n) for _ in range(count)]
    d = open_dataset(url, storage_options=_opts(proxy), decode=False, cache_dir=scratch / "random-cache")
    t = time.perf_counter()
    for i in picks:  # cold: each shard is downloaded whole on first touch, as MDS does
        d[i]
    cached = count / (time.perf_counter() - t)
    d = open_dataset(url, storage_options=_opts(proxy), decode=False)
    d.get_many([s.first for s in d.shards])  # receipts known: the steady state of a training job
    t = time.perf_counter()
    for i in picks:
        d[i]
    single = count / (time.perf_counter() - t)
    t = time.perf_counter()
    for k in range(0, count, 32):
        d.get_many(picks[k:k + 32])
    return {"fgbg random ds[i], cache_dir= (cold)": cached, "fgbg random ds[i], ranged GETs": single,
            "fgbg random get_many(32), ranged GETs": count / (time.perf_counter() - t)}


def _peers(moto: MotoServer, samples: list[dict[str, bytes]], work: Path) -> dict[str, str]:
    """Write MDS and LitData copies locally with their own writers and upload them; the URL of each."""
    import s3fs
    from bench_peers import PEERS, _litdata, _mds

    fs = s3fs.S3FileSystem(**_opts(moto.url))
    urls = {}
    for key in ("mds", "litdata"):
        if not _installed(PEERS[key][0]):
            continue
        out = work / key
        peer = _mds(len(samples)) if key == "mds" else _litdata()
        peer.write(samples, out)
        fs.put(str(out), f"{BUCKET}/{key}", recursive=True)
        urls[key] = f"s3://{BUCKET}/{key}"
    return urls


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _peer_reads(urls: dict[str, str], proxy: str, scratch: Path, n: int, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if "mds" in urls:
        os.environ["S3_ENDPOINT_URL"] = proxy
        from streaming import StreamingDataset

        def mds() -> Any:
            local = tempfile.mkdtemp(dir=scratch)
            return StreamingDataset(remote=urls["mds"], local=local, shuffle=False, batch_size=1)

        out["MDS 0.13, undecoded"] = _timed(mds())
        with contextlib.suppress(ImportError):
            import torch.utils.data as tud

            out["MDS DataLoader 2 workers, batches of 32, undecoded"] = _timed(
                tud.DataLoader(mds(), batch_size=32, num_workers=2, collate_fn=_as_list), len)
        d = mds()
        rng = random.Random(0)
        picks = [rng.randrange(n) for _ in range(count)]
        t = time.perf_counter()
        for i in picks:
            d[i]
        out["MDS random ds[i]"] = count / (time.perf_counter() - t)
    if "litdata" in urls:
        import litdata
        from litdata.streaming import downloader

        # LitData 0.2.76 fetches chunks with obstore, whose client refuses plain http (the local
        # endpoint) unless its options allow it; its own options carry no such switch
        downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": "true"}
        options = {"endpoint_url": proxy, **creds}
        d = litdata.StreamingDataset(urls["litdata"], storage_options=options,
                                     cache_dir=tempfile.mkdtemp(dir=scratch))
        out["LitData 0.2.76, undecoded"] = _timed(d)
        d = litdata.StreamingDataset(urls["litdata"], storage_options=options,
                                     cache_dir=tempfile.mkdtemp(dir=scratch))
        out["LitData DataLoader 2 workers, batches of 32, undecoded"] = _timed(
            litdata.StreamingDataLoader(d, batch_size=32, num_workers=2, collate_fn=_as_list), len)
    return out


def bench_cloud(n_samples: int, work: Path, settings: list[tuple[float, float]], peers: bool = True,
                connections: int = 16) -> None:
    from fgbg.builder import BuildConfig, build
    from fgbg.builder.demo import write_demo_inputs
    from fgbg.readers import open_dataset

    apply_env()
    n_bg = 10
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    cfg = BuildConfig(placements=placements, shard_size=1000)
    t = time.perf_counter()
    build(work / "local", cfg, bg, fg, progress=False, workers=2)
    local_build = time.perf_counter() - t
    local = open_dataset(work / "local", decode=False)
    n = len(local)
    size = sum(s.bytes for s in local.shards)
    cpu_bound = _timed(local).rate
    samples = [{MEMBER: bytes(s[f]) for f, MEMBER in _SUFFIX.items()} for s in local]
    moto = MotoServer()
    try:
        import s3fs

        s3fs.S3FileSystem(**_opts(moto.url)).mkdir(BUCKET)
        peer_urls = _peers(moto, samples, work) if peers else {}
        print(f"{n} samples, {size / 1e6:.1f} MB in {len(local.shards)} fgbg shards; cold reads, one process "
              f"unless said; fgbg connections={connections}\n")
        print(f"local (no network): build {local_build:.2f} s; undecoded pass {cpu_bound:,.0f} samples/s "
              "(the CPU bound)\n")
        for k, (delay_ms, mbps) in enumerate(settings):
            with NetEm(moto.port, delay=delay_ms / 1000, rate=mbps * 1e6) as proxy:
                url = f"s3://{BUCKET}/fgbg-{k}"
                server_cpu = _cpu(moto)
                t = time.perf_counter()
                build(url, cfg, bg, fg, progress=False, workers=2, storage_options=_opts(proxy.url))
                remote_build = time.perf_counter() - t
                server_cpu = _cpu(moto) - server_cpu
                scratch = Path(tempfile.mkdtemp(dir=work))
                rows: dict[str, Any] = dict(_fgbg_reads(url, proxy.url, scratch))
                rows.update(_peer_reads(peer_urls, proxy.url, scratch, n, 300))
                rows.update(_fgbg_random(url, proxy.url, n, 300, scratch))
            link = connections * mbps * 1e6 / (size / n)
            _print(delay_ms, mbps, rows, remote_build, local_build, link, cpu_bound)
            print(f"(the endpoint itself -- moto_server and the proxy, on this machine's cores -- used "
                  f"{server_cpu:.1f} s of CPU during the build)\n")
    finally:
        moto.stop()


_SUFFIX = {"image": "jpg", "mask": "mask.png", "depth": "depth.png", "meta": "json"}


def _print(delay_ms: float, mbps: float, rows: dict[str, Any], remote: float, local: float, link: float,
           cpu: float) -> None:
    print(f"## {delay_ms:g} ms a request, {mbps:g} MB/s a connection "
          f"(link bound {link:,.0f} samples/s; CPU bound {cpu:,.0f})\n")
    passes = {k: v for k, v in rows.items() if isinstance(v, Pass)}
    best_peer = max((v.rate for k, v in passes.items() if not k.startswith("fgbg")), default=0.0)  # undecoded
    print("| cold full pass | samples/s | first sample (s) | vs best peer | vs CPU bound |")
    print("|---|---|---|---|---|")
    for k, v in passes.items():
        vs = f"{v.rate / best_peer:.2f}x" if best_peer and k.startswith("fgbg") and "undecoded" in k else ""
        print(f"| {k} | {v.rate:,.0f} | {v.first:.3f} | {vs} | {v.rate / cpu:.0%} |")
    rand: dict[str, float] = {k: v for k, v in rows.items() if not isinstance(v, Pass)}
    best_rand = max((v for k, v in rand.items() if not k.startswith("fgbg")), default=0.0)
    print("\n| random access | samples/s | vs MDS |")
    print("|---|---|---|")
    for k, r in rand.items():
        vs = f"{r / best_rand:.2f}x" if best_rand and k.startswith("fgbg") else ""
        print(f"| {k} | {r:,.0f} | {vs} |")
    print(f"\nbuild to the bucket {remote:.2f} s vs local {local:.2f} s: {remote / local:.2f}x\n")
