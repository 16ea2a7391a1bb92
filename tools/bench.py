"""fgbg benchmarks: every figure is measured in one run, on the same samples, and printed
with the ratio that matters, so results compare across machines of different speed.

    python tools/bench.py formats [--samples 4000]    # tar vs HDF5-encoded vs HDF5-raw-zstd

Speed goals live here, never as timed assertions in tests.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder import BuildConfig, build  # noqa: E402
from builder.demo import write_demo_inputs  # noqa: E402
from builder.manifest import read_json  # noqa: E402
from builder.shard import ShardBuilder  # noqa: E402
from builder.shards import ShardMeta, writer_class  # noqa: E402
from builder.storage import LocalStore  # noqa: E402
from readers import open_dataset  # noqa: E402


def _rate(n: int, fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in items per second."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def bench_formats(n_samples: int, work: Path) -> None:
    """Write, sequential read and random read of the same samples in the three layouts."""
    n_bg = 10
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    cfg = BuildConfig(placements=placements, shard_size=1000)
    src = work / "src"
    build(src, cfg, bg, fg, progress=False, workers=1)
    store = LocalStore(src)
    record = read_json(store, "build.json")
    builder = ShardBuilder(store, record)
    samples = list(builder.samples(0, decoded=True))  # one shard of samples, kept in memory
    n = len(samples)
    layouts = {"tar": ("tar", "encoded"), "hdf5-encoded": ("hdf5", "encoded"), "hdf5-raw-zstd": ("hdf5", "raw")}
    rows = []
    for name, (fmt, layout) in layouts.items():
        meta = ShardMeta(0, 0, n, int(record["key_width"]), cfg.size, cfg.depth_shape, layout)
        path = work / f"w-{name}"

        def write(fmt: str = fmt, meta: ShardMeta = meta, path: Path = path) -> None:
            with writer_class(fmt)(path, meta) as w:
                for s in samples:
                    w.add(s)
                w.close()

        write_rate = _rate(n, write)
        size = path.stat().st_size / n
        ds_path = work / f"ds-{name}"
        build(ds_path, cfg, bg, fg, formats=(fmt,), hdf5_layout=layout, progress=False, workers=2)
        ds = open_dataset(ds_path)
        total = len(ds)
        seq = _rate(total, lambda ds=ds: sum(1 for _ in ds))
        idx = random.Random(0).sample(range(total), min(total, 2000))
        rnd = _rate(len(idx), lambda ds=ds, idx=idx: [ds[i] for i in idx])
        undecoded = _rate(total, lambda ds=ds: sum(1 for s in range(len(ds.shards)) for _ in ds.iter_members(s)))
        rows.append((name, write_rate, size, seq, rnd, undecoded))
        ds.close()
    base = rows[0]
    print(f"\nformats: {n} samples written, {total} read; 224x224 JPEG q90 + PNG mask + PNG depth; warm page cache")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, one core\n")
    print("| layout | write samples/s | bytes/sample | seq read decoded/s | random read decoded/s "
          "| seq read undecoded/s |")
    print("|---|---|---|---|---|---|")
    for name, w, b, s, r, u in rows:
        print(f"| {name} | {w:,.0f} ({w / base[1]:.2f}x) | {b:,.0f} ({b / base[2]:.2f}x) "
              f"| {s:,.0f} ({s / base[3]:.2f}x) | {r:,.0f} ({r / base[4]:.2f}x) | {u:,.0f} ({u / base[5]:.2f}x) |")
    print("\nratios are against tar in the same run")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="bench", required=True)
    f = sub.add_parser("formats", help="tar vs HDF5 encoded vs HDF5 raw: write, read, size")
    f.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="fgbg-bench-"))
    try:
        if a.bench == "formats":
            bench_formats(a.samples, work)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
