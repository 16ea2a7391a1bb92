"""fgbg benchmarks: every figure is measured in one run, on the same samples, and printed
with the ratio that matters, so results compare across machines of different speed.

    python tools/bench.py formats [--samples 4000]    # tar vs HDF5-encoded vs HDF5-raw-zstd
    python tools/bench.py depth [--input 224 --batches 1,8,32 --samples 64]   # DenseDepth stage
    python tools/bench.py depth --layers [--layers-bg 100 --layers-placements 20]   # --depth-layers, 400k samples
    python tools/bench.py read [--samples 4000]       # reader vs stock webdataset vs decode bound
    python tools/bench.py scale [--samples 20000]     # build throughput: local pool vs Ray, 1-2 workers
    python tools/bench.py build [--samples 20000]     # build vs encode bound, vs the seeds' way, writers
    python tools/bench.py verify [--samples 40000]    # verify vs --decode vs --deep vs build vs hashing
    python tools/bench.py cloud [--settings 20:80,50:40]   # S3 behind a latency/bandwidth proxy vs MDS, LitData

Speed goals live here, never as timed assertions in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
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

import numpy as np  # noqa: E402

from fgbg.builder import BuildConfig, build  # noqa: E402
from fgbg.builder.config import parse_size  # noqa: E402
from fgbg.builder.demo import write_demo_inputs  # noqa: E402
from fgbg.builder.manifest import read_record  # noqa: E402
from fgbg.builder.shard import ShardBuilder  # noqa: E402
from fgbg.builder.shards import ShardMeta, TarShardWriter, writer_class  # noqa: E402
from fgbg.builder.storage import LocalStore  # noqa: E402
from fgbg.readers import open_dataset  # noqa: E402
from fgbg.readers.formats.base import MEMBER_OF_FIELD  # noqa: E402


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
    record = read_record(store)
    builder = ShardBuilder(store, record)
    samples = list(builder.samples(0, decoded=True))  # one shard of samples, kept in memory
    zcfg = dataclasses.replace(cfg, members="zstd")
    build(work / "src-zstd", zcfg, bg, fg, progress=False, workers=1)
    zstore = LocalStore(work / "src-zstd")
    zsamples = list(ShardBuilder(zstore, read_record(zstore)).samples(0, decoded=True))
    n = len(samples)
    layouts = {"tar": ("tar", "encoded", cfg), "tar, --members zstd": ("tar", "encoded", zcfg),
               "tar.zst (frame per sample)": ("tarzst", "encoded", cfg),
               "tar.zst + --members zstd": ("tarzst", "encoded", zcfg),
               "hdf5-encoded": ("hdf5", "encoded", cfg), "hdf5-raw-zstd": ("hdf5", "raw", cfg)}
    rows = []
    for name, (fmt, layout, c) in layouts.items():
        meta = ShardMeta(0, 0, n, record.key_width, cfg.size, cfg.depth_shape, layout)
        path = work / f"w-{name}"
        these = zsamples if c is zcfg else samples

        def write(fmt: str = fmt, meta: ShardMeta = meta, path: Path = path, these: list = these) -> None:
            with writer_class(fmt)(path, meta) as w:
                for s in these:
                    w.add(s)
                w.close()

        write_rate = _rate(n, write)
        size = path.stat().st_size / n
        ds_path = work / f"ds-{name}"
        build(ds_path, c, bg, fg, formats=(fmt,), hdf5_layout=layout, progress=False, workers=2)
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
    bench_members([s.mask for s in samples], [s.depth for s in samples if s.depth is not None])


def bench_members(masks: list[np.ndarray], depths: list[np.ndarray]) -> None:
    """Masks and depth maps as fgbg stores them (PNG) against zstd-compressed raw arrays:
    bytes, encode and decode time per image (one core)."""
    import zstandard

    from fgbg.builder.encode import encode_mask_png, encode_png
    from fgbg.readers.decode import decode_member

    print("\n| member | encoding | bytes | encode us | decode us |\n|---|---|---|---|---|")
    for field, arrays, png in (("mask", masks, encode_mask_png), ("depth", depths, encode_png)):
        n = len(arrays)
        blobs = [png(a) for a in arrays]
        enc = _rate(n, lambda arrays=arrays, png=png: [png(a) for a in arrays])
        dec = _rate(n, lambda field=field, blobs=blobs: [decode_member(field, b) for b in blobs])
        print(f"| {field} | PNG (as stored) | {np.mean([len(b) for b in blobs]):.0f} | {1e6 / enc:.0f} | "
              f"{1e6 / dec:.0f} |")
        for level in (1, 3, 9):
            c, d = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
            blobs = [c.compress(a.tobytes()) for a in arrays]
            enc = _rate(n, lambda arrays=arrays, c=c: [c.compress(a.tobytes()) for a in arrays])
            dec = _rate(n, lambda blobs=blobs, d=d: [np.frombuffer(d.decompress(b), np.uint8) for b in blobs])
            print(f"| {field} | raw + zstd {level} | {np.mean([len(b) for b in blobs]):.0f} | {1e6 / enc:.0f} | "
                  f"{1e6 / dec:.0f} |")


_DEPTH_CANDIDATES = ("tensorflow:bfloat16", "onnxruntime:float32", "openvino:float32", "openvino:bfloat16",
                     "openvino:int8")


def bench_depth(side: int, candidates: list[str], images: int, n_samples: int, work: Path, device: str,
                batch: int, model_input: tuple[int, int] | None = None) -> None:
    """DenseDepth per runtime and precision against TensorFlow float32, same composites, same run:
    raw batched forward images/s, agreement of the raw output and of the 8-bit maps, and the
    end-to-end build (one worker process, all cores to the model) for the float32 reference,
    the fastest float32 and the fastest reduced precision.

    Random weights in the released nyu.h5 layout (full-width decoder, 42.8 M parameters): speed
    does not depend on the values; agreement does (random weights give nearly flat maps, which
    the per-image stretch amplifies), so ``fgbg depth-check`` with real weights is the word on it.
    """
    import os

    from fgbg.builder.commands.depth_check import depth_check
    from fgbg.builder.depth.densedepth.model import DecoderSpec
    from fgbg.builder.depth.densedepth.synthetic import make_random_weights

    os.environ.setdefault("FGBG_CACHE_DIR", str(work / "cache"))
    weights = work / "nyu_layout_random.h5"
    make_random_weights(weights, DecoderSpec.released(), side=64)
    options = {"weights": str(weights), "batch": batch, "device": device}
    base = {"size": side, "fg_size": (side * 100 // 224, side * 70 // 224), "depth": "densedepth",
            "depth_input": model_input}
    rows = []
    for c in candidates:
        runtime, dtype = c.split(":")
        cfg = BuildConfig(**base, depth_runtime=None if runtime == "tensorflow" else runtime,  # type: ignore[arg-type]
                          depth_dtype=dtype)
        rows.append((c, depth_check(cfg, options, images=images)))
    reference_rate = sum(r.reference_rate for _, r in rows) / len(rows)  # measured once per candidate
    w, h = model_input or (side, side)
    print(f"\ndepth: DenseDepth, released layout (42.8 M parameters), model input {w}x{h}, batch {batch}, {device}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {images} demo composites\n")
    print("| runtime, precision | raw forward img/s | x TF float32 | max rel err | 8-bit px differing | max levels |")
    print("|---|---|---|---|---|---|")
    print(f"| tensorflow float32 (reference) | {reference_rate:,.2f} | 1.00 | 0 | 0 | 0 |")
    for c, r in rows:
        print(f"| {c.replace(':', ' ')} | {r.candidate_rate:,.2f} | {r.candidate_rate / reference_rate:.2f} | "
              f"{r.max_rel_error:.1e} | {100 * r.pixels_differing:.2f}% | {r.max_levels} |")
    if n_samples <= 0:
        return
    float32 = max((r for r in rows if r[0].endswith("float32")), key=lambda r: r[1].candidate_rate, default=None)
    reduced = max((r for r in rows if not r[0].endswith("float32")), key=lambda r: r[1].candidate_rate, default=None)
    n_bg = 2
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    print(f"\nend to end (one worker process, all cores to the model: {placements * n_bg * n_bg * 2} samples "
          "composited, JPEG round trip, depth, encoded, written, committed; model loaded once, as in a build):\n")
    print("| runtime, precision | worker start s (model load; export cached) | samples/s | x raw forward |")
    print("|---|---|---|---|")
    for name in ["tensorflow:float32", *(r[0] for r in (float32, reduced) if r is not None)]:
        runtime, dtype = name.split(":")
        cfg = BuildConfig(**base, placements=placements, shard_size=10**6,  # type: ignore[arg-type]
                          depth_runtime=None if runtime == "tensorflow" else runtime, depth_dtype=dtype)
        build(work / f"ds-{name}", cfg, bg, fg, progress=False, workers=1, depth_options=options)
        store = LocalStore(work / f"ds-{name}")
        t0 = time.perf_counter()
        shard_builder = ShardBuilder(store, read_record(store), {**options, "threads": os.cpu_count()})
        start = time.perf_counter() - t0
        rate = _rate(placements * n_bg * n_bg * 2, lambda b=shard_builder: b.build(0), repeat=1)
        raw = reference_rate if name == "tensorflow:float32" else dict(rows)[name].candidate_rate
        print(f"| {name.replace(':', ' ')} | {start:.1f} | {rate:,.2f} | {rate / raw:.2f} |")
    _depth_by_workers(work, base, bg, fg, options, rows, reference_rate)


def _tiny_onnx(path: Path, side: int) -> Path:
    """A one-node ONNX depth model ([b,3,side,side] -> [b,side,side]: the normalised red
    channel), the shape of the MiDaS/Depth Anything exports: costs ~nothing, so a build with it
    measures everything but the model."""
    import onnx
    from onnx import TensorProto, helper

    idx = helper.make_tensor("idx", TensorProto.INT64, [], [0])
    graph = helper.make_graph([helper.make_node("Gather", ["image", "idx"], ["depth"], axis=1)], "tiny_depth",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", 3, side, side])],
                              [helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["b", side, side])], [idx])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def bench_depth_layers(work: Path, n_bg: int, n_fg: int, placements: int, workers: int, runtime: str,
                       per_composite: int) -> None:
    """``--depth-layers`` end to end: the seeds' n_bg x n_fg x 2 x placements at 224 px, tar,
    with DenseDepth (random weights in the released nyu.h5 layout: speed does not depend on the
    values) and with a tiny ONNX model; against per-composite inference of the same models on
    ``per_composite`` samples (same settings, one build each), extrapolated to the full count.
    Also: the stored predictions' format (float32 .npy, float16 .npy, 16-bit PNG, zstd)."""
    import os

    from fgbg.builder.depth.densedepth.model import DecoderSpec
    from fgbg.builder.depth.densedepth.synthetic import make_random_weights

    os.environ.setdefault("FGBG_CACHE_DIR", str(work / "cache"))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_fg)
    weights = work / "nyu_layout_random.h5"
    make_random_weights(weights, DecoderSpec.released(), side=64)
    tiny = _tiny_onnx(work / "tiny.onnx", 224)
    models = {
        f"DenseDepth ({runtime}, float32)": ({"depth": "densedepth", "depth_runtime": None if runtime == "tensorflow"
                                             else runtime}, {"weights": str(weights), "batch": 8}),
        "tiny ONNX (onnxruntime)": ({"depth": "onnx", "depth_preset": "custom:layout=nchw,norm=imagenet,"
                                     "output=inverse,resize=area", "depth_input": (224, 224)},
                                    {"model": str(tiny), "batch": 8}),
    }
    n = n_bg * n_fg * 2 * placements
    print(f"\ndepth layers: {n_bg} bg x {n_fg} fg x 2 flips x {placements} placements = {n:,} samples, 224 px, "
          f"tar, {workers} workers; {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| model | per composite samples/s | per composite, projected | --depth-layers end to end | samples/s |"
          " speed-up |")
    print("|---|---|---|---|---|---|")
    for name, (settings, options) in models.items():
        few = max(1, per_composite // (2 * 2 * 2))
        cfg = BuildConfig(placements=few, shard_size=10**6, **settings)  # type: ignore[arg-type]
        small = write_demo_inputs(work / "few", 2, 2) if not (work / "few").exists() else (work / "few/bg",
                                                                                            work / "few/fg")
        build(work / f"per-{len(name)}", cfg, *small, progress=False, workers=1, depth_options=options)
        store = LocalStore(work / f"per-{len(name)}")
        builder = ShardBuilder(store, read_record(store), {**options, "threads": os.cpu_count()})
        per = _rate(few * 8, lambda b=builder: b.build(0), repeat=1)
        builder.close()
        layered = BuildConfig(placements=placements, shard_size=1000, depth_layers=True, **settings)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        build(work / f"layers-{len(name)}", layered, bg, fg, progress=False, workers=workers, depth_options=options)
        seconds = time.perf_counter() - t0
        projected = n / per
        print(f"| {name} | {per:,.1f} | {projected / 3600:,.1f} h | {seconds:,.0f} s | {n / seconds:,.0f} | "
              f"{projected / seconds:,.0f}x |")
    for name, (settings, _) in models.items():
        _prediction_formats(work / f"layers-{len(name)}", name, "metric" if settings["depth"] == "densedepth"
                            else "inverse")


def _prediction_formats(dataset: Path, name: str, kind: str) -> None:
    """Stored predictions: bytes per background and the largest change of any 8-bit layered map
    pixel (the plain background stretched) when the values are rounded by the format."""
    import io

    import cv2
    import zstandard

    from fgbg.builder.depth.presets import stretch

    files = sorted((dataset / "inputs" / "bg_depth").glob("*.npy"))
    maps = np.stack([np.load(f) for f in files]).astype(np.float32)
    exact = stretch(maps.astype(np.float64), kind)

    def npy(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    png16 = np.rint((maps - lo) / np.where(hi > lo, hi - lo, 1) * 65535).astype(np.uint16)
    back16 = png16.astype(np.float64) / 65535 * (hi - lo) + lo
    rows = [("float32 .npy (stored)", sum(len(npy(m)) for m in maps), exact),
            ("float32 .npy + zstd 3", sum(len(zstandard.ZstdCompressor(3).compress(npy(m))) for m in maps), exact),
            ("float16 .npy", sum(len(npy(m.astype(np.float16))) for m in maps),
             stretch(maps.astype(np.float16).astype(np.float64), kind)),
            ("16-bit PNG, min/max per image (+ 2 floats)", sum(len(cv2.imencode(".png", m)[1]) + 8 for m in png16),
             stretch(back16, kind))]
    print(f"\nstored predictions of {name} ({len(maps)} maps of {maps.shape[2]}x{maps.shape[1]}):\n")
    print("| format | bytes per background | max 8-bit level change | pixels changed |")
    print("|---|---|---|---|")
    for name, size, got in rows:
        diff = np.abs(got.astype(np.int16) - exact.astype(np.int16))
        print(f"| {name} | {size / len(maps):,.0f} | {int(diff.max())} | {100 * (diff > 0).mean():.3f}% |")


def _steady_rate(out: Path, cfg: BuildConfig, bg: Path, fg: Path, workers: int, options: dict[str, object]) -> float:
    """samples/s of a build between its first ``workers`` committed shards and its last (the
    model loads and the first round left out, as a long build would see it)."""
    stamps: list[tuple[float, int]] = []
    build(out, cfg, bg, fg, progress=False, workers=workers, depth_options=options,
          on_shard=lambda r, new: stamps.append((time.perf_counter(), r.count)))
    done = stamps[workers - 1:]
    return sum(c for _, c in done[1:]) / (done[-1][0] - done[0][0])


def _depth_by_workers(work: Path, base: dict[str, object], bg: Path, fg: Path, options: dict[str, object],
                      rows: list[tuple[str, object]], reference_rate: float) -> None:
    """The default build (one worker per core, each model with cores / workers threads) against
    one worker with every core, per float32 runtime, and against the runtime's raw forward."""
    import os

    cores = os.cpu_count() or 1
    counts = sorted({1, cores})
    shards, size = 4 * cores, 16
    placements = max(1, shards * size // 8)
    print(f"\nby worker count (default: {cores}, one per core; each model gets cores / workers threads): "
          f"{placements * 8} samples in shards of {size}, steady rate between the first round of committed "
          "shards and the last\n")
    print("| runtime, precision | raw forward img/s (all cores) | " + " | ".join(f"--workers {w} samples/s"
                                                                       for w in counts) + " | default / raw |")
    print("|---|---|" + "---|" * len(counts) + "---|")
    for name in ["tensorflow:float32", *(c for c, _ in rows if c.endswith("float32"))]:
        runtime, dtype = name.split(":")
        cfg = BuildConfig(**base, placements=placements, shard_size=size,  # type: ignore[arg-type]
                          depth_runtime=None if runtime == "tensorflow" else runtime, depth_dtype=dtype)
        rates = {w: _steady_rate(work / f"w{w}-{name}", cfg, bg, fg, w, options) for w in counts}
        raw = reference_rate if name == "tensorflow:float32" else dict(rows)[name].candidate_rate  # type: ignore[attr-defined]
        print(f"| {name.replace(':', ' ')} | {raw:,.2f} | " + " | ".join(f"{rates[w]:,.2f}" for w in counts)
              + f" | {rates[cores] / raw:.2f} |")


def _cv2_decode(files: dict[str, bytes]) -> dict[str, object]:
    """The bare decoding of one sample's members with OpenCV (RGB image, gray PNGs, JSON)."""
    import json

    import cv2
    import numpy as np

    out: dict[str, object] = {}
    for suffix, data in files.items():
        buf = np.frombuffer(data, np.uint8)
        if suffix == "jpg":
            out[suffix] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        elif suffix.endswith("png"):
            out[suffix] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        elif suffix == "json":
            out[suffix] = json.loads(data)
    return out


def bench_read(n_samples: int, work: Path, peers: bool) -> None:
    """fgbg's readers against the formats a user would pick instead, on the same encoded bytes
    (one core: run under ``taskset -c 0``; warm page cache; best of 3 interleaved repeats).

    Columns: write (fgbg: its tar writer with sha256 and fsync), sequential and random reads,
    undecoded (every member's bytes in hand) and decoded (image, mask, depth, annotation).
    Peers decode with OpenCV and ``json`` (what their users write); fgbg with its own decoders
    -- the same pixels, checked by the tests. Peers: ``pip install -e ".[bench]"``.
    """
    import random

    from fgbg.builder.shards.base import EncodedSample
    from fgbg.readers.decode import check_pixels

    n_bg = 10
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    out = work / "ds"
    build(out, BuildConfig(placements=placements, shard_size=1000), bg, fg, progress=False)
    ds, raw = open_dataset(out), open_dataset(out, decode=False)
    n = len(ds)
    order = list(range(n))
    random.Random(0).shuffle(order)
    urls = [str(out / s.name) for s in ds.shards]
    payload = [{MEMBER_OF_FIELD[f]: bytes(s[f]) for f in ds.fields} for s in raw]  # views -> bytes
    on_disk = sum(s.bytes for s in ds.shards)

    def write() -> None:
        meta = ShardMeta(0, 0, n, ds.key_width, 224, (112, 112))
        with TarShardWriter(work / "w.tar", meta) as w:
            for k, files in enumerate(payload):
                w.add(EncodedSample(f"{k:0{ds.key_width}d}", files))
            w.close()

    def touch(samples: object) -> int:
        return sum(len(v) for s in samples for k, v in s.items() if k != "key")  # type: ignore[attr-defined]

    figures = {
        "write": _rate(n, write),
        "seq_raw": _rate(n, lambda: touch(raw)),
        "seq_decoded": _rate(n, lambda: sum(1 for _ in ds)),
        "rand_raw": _rate(n, lambda: touch(raw[i] for i in order)),
        "rand_decoded": _rate(n, lambda: [ds[i] for i in order]),
    }
    batches = [order[k:k + 256] for k in range(0, n, 256)]
    extra = {
        "get_many, batches of 256 random indices, undecoded": _rate(n, lambda: [raw.get_many(b) for b in batches]),
        "get_many, batches of 256 random indices, decoded": _rate(n, lambda: [ds.get_many(b) for b in batches]),
        "iter(ds), decoded at 1/2 size (reduce=2: DCT-scaled JPEG)": _rate(n, lambda: sum(
            1 for _ in open_dataset(out, reduce=2))),
        "iter(ds) with check=True (per-sample digests)": _rate(n, lambda: sum(
            1 for _ in open_dataset(out, check=True))),
        "iter(ds) with the background field too (decoded once per process, copied per sample)": _rate(n, lambda: sum(
            1 for _ in open_dataset(out, fields=(*ds.fields, "background")))),
        "iter(ds) with the foreground field too (each person placed on a transparent layer)": _rate(n, lambda: sum(
            1 for _ in open_dataset(out, fields=(*ds.fields, "foreground")))),
        "undecoded iteration + the peers' OpenCV decoding": _rate(n, lambda: [_cv2_decode(_files(s)) for s in raw]),
        "decode bound: the peers' OpenCV decoding of the bytes in memory": _rate(n, lambda: [
            _cv2_decode(p) for p in payload]),
    }
    pixels = [v for p in payload for k, v in p.items() if k != "json"]
    bomb = _rate(len(pixels), lambda: [check_pixels(v) for v in pixels]) / 3  # three images per sample
    print(f"\nread: {n} samples (224x224 JPEG q90, PNG mask, PNG depth, JSON), tar shards, one core, warm cache")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    rows = [("fgbg (tar, this version)", figures, on_disk / n, "")]
    if peers:
        from bench_peers import run_peers

        for r in run_peers(payload, urls, work / "peers", _cv2_decode, order):
            rows.append((r.name, {"write": r.write, "seq_raw": r.seq_raw, "seq_decoded": r.seq_decoded,
                                  "rand_raw": r.rand_raw, "rand_decoded": r.rand_decoded}, r.bytes_per_sample, r.note))
    cols = ("write", "seq_raw", "seq_decoded", "rand_raw", "rand_decoded")
    print("samples/s (fgbg ÷ peer in brackets: above 1 = fgbg faster)\n")
    print("| format | write | sequential, undecoded | sequential, decoded | random, undecoded | random, decoded "
          "| bytes/sample |")
    print("|---|---|---|---|---|---|---|")
    for name, f, size, note in rows:
        cells = [f"{f[c]:,.0f}" + (f" ({figures[c] / f[c]:.2f})" if f is not figures and f[c] else "") for c in cols]
        if note and not any(f[c] for c in cols):
            cells = [note] + [""] * (len(cols) - 1)
        print(f"| {name} | {' | '.join(cells)} | {size:,.0f} |" + (f" {note}" if note and any(f.values()) else ""))
    print("\n| fgbg, more | samples/s |\n|---|---|")
    for name, rate in extra.items():
        print(f"| {name} | {rate:,.0f} |")
    per_sample = 1 / bomb
    print(f"\ndecompression-bomb checks (header sizes of the 3 images): {per_sample * 1e6:.1f} us/sample = "
          f"{per_sample * figures['seq_decoded']:.1%} of a decoded read")


def _files(sample: dict[str, object]) -> dict[str, bytes]:
    """A raw sample as tar member suffix -> bytes (what the peers' decoding takes)."""
    return {MEMBER_OF_FIELD[f]: v for f, v in sample.items() if f != "key"}  # type: ignore[misc]


def bench_view(n_samples: int, work: Path) -> None:
    """``fgbg view`` on a large dataset: server start to the first grid page, the annotations
    index load (in the background), a page of 100 thumbnails, a filtered page, a sample page."""
    import json
    import threading
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from fgbg.builder.view import ViewData
    from fgbg.builder.view.server import ViewServer

    n_bg = 100
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    out = work / "ds"
    t = time.perf_counter()
    build(out, BuildConfig(placements=placements, depth="plane"), bg, fg, progress=False, workers=2)
    built = time.perf_counter() - t

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url) as r:
            return r.read()  # type: ignore[no-any-return]

    t0 = time.perf_counter()
    server = ViewServer(("127.0.0.1", 0), ViewData(str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = fetch(server.url + "api/samples?page=2000&per=100")
    start = time.perf_counter() - t0
    n = len(server.data.ds)
    server.data.index()
    index_ready = time.perf_counter() - t0
    items = [it["index"] for it in json.loads(page)["items"]]

    def thumbs(workers: int) -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fetch, [f"{server.url}img/thumb/{i}.jpg?mode=plain" for i in items]))
        return time.perf_counter() - t

    one, six = min(thumbs(1) for _ in range(3)), min(thumbs(6) for _ in range(3))
    t2 = time.perf_counter()
    fetch(server.url + "api/samples?page=3&per=100&bg=7&flip=1")
    filtered = time.perf_counter() - t2
    t3 = time.perf_counter()
    fetch(server.url + f"api/sample/{n // 2}?bg=7")
    sample = time.perf_counter() - t3
    server.shutdown()
    print(f"\nview: {n:,} samples ({built:.0f} s to build), {platform.processor() or platform.machine()}\n")
    print("| what | measured | goal |\n|---|---|---|")
    print(f"| server start to the first grid page (page 2,001 of {n // 100:,}) | {start * 1e3:.0f} ms | < 1 s |")
    print(f"| annotations index loaded (background thread, from start) | {index_ready * 1e3:.0f} ms | |")
    print(f"| 100 thumbnails, one connection | {one * 1e3:.0f} ms | < 300 ms |")
    print(f"| 100 thumbnails, 6 connections (as a browser loads them) | {six * 1e3:.0f} ms | < 300 ms |")
    print(f"| a filtered page (bg and flip, index loaded) | {filtered * 1e3:.1f} ms | |")
    print(f"| a sample page's data | {sample * 1e3:.1f} ms | |")


def bench_compose(n_samples: int, work: Path) -> None:
    """Build throughput (one worker, no depth, tar) per compositing option against the default."""
    n_bg = 10
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    options: dict[str, dict[str, object]] = {
        "alpha (default)": {}, "hard": {"blend": "hard"}, "feather:3": {"blend": "feather:3"},
        "poisson": {"blend": "poisson"}, "harmonize 0.5": {"harmonize": 0.5}, "rotate 30": {"rotate": 30},
        "feather:3 + harmonize 0.5": {"blend": "feather:3", "harmonize": 0.5},
        "fg-scale 0.7-1.3 (a size per sample, as floor)": {"fg_scale": (0.7, 1.3)},
        "people 1-3": {"people": (1, 3), "max_occlusion": 0.5},
        "people 2-4, occlusion 0.3": {"people": (2, 4), "max_occlusion": 0.3},
        "position floor": {"position": "floor", "person_height": (1.5, 1.9)},
        "people 1-3 + floor": {"people": (1, 3), "max_occlusion": 0.5, "position": "floor",
                               "person_height": (1.5, 1.9)}}
    rates = {}
    for k, (name, option) in enumerate(options.items()):
        cfg = BuildConfig(placements=placements, depth="none", **option)  # type: ignore[arg-type]
        t = time.perf_counter()
        res = build(work / f"c{k}", cfg, bg, fg, progress=False, workers=1)
        rates[name] = res.samples / (time.perf_counter() - t)
        shutil.rmtree(work / f"c{k}")
    base = rates["alpha (default)"]
    print(f"\ncompose: {res.samples} samples per build, 224 px, one worker, no depth, tar\n")
    print("| option | samples/s | × default |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")


# The child's own peak: VmHWM belongs to the address space made by exec (ru_maxrss is carried
# over from the parent across fork + exec on Linux: a big parent made every child look big).
_PEAK_RSS = """
def peak_rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
"""


def bench_metadata(n_samples: int, work: Path, index_samples: int = 10_000_000) -> None:
    """The metadata of an N-sample dataset without its pixels: a real demo build's manifest
    with its shard list grown to N samples (entries as the builder writes them; shard files
    absent -- opening reads none -- but the first, a real shard of 1,000 samples with its
    receipt), then in a fresh process: open_dataset time and peak RSS, len, the epoch plan of
    consumer 63 x 7 of a 64-rank x 8-worker shuffled stream, and ds[i] in the real shard."""
    import json
    import subprocess

    bg, fg = write_demo_inputs(work / "inputs", 10, 10)
    build(work / "src", BuildConfig(placements=5, shard_size=1000), bg, fg, progress=False, workers=1)
    manifest = json.loads((work / "src" / "manifest.json").read_bytes())
    per = 1000
    real = manifest["shards"]["tar"][0]
    entry = {**real, "bytes": 15_000 * per}  # as a real 1000-sample shard (15 kB each)
    manifest["shards"]["tar"] = [real] + [{**entry, "name": f"shards/{s:06d}.tar", "first": s * per, "count": per}
                                          for s in range(1, n_samples // per)]
    manifest["totals"].update(samples=n_samples, shards=n_samples // per,
                              bytes={"tar": sum(e["bytes"] for e in manifest["shards"]["tar"])})
    manifest["key_width"] = max(8, len(str(n_samples - 1)))
    out = work / "big"
    (out / "shards").mkdir(parents=True)
    for name in ("shards/000000.tar", "shards/000000.tar.json"):
        shutil.copy(work / "src" / name, out / name)
    data = json.dumps(manifest).encode()
    (out / "manifest.json").write_bytes(data)
    index_per_sample = (work / "src" / "annotations.csv").stat().st_size / len(open_dataset(work / "src"))
    code = _PEAK_RSS + f"""
import time
t0 = time.perf_counter()
from fgbg.readers import open_dataset
from fgbg.readers.stream import StreamSpec, consumer_plan
t1 = time.perf_counter()
ds = open_dataset({str(out)!r})
t2 = time.perf_counter()
plan = consumer_plan(ds._firsts, [s.count for s in ds.shards], StreamSpec(True, 0, 0, 63, 64, 7, 8, 2000, "pad"))
t3 = time.perf_counter()
first = time.perf_counter(); ds[500]; t4 = time.perf_counter()
again = [time.perf_counter(), ds[123], time.perf_counter()]
print(t1 - t0, t2 - t1, t3 - t2, len(plan), peak_rss_mib(), t4 - first, again[2] - again[0])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stderr)
    imp, opened, planned, n_plan, rss, first_read, next_read = (float(v) for v in run.stdout.split())
    print(f"\nmetadata: {n_samples:,} samples in {n_samples // per:,} shards (no pixels)\n")
    print("| what | measured | goal |\n|---|---|---|")
    print(f"| manifest.json | {len(data) / 1e6:.1f} MB ({len(data) / n_samples:.2f} bytes/sample) | |")
    print(f"| open_dataset (after a {imp:.2f} s import) | {opened:.2f} s | < 1 s |")
    print(f"| peak RSS of that process (open + one consumer's plan) | {rss:.0f} MiB | < 200 MB |")
    print(f"| epoch plan of consumer 63x7 of 64x8, shuffled | {planned:.2f} s ({n_plan:,.0f} samples) | |")
    print(f"| ds[i], decoded: the shard's first read (its receipt parsed) / the next | "
          f"{first_read * 1e3:.1f} ms / {next_read * 1e3:.2f} ms | |")
    print(f"| annotations.csv (the demo build) | {index_per_sample:.1f} bytes/sample | <= 10 |")
    bench_index(index_samples, work)


def bench_index(n_samples: int, work: Path) -> None:
    """The annotations index of an N-sample plan (1,000 backgrounds x 1,000 foregrounds x 2
    flips, placements to N; no pixels), written as the builder streams it: CSV and Parquet,
    with and without scale jitter; then the Parquet file opened as verify opens it and one
    shard's rows read (what verify pays per shard), in a fresh process for its RSS."""
    import subprocess

    from fgbg.builder.index_parquet import parquet_chunks
    from fgbg.builder.manifest import annotation_chunks
    from fgbg.builder.plan import Plan

    placements = max(1, n_samples // 2_000_000)
    rows = []
    for jitter in ((1.0, 1.0), (0.7, 1.3)):
        plan = Plan(BuildConfig(placements=placements, fg_scale=jitter), [(100, 70)] * 1000, 1000)
        width = max(8, len(str(plan.n_samples - 1)))
        t = time.perf_counter()
        plan.params(0, min(plan.n_samples, 1_000_000))
        per_plan = (time.perf_counter() - t) / min(plan.n_samples, 1_000_000)
        for kind, chunks in (("csv", annotation_chunks), ("parquet", parquet_chunks)):
            t = time.perf_counter()
            target = work / f"index-{kind}-{jitter[1]}"
            with open(target, "wb") as f:
                size = sum(f.write(c) for c in chunks(plan, width))
            rows.append((kind, jitter, size / plan.n_samples, time.perf_counter() - t, plan.n_samples, per_plan))
    pq_file = work / "index-parquet-1.3"
    manifest = {"totals": plan.n_samples}
    code = _PEAK_RSS + f"""
import time
from fgbg.readers.fs import Location
from fgbg.readers.index import IndexRows
class M:  # the two facts IndexRows reads of a manifest
    class totals: samples = {manifest['totals']}
import shutil, os
os.makedirs({str(work / 'pqds')!r}, exist_ok=True)
shutil.copy({str(pq_file)!r}, {str(work / 'pqds' / 'annotations.parquet')!r})
t = time.perf_counter()
rows = IndexRows(Location({str(work / 'pqds')!r}), M)
t1 = time.perf_counter()
part = rows.rows({plan.n_samples // 2}, 1000)
t2 = time.perf_counter()
part = rows.rows({plan.n_samples // 2 + 1000}, 1000)
t3 = time.perf_counter()
print(t1 - t, t2 - t1, t3 - t2, len(rows.groups), peak_rss_mib())
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stderr)
    opened, first, nxt, groups, rss = (float(v) for v in run.stdout.split())
    print(f"\nannotations index: {rows[0][4]:,} samples (plan: {rows[0][5] * 1e6:.2f} us/sample, "
          f"{rows[0][5] * 1e8 / 60:.1f} min per 100M)\n")
    print("| index | scale jitter | bytes/sample | at 100M | write (plan included) |\n|---|---|---|---|---|")
    for kind, jitter, per, seconds, n, _ in rows:
        print(f"| {kind} | {'no' if jitter == (1.0, 1.0) else '0.7-1.3'} | {per:.2f} | {per * 1e8 / 1e9:.2f} GB | "
              f"{seconds:.1f} s ({n / seconds / 1e6:.2f} M rows/s) |")
    print(f"\nParquet (jitter), opened as verify does: footer {opened * 1e3:.0f} ms ({groups:.0f} row groups); "
          f"one shard's rows {first * 1e3:.0f} ms (its row group read), the next shard's {nxt * 1e3:.2f} ms "
          f"(cached); peak RSS {rss:.0f} MiB")


def bench_scale(n_samples: int, work: Path, depth: str) -> None:
    """Build samples/s with the local process pool and with Ray, for 1 and 2 workers."""
    import os

    import ray

    n_bg = 20
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    cfg = BuildConfig(placements=placements, shard_size=500, depth=depth)
    rows = []
    for executor in ("local", "ray"):
        for workers in (1, 2):
            out = work / f"{executor}-{workers}"
            if executor == "ray":
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
            t = time.perf_counter()
            res = build(out, cfg, bg, fg, progress=False, workers=workers, executor=executor)
            rate = res.samples / (time.perf_counter() - t)
            if executor == "ray":
                ray.shutdown()
            rows.append((executor, workers, rate))
            shutil.rmtree(out)
    base = rows[0][2]
    print(f"\nscale: {n_bg * n_bg * 2 * placements} samples, depth {depth}, tar, shard size 500")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| executor | workers | samples/s | vs local x1 |")
    print("|---|---|---|---|")
    for executor, workers, rate in rows:
        print(f"| {executor} | {workers} | {rate:,.0f} | {rate / base:.2f} |")


def _encode_only(args: tuple[str, list[int]]) -> tuple[float, float, int]:
    """In a worker, shard by shard: composite the samples (untimed), then time encoding them
    alone -- the arrays exactly as the builder hands them to the encoders (composites in
    OpenCV's BGR) -- and, separately, writing those encoded samples as a tar shard (sha256,
    fsync: what any shard writer must do). Returns (encode s, write s, samples)."""
    import cv2
    import numpy as np

    from fgbg.builder.encode import encode_jpeg_bgr, encode_mask_png, encode_png
    from fgbg.builder.shards import EncodedSample

    cv2.setNumThreads(1)
    root, shards = args
    store = LocalStore(root)
    builder = ShardBuilder(store, read_record(store))
    encode_s = write_s = 0.0
    n = 0
    for shard in shards:
        arrays = []
        for s in builder.samples(shard):
            assert s.image is not None and s.mask is not None
            arrays.append((s.key, np.ascontiguousarray(s.image[..., ::-1]), s.mask, s.depth, s.files["json"]))
        t = time.perf_counter()
        encoded = []
        for key, bgr, mask, depth, meta in arrays:
            files = {"jpg": encode_jpeg_bgr(bgr, builder.cfg.quality),
                     "mask.png": encode_mask_png(mask, builder.mask_png)}
            if depth is not None:
                files["depth.png"] = encode_png(depth)
            files["json"] = meta
            encoded.append(EncodedSample(key, files))
        t1 = time.perf_counter()
        with TarShardWriter(Path(root) / f"bound-{shard}.tar", builder.meta(shard)) as w:
            for sample in encoded:
                w.add(sample)
            w.close()
        write_s += time.perf_counter() - t1
        encode_s += t1 - t
        n += len(arrays)
        (Path(root) / f"bound-{shard}.tar").unlink()
    return encode_s, write_s, n


def _seed_way(args: tuple[str, list[int], str]) -> int:
    """In a worker: the seeds' way -- PIL paste and save, one file per image (composite JPEG,
    mask JPEG, depth PNG) in per-background folders -- for the same samples (same plan,
    same plane depth maps)."""
    import numpy as np
    from PIL import Image

    from fgbg.builder.depth import DepthBatch
    from fgbg.builder.encode import decode_png_color

    root, shards, out = args
    store = LocalStore(root)
    record = read_record(store)
    builder = ShardBuilder(store, record)
    bgs = [Image.fromarray(decode_png_color(store.read_bytes(str(r.file)))) for r in record.inputs.bg]
    fgs = [Image.fromarray(decode_png_color(store.read_bytes(str(r.file)))) for r in record.inputs.fg]
    n = 0
    for shard in shards:
        first, count = builder.plan.shard_range(shard)
        p = builder.plan.params(first, count)
        for start in range(0, count, 32):
            idx = range(start, min(count, start + 32))
            masks = []
            names = []
            for i in idx:
                b, f, x, y = int(p.bg[i]), int(p.fg[i]), int(p.x[i]), int(p.y[i])
                fg = fgs[f].resize((int(p.w[i]), int(p.h[i])))
                if p.flip[i]:
                    fg = fg.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                image = bgs[b].copy()
                image.paste(fg, (x, y), fg)
                mask = Image.new("L", image.size, 0)
                mask.paste(fg.getchannel("A").point(lambda v: 255 if v > 0 else 0), (x, y))
                bg_name = f"bg{b:03d}"
                name = f"{bg_name}__{'flip_' if p.flip[i] else ''}fg{f:03d}_{int(p.placement[i]) + 1}"
                for tree in ("fg_bg", "fg_bg_masks", "depth_maps"):
                    (Path(out) / tree / bg_name).mkdir(parents=True, exist_ok=True)
                image.save(Path(out) / "fg_bg" / bg_name / f"{name}.jpg", quality=90)
                mask.save(Path(out) / "fg_bg_masks" / bg_name / f"{name}.jpg", quality=90)
                masks.append(np.asarray(mask))
                names.append((bg_name, name))
                n += 1
            if builder.backend is None:
                continue
            sl = slice(idx.start, idx.stop)
            boxes = np.stack([p.x[sl], p.y[sl], p.w[sl], p.h[sl]], axis=1)
            depths = builder.backend.predict(DepthBatch(np.empty((len(masks), 0, 0, 3), np.uint8),
                                                        np.stack(masks), boxes))
            for (bg_name, name), depth in zip(names, depths, strict=True):
                Image.fromarray(depth).save(Path(out) / "depth_maps" / bg_name / f"{name}.png")
    return n


def _zip_bg(args: tuple[str, str]) -> int:
    import zipfile

    out, bg = args
    count = 0
    for tree in ("fg_bg", "fg_bg_masks", "depth_maps"):
        folder = Path(out) / tree / bg
        if not folder.is_dir() or not any(folder.iterdir()):
            continue
        with zipfile.ZipFile(Path(out) / f"{tree}__{bg}.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.iterdir()):
                z.write(f, f.name)
                count += 1
    return count


def _cli_build_peak_rss(work: Path, bg: Path, fg: Path, cfg: BuildConfig, workers: int) -> float:
    """Peak RSS (MiB) of the largest process of the same build run as a user runs it (the
    fgbg command and its spawned workers, which import only fgbg, not this benchmark)."""
    import subprocess

    cmd = [sys.executable, "-m", "fgbg.builder", "build", "--bg", str(bg), "--fg", str(fg),
           "--out", str(work / "ds_rss"), "--placements", str(cfg.placements),
           "--shard-size", str(cfg.shard_size), "--depth", cfg.depth,
           "--workers", str(workers), "--no-progress"]
    # Through a small wrapper process: a child forked from this (large) benchmark would count
    # the benchmark's own pages in its peak RSS until it execs.
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, capture_output=True, text=True).stdout
    shutil.rmtree(work / "ds_rss")
    return int(out.split()[-1]) / 1024


def bench_build(n_samples: int, work: Path, workers: int, depth: str) -> None:
    """Figures 1-3 and 6: build vs encode bound, vs the seeds' way, writer vs stock writer, memory."""
    import multiprocessing

    import webdataset as wds

    n_bg = 20
    placements = max(1, n_samples // (n_bg * n_bg * 2))
    bg, fg = write_demo_inputs(work / "inputs", n_bg, n_bg)
    cfg = BuildConfig(placements=placements, shard_size=1000, depth=depth)
    out = work / "ds"
    t = time.perf_counter()
    res = build(out, cfg, bg, fg, progress=False, workers=workers)
    build_s = time.perf_counter() - t
    rss = _cli_build_peak_rss(work, bg, fg, cfg, workers)
    n = res.samples
    parts = [list(range(w, res.shards, workers)) for w in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        enc = pool.map(_encode_only, [(str(out), p) for p in parts])
    bound_s = max(e for e, _, _ in enc)
    stored_s = max(e + w for e, w, _ in enc)  # the bound plus writing its bytes as tar shards
    seed_dir = work / "seed"
    t = time.perf_counter()
    with ctx.Pool(workers) as pool:
        written = sum(pool.map(_seed_way, [(str(out), p, str(seed_dir)) for p in parts]))
        bgs = sorted(p.name for p in (seed_dir / "fg_bg").iterdir())
        zipped = sum(pool.map(_zip_bg, [(str(seed_dir), b) for b in bgs]))
    seed_s = time.perf_counter() - t
    files = sum(1 for _ in seed_dir.rglob("*.*") if _.suffix != ".zip")
    per_sample = 3 if depth != "none" else 2
    assert written == n and zipped == per_sample * n == files, (written, zipped, files)
    # writers on the same encoded bytes, one process
    store = LocalStore(out)
    samples = list(ShardBuilder(store, read_record(store)).samples(0))
    meta = ShardMeta(0, 0, len(samples), 8, cfg.size, cfg.depth_shape)

    def ours() -> None:
        with TarShardWriter(work / "w.tar", meta) as w:
            for s in samples:
                w.add(s)
            w.close()

    def stock() -> None:
        with wds.ShardWriter(str(work / "s-%06d.tar"), maxcount=10**9) as sink:
            for s in samples:
                sink.write({"__key__": s.key, **s.files})

    ours_rate, stock_rate = _rate(len(samples), ours), _rate(len(samples), stock)
    print(f"\nbuild: {n} samples (20 bg x 20 fg x 2 x {placements}), depth {depth}, {workers} processes")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| figure | measured | ratio | goal |")
    print("|---|---|---|---|")
    print(f"| 1. build vs encode bound | {n / build_s:,.0f} vs {n / bound_s:,.0f} samples/s | "
          f"{bound_s / build_s:.2f} | >= 0.85 |")
    print(f"| 1b. build vs encode bound + tar write (sha256, fsync) of its bytes | {n / build_s:,.0f} vs "
          f"{n / stored_s:,.0f} samples/s | {stored_s / build_s:.2f} | (ceiling of 1: {bound_s / stored_s:.2f}) |")
    print(f"| 2. seeds' way (loose files + zip per bg) vs fgbg | {seed_s:.1f} s vs {build_s:.1f} s, "
          f"{per_sample * n} files accounted for | fgbg {seed_s / build_s:.2f}x faster | >= 3x |")
    print(f"| 3. fgbg tar writer vs webdataset.ShardWriter | {ours_rate:,.0f} vs {stock_rate:,.0f} samples/s | "
          f"{ours_rate / stock_rate:.2f} | >= 1.5 |")
    print(f"| 6. peak RSS of the largest process of `fgbg build` (same build, run as a command) | {rss:.0f} MiB | "
          "| < 1 GiB, flat |")
    print("\nthe seeds' way: PIL paste/save per image into per-bg folders, then one zip (deflate) per bg and tree")


def bench_inputs(n_bg: int, work: Path, workers: int) -> None:
    """Memory and start-up with many backgrounds: peak RSS of the largest process and the time
    to the first committed shard, for n_bg small backgrounds x 2 foregrounds (1 flip, 1 placement)."""
    import subprocess
    import time

    bg, fg = write_demo_inputs(work / "inputs", n_bg, 2)
    out = work / "ds_many"
    cmd = [sys.executable, "-m", "fgbg.builder", "build", "--bg", str(bg), "--fg", str(fg), "--out", str(out),
           "--placements", "1", "--flips", "1", "--shard-size", "1000", "--depth", "plane",
           "--workers", str(workers), "--no-progress"]
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", wrapper, *cmd], stdout=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and any((out / "shards").glob("*.tar.json")):
            first = time.monotonic() - t0
        time.sleep(0.05)
    total = time.monotonic() - t0
    peak = int(proc.communicate()[0].split()[-1]) / 1024
    print(f"\ninputs: {n_bg} backgrounds x 2 foregrounds = {2 * n_bg} samples, {workers} workers, depth plane")
    print(f"peak RSS of the largest process: {peak:,.0f} MiB; first shard after {first or total:.1f} s; "
          f"whole build {total:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="bench", required=True)
    f = sub.add_parser("formats", help="tar vs .tar.zst vs HDF5 encoded vs HDF5 raw: write, read, size; masks "
                                       "and depth as PNG vs zstd raw arrays")
    f.add_argument("--samples", type=int, default=4000)
    r = sub.add_parser("read", help="readers vs MDS, LitData, Arrow, Lance, webdataset (one core)")
    r.add_argument("--samples", type=int, default=4000)
    r.add_argument("--no-peers", action="store_true", help="fgbg's own figures only")
    b = sub.add_parser("build", help="build vs encode bound, vs loose files + zip, tar writers")
    b.add_argument("--samples", type=int, default=20000)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--depth", default="none", choices=("none", "plane"), help="figure 1 is specified without depth")
    s = sub.add_parser("scale", help="build throughput: local pool vs Ray, 1 and 2 workers")
    s.add_argument("--samples", type=int, default=20000)
    s.add_argument("--depth", default="plane", choices=("plane", "none"))
    i = sub.add_parser("inputs", help="memory and time to the first shard with many backgrounds")
    i.add_argument("--bg", type=int, default=10000)
    i.add_argument("--workers", type=int, default=2)
    mt = sub.add_parser("metadata", help="open, RSS and stream plans at 10M-100M samples, metadata only")
    mt.add_argument("--samples", type=int, default=100_000_000)
    mt.add_argument("--index-samples", type=int, default=10_000_000,
                    help="samples of the plan whose index is written (CSV and Parquet)")
    c = sub.add_parser("compose", help="build speed per compositing option (--blend, --harmonize, --rotate, "
                                       "--people, --position floor)")
    c.add_argument("--samples", type=int, default=4000)
    v = sub.add_parser("view", help="fgbg view on a large dataset: start, thumbnails, filters")
    v.add_argument("--samples", type=int, default=400000)
    d = sub.add_parser("depth", help="DenseDepth per runtime and precision: speed and agreement, end to end")
    d.add_argument("--input", type=int, default=224, help="composite side (and model input unless --model-input)")
    d.add_argument("--model-input", help="model input WIDTHxHEIGHT, multiples of 32 (e.g. 640x480)")
    d.add_argument("--runtimes", default=",".join(_DEPTH_CANDIDATES),
                   help="candidates RUNTIME:DTYPE against tensorflow:float32")
    d.add_argument("--images", type=int, default=16, help="composites compared")
    d.add_argument("--batch", type=int, default=8)
    d.add_argument("--samples", type=int, default=64, help="samples in each end-to-end build (0: raw forward only)")
    d.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    d.add_argument("--layers", action="store_true", help="--depth-layers end to end against per-composite inference")
    d.add_argument("--layers-bg", type=int, default=100, help="--layers: backgrounds (and foregrounds)")
    d.add_argument("--layers-placements", type=int, default=20, help="--layers: placements per combination")
    d.add_argument("--layers-runtime", default="openvino", choices=("tensorflow", "onnxruntime", "openvino"),
                   help="--layers: DenseDepth's runtime")
    d.add_argument("--layers-workers", type=int, default=2, help="--layers: build workers")
    vf = sub.add_parser("verify", help="verify vs verify --decode vs --deep vs build vs the hashing bound")
    vf.add_argument("--samples", type=int, default=40000)
    vf.add_argument("--workers", type=int, default=2)
    cl = sub.add_parser("cloud", help="reads from and builds to S3 behind a latency/bandwidth proxy, vs MDS, LitData")
    cl.add_argument("--samples", type=int, default=4000)
    cl.add_argument("--settings", default="20:80,50:40",
                    help="comma-separated DELAY_MS:MB_PER_S pairs (per request : per connection)")
    cl.add_argument("--no-peers", action="store_true", help="fgbg's own figures only")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="fgbg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if a.bench == "formats":
            bench_formats(a.samples, work)
        elif a.bench == "build":
            bench_build(a.samples, work, a.workers, a.depth)
        elif a.bench == "scale":
            bench_scale(a.samples, work, a.depth)
        elif a.bench == "metadata":
            bench_metadata(a.samples, work, a.index_samples)
        elif a.bench == "compose":
            bench_compose(a.samples, work)
        elif a.bench == "view":
            bench_view(a.samples, work)
        elif a.bench == "read":
            bench_read(a.samples, work, not a.no_peers)
        elif a.bench == "inputs":
            bench_inputs(a.bg, work, a.workers)
        elif a.bench == "verify":
            from bench_verify import bench_verify

            bench_verify(a.samples, work, a.workers)
        elif a.bench == "cloud":
            from bench_cloud import bench_cloud

            pairs = [tuple(float(x) for x in p.split(":")) for p in a.settings.split(",")]
            bench_cloud(a.samples, work, [(d, m) for d, m in pairs], not a.no_peers)
        elif a.bench == "depth" and a.layers:
            bench_depth_layers(work, a.layers_bg, a.layers_bg, a.layers_placements, a.layers_workers,
                               a.layers_runtime, a.samples)
        elif a.bench == "depth":
            bench_depth(a.input, a.runtimes.split(","), a.images, a.samples, work, a.device, a.batch,
                        parse_size(a.model_input, "--model-input") if a.model_input else None)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
