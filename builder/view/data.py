"""What the viewer shows, computed from a dataset opened in place: JSON-ready data and images.

Everything here reads through the public reader API (``open_dataset``: local folders and
object storage alike) and addresses samples and inputs by *index* only, never by a path
taken from a request. Pages of the grid cost what their samples cost: the first page and
the 4,000th of a 400k dataset read the same number of samples (random access through the
receipts' offsets, never a scan). The annotations index is loaded in a background thread
so the server answers at once; filters wait for it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import msgspec
import numpy as np

from fgbg.readers import open_dataset
from fgbg.readers.decode import ZSTD_MAGIC, decode_member
from fgbg.readers.errors import DatasetError
from fgbg.readers.index import AnnotationIndex, read_index

__all__ = ["FILTERS", "PALETTE", "Filters", "ViewData", "colour_depth", "colour_instances", "evenly_spaced"]

FILTERS = ("bg", "fg", "flip", "placement")
THUMB_MODES = ("plain", "mask", "depth")
MAX_PER_PAGE = 500
HISTOGRAM_SAMPLES = 200  # samples the overview's histograms are computed on (evenly spaced)
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 85]


@dataclass(frozen=True)
class Filters:
    """Equality filters on the annotations index (None: any)."""

    bg: int | None = None
    fg: int | None = None
    flip: int | None = None
    placement: int | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.bg, self.fg, self.flip, self.placement))

    def as_dict(self) -> dict[str, int]:
        return {k: v for k in FILTERS if (v := getattr(self, k)) is not None}


def evenly_spaced(n: int, k: int) -> list[int]:
    """Up to ``k`` sample positions spread evenly over ``n`` (first and last included)."""
    return sorted({round(float(x)) for x in np.linspace(0, n - 1, min(k, n))}) if n else []


def colour_depth(levels: np.ndarray) -> np.ndarray:
    """8-bit depth levels -> RGB with a fixed map (0 = near = dark purple .. 255 = far = yellow):
    the same colour means the same level in every sample, unlike a per-image stretch."""
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_VIRIDIS)
    out: np.ndarray = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return out


#: instance colours (RGB): id 0 (background) black, ids 1.. cycle through 16 distinct colours
PALETTE = np.array([[0, 0, 0]] + [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                                  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                                  [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
                                  [170, 255, 195]] * 16, np.uint8)[:256]


def colour_instances(ids: np.ndarray) -> np.ndarray:
    """Instance ids (``--people``) -> RGB: each person its own colour, the same in every view."""
    out: np.ndarray = PALETTE[ids]
    return out


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _JPEG)
    if not ok:
        raise DatasetError("JPEG encoding of a view image failed")
    return buf.tobytes()


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
    if not ok:
        raise DatasetError("PNG encoding of a view image failed")
    return buf.tobytes()


class ViewData:
    """One dataset as the viewer sees it (thread-safe: the server answers requests in threads)."""

    def __init__(self, url: str, format: str | None = None, storage_options: dict[str, Any] | None = None):
        self.url = url
        self.raw = open_dataset(url, format=format, storage_options=storage_options, decode=False)
        self.ds = open_dataset(url, format=format, storage_options=storage_options)
        self.manifest = self.raw.metadata
        self.names: dict[str, list[str]] = {kind: [e.name for e in entries]
                                            for kind, entries in self.manifest.inputs.items()}
        self._index: AnnotationIndex | None = None
        self._index_error: str | None = None
        self._index_ready = threading.Event()
        self._overview: dict[str, Any] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._load_index, name="fgbg-view-index", daemon=True).start()

    # -- the annotations index --------------------------------------------------------------
    def _load_index(self) -> None:
        try:
            self._index = read_index(self.raw.location, self.manifest, columns=FILTERS)
        except (DatasetError, OSError) as e:
            self._index_error = str(e)
        finally:
            self._index_ready.set()

    def index(self) -> AnnotationIndex:
        """The checked index (waits for the background load); DatasetError when it is unusable."""
        self._index_ready.wait()
        if self._index is None:
            raise DatasetError(self._index_error or "annotations index unavailable")
        return self._index

    def positions(self, filters: Filters) -> np.ndarray | range:
        """Sample positions matching ``filters``, in key order (all samples: no index needed)."""
        if not filters.active:
            return range(len(self.ds))
        return self.index().select(**filters.as_dict())

    # -- pages ----------------------------------------------------------------------------
    def _name(self, kind: str, index: int) -> str:
        names = self.names.get(kind, [])
        return names[index] if 0 <= index < len(names) else f"#{index}"

    def _item(self, i: int, meta: dict[str, Any]) -> dict[str, Any]:
        return {"index": i, "key": f"{i:0{self.manifest.key_width}d}",
                "bg": {"index": meta["bg"]["index"], "name": self._name("bg", meta["bg"]["index"])},
                "fg": {"index": meta["fg"]["index"], "name": self._name("fg", meta["fg"]["index"])},
                "flip": meta["flip"], "placement": meta["placement"]}

    def page(self, page: int, per: int, filters: Filters) -> dict[str, Any]:
        """One page of the grid: positions ``page*per`` onwards among the matching samples."""
        per = max(1, min(per, MAX_PER_PAGE))
        chosen = self.positions(filters)
        total = len(chosen)
        pages = max(1, -(-total // per))
        page = max(0, min(page, pages - 1))
        wanted = [int(i) for i in chosen[page * per:(page + 1) * per]]
        metas = [msgspec.json.decode(s["meta"]) for s in self.raw.get_many(wanted)] if wanted else []
        return {"total": total, "page": page, "pages": pages, "per": per, "filters": filters.as_dict(),
                "items": [self._item(i, m) for i, m in zip(wanted, metas, strict=True)]}

    def sample(self, i: int, filters: Filters) -> dict[str, Any]:
        """The sample page: its annotation, inputs, box, sizes and neighbours within ``filters``."""
        i = self._check(i)
        meta = msgspec.json.decode(self.raw[i]["meta"])
        chosen = self.positions(filters)
        where = bisect.bisect_left(chosen, i)  # a range or an index array: no copy of all positions
        found = where < len(chosen) and int(chosen[where]) == i
        prev = int(chosen[where - 1]) if where > 0 else None
        nxt = int(chosen[where + 1 if found else where]) if (where + 1 if found else where) < len(chosen) else None
        h, w = self._shape("image")
        people = meta.get("people") or [{**meta, "instance": 1}]  # --people: every person, in paint order
        return {**self._item(i, meta), "annotation": meta, "box": [meta["x"], meta["y"], meta["w"], meta["h"]],
                "people": [{"instance": p["instance"], "box": [p["x"], p["y"], p["w"], p["h"]],
                            "colour": "#" + bytes(PALETTE[p["instance"]].tolist()).hex()} for p in people],
                "size": [w, h], "depth": "depth" in self.manifest.fields, "bg_depth": self.layered,
                "instances": "instances" in self.manifest.fields, "prev": prev, "next": nxt,
                "filters": filters.as_dict(), "total": len(self.ds)}

    def _shape(self, field: Literal["image", "mask", "depth"]) -> tuple[int, int]:
        """(h, w) of a field as the manifest declares it (checked numbers; 224 when absent)."""
        spec = self.manifest.fields.get(field)
        shape = spec.shape if spec is not None and spec.shape else [224, 224]
        return int(shape[0]), int(shape[1])

    def _check(self, i: int) -> int:
        if not 0 <= i < len(self.ds):
            raise IndexError(f"sample {i} out of range (dataset has {len(self.ds)})")
        return i

    # -- images ---------------------------------------------------------------------------
    def stored(self, i: int, field: str) -> bytes:
        """A member's stored bytes: the composite JPEG, the mask or depth PNG (no re-encoding)."""
        member = self.raw[self._check(i)][field]
        return bytes(member)

    def served(self, i: int, field: str) -> bytes:
        """What the browser gets for a member: the stored JPEG or PNG as it is; a grey field
        stored as ``.npy.zst`` (``--members zstd``) as a lossless PNG of the same pixels."""
        data = self.stored(i, field)
        if data[:4] == ZSTD_MAGIC:
            return _png(decode_member(field, data))
        return data

    def thumbnail(self, i: int, mode: str) -> bytes:
        """A half-size JPEG: the composite (decoded at 1/2 in the DCT domain), with the mask
        tinted red over it, or the depth map in the fixed colour map."""
        sample = self.raw[self._check(i)]
        if mode == "depth" and "depth" in sample:
            levels = decode_member("depth", bytes(sample["depth"]))
            h, w = self._shape("image")
            return _jpeg(cv2.resize(colour_depth(levels), (-(-w // 2), -(-h // 2)), interpolation=cv2.INTER_AREA))
        image = decode_member("image", sample["image"], reduce=2)
        if mode == "mask":
            mask = decode_member("mask", sample["mask"], reduce=2) > 127
            tint = np.array([255, 0, 0], np.float32)
            if "instances" in sample:  # --people: each person in its own colour
                tint = colour_instances(decode_member("instances", bytes(sample["instances"]), reduce=2))[mask]
            tinted = image.astype(np.float32)
            tinted[mask] = 0.5 * tinted[mask] + 0.5 * tint
            image = tinted.astype(np.uint8)
        return _jpeg(image)

    def depth_colour(self, i: int) -> bytes:
        """The depth map in the fixed colour map, full stored size (PNG)."""
        return _png(colour_depth(decode_member("depth", self.stored(i, "depth"))))

    @property
    def layered(self) -> bool:
        """Built with ``--depth-layers``: each background has a stored model prediction."""
        return bool(self.manifest.config.get("depth_layers")) and "depth" in self.manifest.fields

    def bg_depth_colour(self, i: int) -> bytes:
        """``--depth-layers``: the model's prediction for sample ``i``'s background, stretched as
        the maps are and in the same colour map -- the map with nobody in it, shown beside the
        sample's. The file is proven against the manifest's hash before it is decoded."""
        import hashlib

        from ..depth.layers import model_output
        from ..depth.presets import stretch
        from ..depth.stored import decode_prediction
        from ..errors import FgbgError

        if not self.layered:
            raise IndexError("this dataset was not built with --depth-layers")
        b = int(msgspec.json.decode(self.raw[self._check(i)]["meta"])["bg"]["index"])
        entries = self.manifest.inputs.get("bg", [])
        entry = entries[b] if 0 <= b < len(entries) else None
        if entry is None or entry.depth_file is None or entry.depth_sha256 is None:
            raise IndexError(f"background {b} has no stored depth prediction")
        data = self.raw.location.read_bytes(entry.depth_file)
        if hashlib.sha256(data).hexdigest() != entry.depth_sha256:
            raise DatasetError(f"{entry.depth_file}: does not match the manifest's sha256")
        h, w = self._shape("depth")
        config = self.manifest.config
        size = config.get("depth_input")
        output = model_output(str(config.get("depth")), config.get("depth_preset"),
                              (int(size[0]), int(size[1])) if size else None)
        try:
            values = decode_prediction(data, (w, h), entry.depth_file).astype(np.float64)
        except FgbgError as e:
            raise DatasetError(str(e)) from None
        return _png(colour_depth(stretch(values[None], output)[0]))

    def instances_colour(self, i: int) -> bytes:
        """``--people``: the instance map in the fixed palette, full size (PNG)."""
        return _png(colour_instances(decode_member("instances", self.stored(i, "instances"))))

    def input_image(self, kind: str, n: int) -> bytes:
        """A stored input (``bg``, ``fg``, ``fg_mask``) by index, as the dataset stores it (PNG)."""
        base: Literal["bg", "fg"] = "bg" if kind == "bg" else "fg"
        entries = self.manifest.inputs.get(base, [])
        if not 0 <= n < len(entries):
            raise IndexError(f"no {kind} input {n}")
        rel = entries[n].mask_file if kind == "fg_mask" else entries[n].file
        if rel is None:
            raise IndexError(f"{kind} input {n} is not stored in this dataset")
        return self.raw.location.read_bytes(rel)

    # -- overview -------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """Counts, config, depth source, statistics, histograms on a sample, per-input counts."""
        with self._lock:
            if self._overview is None:
                self._overview = self._compute_overview()
            return self._overview

    def _compute_overview(self) -> dict[str, Any]:
        m = self.manifest
        n = len(self.ds)
        picks = evenly_spaced(n, HISTOGRAM_SAMPLES)
        channels = np.zeros((3, 256), np.int64)
        depth = np.zeros(256, np.int64)
        for s in self.ds.get_many(picks):
            for c in range(3):
                channels[c] += np.bincount(s["image"][..., c].ravel(), minlength=256)
            if "depth" in s:
                depth += np.bincount(s["depth"].ravel(), minlength=256)
        per_input: dict[str, list[dict[str, Any]]] = {}
        index_note = None
        try:
            index = self.index()
            for kind in ("bg", "fg"):
                names = self.names.get(kind, [])
                per_input[kind] = [{"index": k, "name": name, "samples": c}
                                   for k, (name, c) in enumerate(zip(names, index.counts(kind, len(names)),
                                                                     strict=True))]
        except DatasetError as e:
            index_note = str(e)
        plain = msgspec.to_builtins(m)
        return {
            "url": self.url, "samples": n, "format": self.raw.format, "formats": list(m.shards),
            "shards": {fmt: len(entries) for fmt, entries in m.shards.items()},
            "bytes": plain["totals"]["bytes"], "fields": list(m.fields), "config": plain.get("config"),
            "depth": plain.get("depth"), "statistics": self.ds.statistics, "inputs": self.names,
            "histograms": {"samples": len(picks), "how": f"{len(picks)} samples evenly spaced over the dataset",
                           "image": channels.tolist(), "depth": depth.tolist() if "depth" in m.fields else None},
            "per_input": per_input, "index_problem": index_note,
        }
