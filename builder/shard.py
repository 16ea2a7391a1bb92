"""Building one shard: plan -> composite -> depth -> encode -> shard writers -> commit.

A :class:`ShardBuilder` is created once per worker process from the dataset's build record
and its ``inputs/``; it precomputes what every sample reuses (background sums, resized and
flipped foregrounds) and then builds whole shards, each independently of all others, so a
shard is the unit of parallelism, resume and repair. With several formats (tar + HDF5)
every sample is computed once and handed to one writer per format.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fgbg.readers.schema import sample_digest

from .blend import blend_alpha, harmonise, lab_stats, poisson_paste, rotate_rgba
from .committer import Commit, Committer
from .composite import Prepared, paste, prepare
from .config import BuildConfig
from .depth import DepthBackend, DepthBatch, make_backend
from .depth.layers import LayeredDepth, model_output
from .depth.stored import StoredPredictions
from .encode import MASK_PNG, decode_jpeg, encode_jpeg_bgr, encode_mask_png, encode_npy_zst, encode_png
from .errors import FgbgError
from .floor import distance_m
from .inputs import InputSet, load_inputs
from .lru import LRU
from .manifest import member_names
from .people import Person, arrange, union_box
from .plan import SampleParams, plan_for
from .receipts import Receipt, check_shard, write_receipt
from .record import BuildRecord, Inputs
from .resize import resize_rgba
from .shards import EncodedSample, ShardMeta, ShardWriter, shard_name, writer_class
from .stats import PixelSums, float_sums, opencv_sums, square_table
from .storage import Store, Upload

__all__ = [
    "DEPTH_BATCH", "Foregrounds", "ShardBuilder", "commit_shard", "depth_settings", "layered_depth", "meta_json",
    "shard_meta",
]

DEPTH_BATCH = 32  # samples per depth-backend call
_FG_CACHE = 4096  # resized/flipped foregrounds kept per worker
_BG_BUDGET = 160 * 2**20  # bytes of per-background tables kept per worker
_BGRA = np.array([2, 1, 0, 3])


@functools.lru_cache(maxsize=4096)
def _json_str(name: str) -> str:
    return json.dumps(name)


def meta_json(meta: dict[str, Any]) -> bytes:
    """``KEY.json``: canonical JSON (sorted keys, no spaces), exactly ``json.dumps(meta,
    sort_keys=True, separators=(",", ":"))`` for the annotation's fixed schema, formatted
    directly because that call was a measurable share of a sample's time."""
    if len(meta) != 10:  # options add keys (--rotate, --position floor, --people): rare enough for json.dumps
        return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    bg, fg = meta["bg"], meta["fg"]
    return (
        f'{{"bg":{{"index":{bg["index"]},"name":{_json_str(bg["name"])}}},'
        f'"fg":{{"index":{fg["index"]},"name":{_json_str(fg["name"])}}},'
        f'"flip":{meta["flip"]},"h":{meta["h"]},"index":{meta["index"]},"placement":{meta["placement"]},'
        f'"scale":{meta["scale"]!r},"w":{meta["w"]},"x":{meta["x"]},"y":{meta["y"]}}}'
    ).encode()


class _Row(NamedTuple):
    """One sample's parameters as Python numbers (converted once per batch, not per use):
    the sample's own person (draw 0) and what belongs to the sample."""

    position: int
    bg: int
    placement: int
    people: int
    first: Person


_PERSON = [f.name for f in dataclasses.fields(Person)][1:]  # the plan's columns a person has (all but draw)
_PLACED = _PERSON[2:]  # those a Placement holds (all but fg and flip), in Person's order


def _rows(p: SampleParams, start: int, stop: int) -> list[_Row]:
    own = [getattr(p, f)[start:stop].tolist() for f in ("position", "bg", "placement", "people")]
    person = [getattr(p, f)[start:stop].tolist() for f in _PERSON]
    return [_Row(pos, bg, k, n, Person(0, *q))
            for (pos, bg, k, n), q in zip(zip(*own, strict=True), zip(*person, strict=True), strict=True)]


def _person_keys(p: Person, inputs: Inputs, cfg: BuildConfig, bg: int) -> dict[str, Any]:
    """What the annotation says of one person: which foreground, flipped or not, its box and
    scale; with ``--rotate`` the angle and the person's own size (``x, y, w, h`` are then the
    box of the turned person); with ``--position floor`` the feet point (the box's bottom
    centre), the floor's distance there in metres (under the room's camera, with the background's
    fitted horizon where it has one) and the person's height in metres."""
    keys: dict[str, Any] = {"fg": {"index": p.fg, "name": inputs.fg[p.fg].name}, "flip": p.flip,
                            "x": p.x, "y": p.y, "w": p.w, "h": p.h, "scale": p.scale}
    if cfg.rotate is not None:
        keys["angle"], keys["size"] = p.angle, [p.pw, p.ph]
    if cfg.position == "floor":
        keys["feet"] = [p.x + p.w / 2, p.feet]
        floor = cfg.floors[bg] if cfg.floors is not None else None  # --depth-layers: the background's fitted floor
        horizon = floor.horizon if floor is not None and floor.found else None
        keys["distance"] = round(float(distance_m(p.feet, cfg.size, horizon)), 3)
        keys["height"] = p.height_m
    return keys


def _annotation(r: _Row, inputs: Inputs, cfg: BuildConfig, order: list[Person] | None = None) -> dict[str, Any]:
    """The annotation of one sample (what ``KEY.json`` holds): the sample's own person (its
    combination, as the index lists it) at the top level; with ``--people`` also ``people``,
    every person in paint order (instance ``i`` is entry ``i - 1``)."""
    meta = {"index": r.position, "bg": {"index": r.bg, "name": inputs.bg[r.bg].name}, "placement": r.placement,
            **_person_keys(r.first, inputs, cfg, r.bg)}
    if order is not None:
        meta["people"] = [{"instance": i + 1, "draw": p.draw, **_person_keys(p, inputs, cfg, r.bg)}
                          for i, p in enumerate(order)]
    return meta


_RUN_OPTIONS = {"densedepth": ("weights", "batch", "device", "threads", "calibration"),
                "onnx": ("model", "batch", "device", "threads", "calibration")}
CALIBRATION_IMAGES = 32  # int8: the dataset's first backgrounds calibrate the quantized model


def depth_settings(cfg: BuildConfig, options: dict[str, Any] | None) -> dict[str, Any]:
    """Backend options: the config's (input size, runtime, precision...) plus the run's
    (weights or model path, device, threads: they change no byte by themselves)."""
    if cfg.depth not in _RUN_OPTIONS:
        return {}
    run = {k: v for k, v in (options or {}).items() if k in _RUN_OPTIONS[cfg.depth]}
    if cfg.depth == "onnx":
        return {"preset": cfg.depth_preset, "input_size": cfg.depth_input, "dtype": cfg.depth_dtype,
                "runtime": cfg.runtime, **run}
    return {"input_size": cfg.depth_input_shape, "dtype": cfg.depth_dtype, "runtime": cfg.runtime, **run}


def calibration_images(inputs: InputSet, cfg: BuildConfig) -> np.ndarray | None:
    """int8 only: what the quantized model is calibrated on -- the first stored backgrounds
    (RGB, composite size), a function of the dataset, so every worker quantizes alike."""
    if cfg.depth_dtype != "int8":
        return None
    n = min(CALIBRATION_IMAGES, len(inputs.bg))
    return np.stack([inputs.bg[i] for i in range(n)])


def layered_depth(store: Store, record: BuildRecord) -> LayeredDepth:
    """``--depth-layers``: the painter of a dataset's maps, from its stored background predictions."""
    cfg = record.build_config
    output = model_output(cfg.depth, cfg.depth_preset, cfg.depth_input)
    predictions = StoredPredictions(store, record.inputs.bg, cfg.depth_shape)
    return LayeredDepth(cfg.depth_shape, record.depth, output, predictions, (cfg.size, cfg.size))


def shard_meta(record: BuildRecord, shard: int, first: int, count: int) -> ShardMeta:
    """What a writer needs to know about shard ``shard`` of the dataset ``record`` describes."""
    return ShardMeta(shard, first, count, record.key_width, record.config.size, record.depth_shape,
                     record.hdf5_layout, instances=getattr(record.config, "people", None) is not None,
                     members=getattr(record.config, "members", None))


def commit_shard(
    store: Store, record: BuildRecord, meta: ShardMeta, formats: list[str],
    samples: Iterator[EncodedSample], stats: dict[str, PixelSums], committer: Committer | None = None,
) -> list[Receipt]:
    """Write ``samples`` into one temp file per format, commit each, then write receipts.

    ``stats`` is read only after ``samples`` is exhausted (its producer fills it as it goes).
    With ``committer`` the commit and receipts happen in its thread and the receipts come back
    at once (they are what will be written; the committer's drain says when they were).
    """
    temps = {fmt: store.temp_path(shard_name(meta.shard, fmt)) for fmt in formats}
    writers: dict[str, ShardWriter] = {}
    uploads: dict[str, Upload] = {}  # object stores: sent while written, where the writer only appends
    digests: list[str] = []
    try:
        for fmt in formats:
            writers[fmt] = writer_class(fmt)(temps[fmt], meta)
            upload = store.upload_while_writing(temps[fmt], shard_name(meta.shard, fmt)) \
                if writers[fmt].append_only else None
            if upload is not None:
                uploads[fmt] = upload
        for sample in samples:
            digests.append(sample_digest(sample.files))
            for w in writers.values():
                w.add(sample)
        infos = {fmt: w.close() for fmt, w in writers.items()}
    except BaseException:
        for u in uploads.values():
            u.abort()
        for w in writers.values():
            w.abort()
        raise
    receipts = [Receipt(shard=meta.shard, name=shard_name(meta.shard, fmt), first=meta.first, count=meta.count,
                        bytes=info.bytes, sha256=info.sha256, fingerprint=record.fingerprint,
                        stats={k: v.record() for k, v in stats.items()}, offsets=info.offsets, digests=digests)
                for fmt, info in infos.items()]

    def cancel() -> None:  # the formats not sent yet: nothing of them appears
        for u in uploads.values():
            u.abort()
        for fmt in infos:
            temps[fmt].unlink(missing_ok=True)

    def publish() -> None:
        try:
            for fmt, receipt in zip(infos, receipts, strict=True):
                if fmt in uploads:
                    uploads.pop(fmt).finish(receipt.bytes)
                else:
                    store.commit(temps[fmt], receipt.name)
                write_receipt(store, receipt)  # after the shard is whole in the store
        except BaseException:
            cancel()
            raise

    if committer is None:
        publish()
    else:
        committer.submit(Commit(publish, cancel))
    return receipts


class Foregrounds:
    """Foregrounds as pasted -- resized to (w, h) through premultiplied alpha, flipped, in
    BGRA order -- cached (LRU), since every combination recurs ``placements`` times."""

    def __init__(self, inputs: InputSet, threshold: int, soft: bool, canvas_width: int, capacity: int = _FG_CACHE,
                 blend: str | None = None, harmonize: float | None = None):
        self.inputs = inputs
        self.canvas_width = canvas_width
        self.threshold = threshold
        self.soft = soft
        self.blend = blend if blend not in (None, "poisson") else None  # poisson is per placement (_batch)
        self.harmonize = harmonize
        self._rooms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache: LRU[tuple[int, int, int, int, int, int], Prepared] = LRU(capacity)

    def _room(self, bg: int) -> tuple[np.ndarray, np.ndarray]:
        if bg not in self._rooms:
            self._rooms[bg] = lab_stats(np.ascontiguousarray(self.inputs.bg[bg][..., ::-1]))
        return self._rooms[bg]

    def _make(self, key: tuple[int, int, int, int, int, int]) -> Prepared:
        fg, flip, w, h, bg, angle = key
        rgba = resize_rgba(self.inputs.fg[fg], w, h)
        # flipped if asked, and in BGRA order: composites are made in the encoder's order
        bgra = rgba[:, ::-1 if flip else 1][..., _BGRA]
        if angle:
            bgra = rotate_rgba(np.ascontiguousarray(bgra), angle)
        if self.blend is None and self.harmonize is None:
            return prepare(bgra, self.threshold, self.soft, self.canvas_width)
        alpha = np.ascontiguousarray(bgra[..., 3])
        shown = np.array(bgra)
        if self.harmonize is not None:
            shown[..., :3] = harmonise(np.ascontiguousarray(bgra[..., :3]), alpha, self._room(bg), self.harmonize)
        if self.blend is not None:
            shown[..., 3] = blend_alpha(alpha, self.blend, self.threshold)
        return prepare(shown, self.threshold, self.soft, self.canvas_width, mask_alpha=alpha)

    def get(self, fg: int, flip: int, w: int, h: int, bg: int = -1, angle: int = 0) -> Prepared:
        """The foreground as pasted: ``w`` x ``h`` before turning by ``angle`` degrees; ``bg``
        matters only with harmonisation (colours per room)."""
        return self._cache.get_or_make((fg, flip, w, h, bg if self.harmonize is not None else -1, angle),
                                       self._make)


@dataclass
class BackgroundTables:
    """What compositing needs of one background: BGR pixels (OpenCV's order, so the JPEG
    encoder takes composites as they are), exact channel sums, a table of squares (uint16, 6
    bytes a pixel) and a canvas to paste on (restored after each sample)."""

    bgr: np.ndarray
    sums: tuple[np.ndarray, np.ndarray]
    squares: np.ndarray
    canvas: np.ndarray


class Backgrounds:
    """Per-background tables made on first use and kept in a bounded LRU: a worker's memory
    stays flat whatever the number of backgrounds (the tables cost ~12 bytes a pixel: 0.6 MB
    at 224 px, so 10,000 backgrounds made up front took 6 GB per worker). With fewer
    backgrounds than fit in the budget (the seeds' 100), every table is made once."""

    def __init__(self, images: Sequence[np.ndarray], size: int, budget: int = _BG_BUDGET):
        self.images = images
        self._cache: LRU[int, BackgroundTables] = LRU(max(8, budget // (12 * size * size)))

    def _make(self, b: int) -> BackgroundTables:
        bgr = np.ascontiguousarray(self.images[b][..., ::-1])
        return BackgroundTables(bgr, float_sums(bgr, 3), square_table(bgr), bgr.copy())

    def get(self, b: int) -> BackgroundTables:
        return self._cache.get_or_make(b, self._make)


class ShardBuilder:
    """Everything a worker needs to build any shard of one dataset."""

    def __init__(self, store: Store, record: BuildRecord, depth_options: dict[str, Any] | None = None,
                 backend: DepthBackend | None = None, background_commits: bool = False):
        """``backend`` replaces the one ``record`` names (e.g. a proxy to a Ray actor holding the model).
        ``background_commits``: shards are committed by a :class:`Committer` thread while the next
        is built; whoever runs this builder must call :meth:`flush` before trusting the receipts."""
        self.store = store
        self.committer = Committer() if background_commits else None
        self.record = record
        self.formats: list[str] = list(record.formats)
        self.cfg = record.build_config
        self.inputs = load_inputs(store, record.inputs)
        self.plan = plan_for(self.cfg, record, self.inputs.fg_base, len(self.inputs.bg))
        self.key_width = record.key_width
        self.mask_png: str = record.tool.get("mask_png", "sub")  # absent: made before the field
        options = dict(depth_options or {})
        if backend is None and self.cfg.depth_layers:  # maps painted from the stored predictions: no model here
            backend = layered_depth(store, record)
        if backend is None and self.cfg.depth_dtype == "int8":
            options["calibration"] = calibration_images(self.inputs, self.cfg)
        self.backend = backend or make_backend(self.cfg.depth, self.cfg.depth_shape,
                                               **depth_settings(self.cfg, options))
        if self.backend is not None and self.backend.describe() != record.depth:
            raise FgbgError(f"{store.url}: the depth backend differs from the one this dataset was built with "
                            f"({self.backend.describe()} vs {record.depth}); give the same --depth-weights")
        # Composites are made in BGR, OpenCV's order, so the JPEG encoder takes them as they
        # are (no colour conversion per sample); statistics are reported in RGB.
        self.backgrounds = Backgrounds(self.inputs.bg, self.cfg.size)
        self._masks: np.ndarray | None = None  # likewise: one batch of masks, see _mask_buffer
        self.foregrounds = Foregrounds(self.inputs, self.cfg.mask_threshold, self.cfg.soft_mask, self.cfg.size,
                                       blend=self.cfg.blend, harmonize=self.cfg.harmonize)
        self.poisson = self.cfg.blend == "poisson"
        self.names = member_names(self.cfg)  # field -> member suffix (PNG, or .npy.zst with --members zstd)
        self.zstd = self.cfg.members == "zstd"

    def _paste(self, image: np.ndarray, fg: Prepared, x: int, y: int) -> None:
        """One person onto the canvas: Poisson-cloned with --blend poisson, else blended."""
        if self.poisson:
            poisson_paste(image, fg.rgb, fg.mask, x, y)
        else:
            paste(image, fg, x, y)

    def _grey(self, image: np.ndarray, row_filter: str) -> bytes:
        """A mask or instance map as stored: PNG with the dataset's row filter, or .npy.zst."""
        return encode_npy_zst(image) if self.zstd else encode_mask_png(image, row_filter)

    def flush(self) -> None:
        """Every shard this builder returned is committed, receipt included (or its error raised)."""
        if self.committer is not None:
            self.committer.drain()

    def close(self) -> None:
        try:
            if self.committer is not None:
                self.committer.close()
        finally:
            if self.backend is not None:
                self.backend.close()

    def new_stats(self) -> dict[str, PixelSums]:
        stats = {"image": PixelSums(3), "mask": PixelSums(1)}
        if self.backend is not None:
            stats["depth"] = PixelSums(1)
        return stats

    def meta(self, shard: int) -> ShardMeta:
        first, count = self.plan.shard_range(shard)
        return shard_meta(self.record, shard, first, count)

    def samples(self, shard: int, stats: dict[str, PixelSums] | None = None,
                decoded: bool = False, images: bool = True) -> Iterator[EncodedSample]:
        """The samples of ``shard`` in key order; adds to ``stats`` if given.

        ``sample.image`` is the composite handed to the encoder (RGB), or with ``decoded`` the
        JPEG decoded back (what a tar reader sees; the raw HDF5 layout stores that). Without
        ``images`` (and ``decoded``) it is None: each composite is then made on a reused
        per-background canvas, restored after encoding, instead of a fresh copy; and without
        ``decoded`` too, ``sample.mask`` is None (the masks live in one reused batch buffer).
        """
        first, count = self.plan.shard_range(shard)
        params = self.plan.params(first, count)
        stats = stats if stats is not None else self.new_stats()
        for start in range(0, count, DEPTH_BATCH):
            yield from self._batch(params, range(start, min(count, start + DEPTH_BATCH)), stats, decoded, images)

    def ensure(self, shard: int) -> list[tuple[Receipt, bool]]:
        """Receipts of ``shard`` in every format, building the formats that are not done."""
        done = {fmt: check_shard(self.store, shard_name(shard, fmt), self.record.accepted) for fmt in self.formats}
        todo = [fmt for fmt, r in done.items() if r is None]
        built = dict(zip(todo, self.build(shard, todo), strict=True)) if todo else {}
        return [(built[f], True) if f in built else (done[f], False) for f in self.formats]  # type: ignore[misc]

    def build(self, shard: int, formats: list[str] | None = None) -> list[Receipt]:
        """Write ``shard`` in ``formats`` (default: all) under temp names, commit, write receipts."""
        formats = formats or self.formats
        meta = self.meta(shard)
        stats = self.new_stats()
        decoded = any(writer_class(f).needs_pixels(meta) for f in formats)
        samples = self.samples(shard, stats, decoded, images=False)  # writers read encoded bytes (or decoded)
        return commit_shard(self.store, self.record, meta, formats, samples, stats, self.committer)

    def _arrange(self, p: SampleParams, j: int, r: _Row) -> tuple[list[Person], np.ndarray]:
        """The people of sample ``j`` of ``p`` in paint order, and their instance map."""
        cfg = self.cfg
        assert cfg.people is not None and cfg.max_occlusion is not None
        first = r.first

        def candidate(person: int, attempt: int) -> Person:
            fg, flip, at = self.plan.extra(p, j, person, attempt)
            return Person(person, fg, flip, *(getattr(at, f)[0].item() for f in _PLACED))

        def mask_of(q: Person) -> tuple[np.ndarray, int]:
            fg = self.foregrounds.get(q.fg, q.flip, q.pw, q.ph, r.bg, q.angle)
            return fg.mask, fg.mask_count

        return arrange(first, r.people, candidate, mask_of, cfg.max_occlusion, cfg.size)

    def _mask_buffer(self, n: int) -> np.ndarray:
        """Zeroed masks for a batch, reused: each sample's box is cleared after encoding."""
        size = self.cfg.size
        if self._masks is None or len(self._masks) < n:
            self._masks = np.zeros((n, size, size), np.uint8)
        return self._masks[:n]

    def _batch(self, p: SampleParams, idx: range, stats: dict[str, PixelSums], decoded: bool,
               keep: bool) -> list[EncodedSample]:
        cfg = self.cfg
        H = W = cfg.size
        rows = _rows(p, idx.start, idx.stop)
        reuse = not (keep or decoded)  # no writer reads the masks: one reused buffer, boxes cleared after use
        images, jpegs, sums = [], [], []
        bg_sums: list[tuple[np.ndarray, np.ndarray]] = []
        masks = self._mask_buffer(len(rows)) if reuse else np.zeros((len(rows), H, W), np.uint8)
        mask_s = mask_q = 0
        crowds: list[tuple[list[Person], np.ndarray] | None] = []
        boxes_used: list[tuple[slice, slice]] = []
        for j, r in enumerate(rows):
            tables = self.backgrounds.get(r.bg)
            bg = tables.bgr
            image = bg.copy() if keep else tables.canvas
            if self.cfg.people is None:
                q = r.first
                x, y, w, h = q.x, q.y, q.w, q.h
                fg = self.foregrounds.get(q.fg, q.flip, q.pw, q.ph, r.bg, q.angle)
                self._paste(image, fg, x, y)
                box = (slice(y, y + h), slice(x, x + w))
                masks[j][box] = fg.mask
                mask_s += fg.mask_sum
                mask_q += fg.mask_sumsq
                crowds.append(None)
            else:
                order, ids = self._arrange(p, idx.start + j, r)
                for person in order:
                    fg = self.foregrounds.get(person.fg, person.flip, person.pw, person.ph, r.bg, person.angle)
                    self._paste(image, fg, person.x, person.y)
                    np.maximum(masks[j][person.box], fg.mask, out=masks[j][person.box])  # the union
                box = union_box(order)
                m = masks[j][box].astype(np.int64)
                mask_s += int(m.sum())
                mask_q += int((m * m).sum())
                crowds.append((order, ids))
            boxes_used.append(box)
            # Exact composite sums from the box alone: background - its box + composite box.
            sums.append((*opencv_sums(image[box]), *opencv_sums(bg[box], tables.squares[box])))
            bg_sums.append(tables.sums)
            jpegs.append(encode_jpeg_bgr(image, cfg.quality))
            if keep:
                images.append(image)
            else:
                image[box] = bg[box]  # the canvas is the background again
        n = len(jpegs)
        s_box, q_box, s_bg, q_bg = np.sum(sums, axis=0)[:, :3].astype(np.int64)  # float64 sums of integers: exact
        s_im = np.sum([t[0] for t in bg_sums], axis=0) + s_box - s_bg
        q_im = np.sum([t[1] for t in bg_sums], axis=0) + q_box - q_bg
        stats["image"].add(n * H * W, s_im[::-1], q_im[::-1])  # BGR -> RGB
        stats["mask"].add(n * H * W, np.array([mask_s]), np.array([mask_q]))
        roundtrip = None
        if decoded or (self.backend is not None and self.backend.needs_pixels):
            roundtrip = [decode_jpeg(j) for j in jpegs]
        depths = None
        if self.backend is not None:
            sl = slice(idx.start, idx.stop)
            boxes = np.stack([p.x[sl], p.y[sl], p.w[sl], p.h[sl]], axis=1)
            if roundtrip is not None and self.backend.needs_pixels:
                pixels = np.stack(roundtrip)
            else:  # a geometric backend: no copy of the images it would not look at
                pixels = np.empty((len(masks), 0, 0, 3), np.uint8)
            people = None
            if self.cfg.people is not None:
                people = [(np.array([[q.x, q.y, q.w, q.h] for q in c[0]], np.int64), c[1]) for c in crowds if c]
            depths = self.backend.predict(DepthBatch(pixels, masks, boxes, people, p.bg[sl]))
            s_d, q_d = float_sums(depths, 1)
            stats["depth"].add(depths.shape[0] * depths.shape[1] * depths.shape[2], s_d, q_d)
        out = []
        inputs = self.record.inputs
        for j, r in enumerate(rows):
            mask = masks[j]
            files = {"jpg": jpegs[j], self.names["mask"]: self._grey(mask, self.mask_png)}
            depth = None
            if depths is not None:
                depth = depths[j]
                files[self.names["depth"]] = encode_npy_zst(depth) if self.zstd else encode_png(depth)
            crowd = crowds[j]
            if crowd is not None:
                files[self.names["instances"]] = self._grey(crowd[1], MASK_PNG)
            files["json"] = meta_json(_annotation(r, inputs, self.cfg, crowd[0] if crowd else None))
            key = f"{r.position:0{self.key_width}d}"
            if reuse:
                mask[boxes_used[j]] = 0  # zeroed again for the next batch
                out.append(EncodedSample(key, files, None, None, depth))
            else:
                shown = roundtrip[j] if roundtrip is not None and decoded else images[j][..., ::-1] if keep else None
                out.append(EncodedSample(key, files, shown, mask, depth, crowd[1] if crowd else None))
        return out
