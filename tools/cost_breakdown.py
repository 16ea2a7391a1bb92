"""Where a sample's build time goes, stage by stage, in one worker process.

    python tools/cost_breakdown.py [--shards 3]

Builds a small dataset (20 bg x 20 fg x 2 x 5, no depth), then times ``ShardBuilder.build``
on the same shards with stages replaced by constants -- encoding (a fixed JPEG and PNG of
typical size), then also pasting, then also the statistics -- and the encode bound (the
same composites and masks encoded alone). What is left with all three replaced is what
no faster compositing or statistics could remove: tar headers, SHA-256, writes,
annotations and per-sample bookkeeping. Microseconds per sample, best of 3 runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fgbg.builder.shard as shard_module
from fgbg.builder import BuildConfig, build
from fgbg.builder.demo import write_demo_inputs
from fgbg.builder.encode import encode_jpeg_bgr, encode_mask_png
from fgbg.builder.manifest import read_record
from fgbg.builder.storage import LocalStore
from tools.bench import _rate


def _best(n: int, fn: Callable[[], object]) -> float:
    """Microseconds per item, best of 3 runs (bench's measure, inverted)."""
    return 1e6 / _rate(n, fn)


def _bound(worker: shard_module.ShardBuilder, shards: list[int], n: int) -> tuple[float, bytes, bytes]:
    """The encode bound of ``shards`` (us/sample), and a JPEG and a PNG of the average sizes."""
    arrays = [(np.ascontiguousarray(s.image[..., ::-1]), s.mask) for k in shards for s in worker.samples(k)]

    def encode() -> None:
        for image, mask in arrays:
            encode_jpeg_bgr(image, worker.cfg.quality)
            encode_mask_png(mask, worker.mask_png)

    bound = _best(n, encode)
    jpegs = [encode_jpeg_bgr(a, worker.cfg.quality) for a, _ in arrays]
    pngs = [encode_mask_png(m, worker.mask_png) for _, m in arrays]
    jpeg = jpegs[0] + bytes(max(0, sum(map(len, jpegs)) // len(jpegs) - len(jpegs[0])))
    png = pngs[0] + bytes(max(0, sum(map(len, pngs)) // len(pngs) - len(pngs[0])))
    return bound, jpeg, png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3, help="shards of 1000 samples timed (after one warm-up)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="fgbg-cost-") as tmp:
        bg, fg = write_demo_inputs(Path(tmp) / "inputs", 20, 20)
        build(Path(tmp) / "ds", BuildConfig(placements=5, shard_size=1000, depth="none"), bg, fg,
              progress=False, workers=1)
        store = LocalStore(Path(tmp) / "ds")
        worker = shard_module.ShardBuilder(store, read_record(store))
        shards = list(range(1, 1 + args.shards))
        n = sum(worker.plan.shard_range(s)[1] for s in shards)
        worker.build(0)  # warm: caches of prepared foregrounds
        full = _best(n, lambda: [worker.build(s) for s in shards])
        bound, jpeg, png = _bound(worker, shards, n)  # after: ~600 MB of composites are not held while timing
        zeros = (0.0, 0.0, 0.0, 0.0)
        stages: list[tuple[str, dict[str, object]]] = [  # applied one after the other
            ("build, encoding replaced", {"encode_jpeg_bgr": lambda image, quality: jpeg,
                                          "encode_mask_png": lambda mask, row_filter: png}),
            ("... and pasting replaced", {"paste": lambda *a: None}),
            ("... and statistics replaced", {"opencv_sums": lambda *a: (zeros, zeros)}),
        ]
        rows = [("encode bound (composites + masks encoded alone)", bound), ("build, all stages", full)]
        for label, stubs in stages:
            for name, stub in stubs.items():
                setattr(shard_module, name, stub)
            rows.append((label, _best(n, lambda: [worker.build(s) for s in shards])))
        worker.close()
    print(f"\n{n} samples, one process, microseconds per sample (best of 3)\n")
    print("| what | us/sample | of the encode bound |")
    print("|---|---|---|")
    for label, us in rows:
        print(f"| {label} | {us:.0f} | {us / rows[0][1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
