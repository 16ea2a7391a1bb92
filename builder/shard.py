"""Building one shard: plan -> composite -> depth -> encode -> shard writer -> commit.

A :class:`ShardBuilder` is created once per worker process from the dataset's build record
and its ``inputs/``; it precomputes what every sample reuses (background sums, resized and
flipped foregrounds) and then builds whole shards, each independently of all others, so a
shard is the unit of parallelism, resume and repair.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from .composite import composite
from .config import BuildConfig
from .depth import DepthBatch, make_backend
from .encode import decode_jpeg, encode_jpeg, encode_png
from .inputs import load_inputs
from .plan import Plan, SampleParams
from .receipts import Receipt, write_receipt
from .resize import resize_rgba
from .shards import EncodedSample, shard_name, writer_class
from .stats import PixelSums, region_sums
from .storage import LocalStore

__all__ = ["DEPTH_BATCH", "ShardBuilder", "sample_meta"]

DEPTH_BATCH = 32  # samples per depth-backend call
_FG_CACHE = 4096  # resized/flipped foregrounds kept per worker


def sample_meta(p: SampleParams, i: int, records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The annotation of sample ``i`` of ``p`` (what ``KEY.json`` holds)."""
    b, f = int(p.bg[i]), int(p.fg[i])
    return {
        "index": int(p.position[i]),
        "bg": {"index": b, "name": records["bg"][b]["name"]},
        "fg": {"index": f, "name": records["fg"][f]["name"]},
        "flip": int(p.flip[i]),
        "placement": int(p.placement[i]),
        "x": int(p.x[i]),
        "y": int(p.y[i]),
        "w": int(p.w[i]),
        "h": int(p.h[i]),
        "scale": float(p.scale[i]),
    }


class ShardBuilder:
    """Everything a worker needs to build any shard of one dataset."""

    def __init__(self, store: LocalStore, record: dict[str, Any], fmt: str = "tar"):
        self.store = store
        self.record = record
        self.fmt = fmt
        self.cfg = BuildConfig.from_json(record["config"])
        self.inputs = load_inputs(store, record["inputs"])
        self.plan = Plan(self.cfg, self.inputs.fg_base, len(self.inputs.bg))
        self.key_width = int(record["key_width"])
        self.backend = make_backend(self.cfg.depth, self.cfg.depth_shape)
        self._bg_sums = [region_sums(bg) for bg in self.inputs.bg]
        self._fg_cache: OrderedDict[tuple[int, int, int, int], np.ndarray] = OrderedDict()

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def foreground(self, fg: int, flip: int, w: int, h: int) -> np.ndarray:
        """The foreground as pasted: resized to (w, h) (premultiplied) and flipped if asked."""
        key = (fg, flip, w, h)
        img = self._fg_cache.get(key)
        if img is None:
            img = resize_rgba(self.inputs.fg[fg], w, h)
            if flip:
                img = np.ascontiguousarray(img[:, ::-1])
            self._fg_cache[key] = img
            if len(self._fg_cache) > _FG_CACHE:
                self._fg_cache.popitem(last=False)
        else:
            self._fg_cache.move_to_end(key)
        return img

    def new_stats(self) -> dict[str, PixelSums]:
        stats = {"image": PixelSums(3), "mask": PixelSums(1)}
        if self.backend is not None:
            stats["depth"] = PixelSums(1)
        return stats

    def samples(self, shard: int, stats: dict[str, PixelSums] | None = None) -> Iterator[EncodedSample]:
        """The samples of ``shard`` in key order, with raw arrays; adds to ``stats`` if given."""
        first, count = self.plan.shard_range(shard)
        params = self.plan.params(first, count)
        stats = stats if stats is not None else self.new_stats()
        for start in range(0, count, DEPTH_BATCH):
            yield from self._batch(params, range(start, min(count, start + DEPTH_BATCH)), stats)

    def build(self, shard: int) -> Receipt:
        """Write shard ``shard`` under a temp name, commit it, write its receipt."""
        first, count = self.plan.shard_range(shard)
        rel = f"shards/{shard_name(shard, self.fmt)}"
        stats = self.new_stats()
        tmp = self.store.temp_path(rel)
        with writer_class(self.fmt)(tmp) as writer:
            for sample in self.samples(shard, stats):
                writer.add(sample)
            info = writer.close()
        self.store.commit(tmp, rel)
        receipt = Receipt(
            shard=shard, name=rel, first=first, count=count, bytes=info.bytes, sha256=info.sha256,
            fingerprint=self.record["fingerprint"], stats={k: v.to_json() for k, v in stats.items()},
            offsets=info.offsets,
        )
        write_receipt(self.store, receipt)
        return receipt

    def _batch(self, p: SampleParams, idx: range, stats: dict[str, PixelSums]) -> list[EncodedSample]:
        cfg = self.cfg
        H = W = cfg.size
        images, masks, jpegs = [], [], []
        for i in idx:
            b, x, y, w, h = int(p.bg[i]), int(p.x[i]), int(p.y[i]), int(p.w[i]), int(p.h[i])
            fg = self.foreground(int(p.fg[i]), int(p.flip[i]), w, h)
            bg = self.inputs.bg[b]
            image, mask = composite(bg, fg, x, y, cfg.mask_threshold, cfg.soft_mask)
            # Composite sums = background sums - box of bg + box of composite (exact integers).
            s_all, q_all = self._bg_sums[b]
            s_bg, q_bg = region_sums(bg[y : y + h, x : x + w])
            s_im, q_im = region_sums(image[y : y + h, x : x + w])
            stats["image"].add(H * W, s_all - s_bg + s_im, q_all - q_bg + q_im)
            s_m, q_m = region_sums(mask[y : y + h, x : x + w])
            stats["mask"].add(H * W, s_m, q_m)
            images.append(image)
            masks.append(mask)
            jpegs.append(encode_jpeg(image, cfg.quality))
        depths = None
        if self.backend is not None:
            pixels = [decode_jpeg(j) for j in jpegs] if self.backend.needs_pixels else images
            sl = slice(idx.start, idx.stop)
            boxes = np.stack([p.x[sl], p.y[sl], p.w[sl], p.h[sl]], axis=1)
            depths = self.backend.predict(DepthBatch(np.stack(pixels), np.stack(masks), boxes))
        out = []
        for j, i in enumerate(idx):
            key = f"{int(p.position[i]):0{self.key_width}d}"
            files = {"jpg": jpegs[j], "mask.png": encode_png(masks[j])}
            depth = None
            if depths is not None:
                depth = depths[j]
                stats["depth"].add_pixels(depth)
                files["depth.png"] = encode_png(depth)
            meta = sample_meta(p, i, self.record["inputs"])
            files["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
            out.append(EncodedSample(key, files, images[j], masks[j], depth))
        return out
