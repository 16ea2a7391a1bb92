"""One collage to see a dataset at a glance, like the seeds' overviews: ``fgbg preview``
writes it where asked, and every commit stores it as ``preview.png`` for the dataset card.

Rows: backgrounds, foregrounds (over a checkerboard, so transparency shows), foreground
masks, composites, composite masks, depth maps -- ``columns`` of each, with row labels; with
``--people`` also the instance maps, each person in its own colour with its placement box.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .encode import decode_png, decode_png_color, encode_png_color
from .storage import Store

if TYPE_CHECKING:
    from fgbg.readers import Dataset
    from fgbg.readers.schema import InputEntry

__all__ = ["collage"]

TILE = 128
LABEL = 150


def _tile(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.dstack([img] * 3)
    h, w = img.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((TILE, TILE, 3), 255, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def _over_checker(rgba: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0 : rgba.shape[0], 0 : rgba.shape[1]]
    checker = np.where(((yy // 8 + xx // 8) % 2)[..., None] == 0, 200, 150).astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255
    return np.clip(np.rint(rgba[..., :3] * a + checker * (1 - a)), 0, 255).astype(np.uint8)


def _people(sample: dict[str, Any]) -> np.ndarray:
    """The instance map in the viewer's palette, each person's placement box drawn over it
    (the annotation is a file of the dataset: a box that is not four whole numbers and an id
    is not drawn; one off the map is clipped)."""
    from .view.data import PALETTE, colour_instances

    out = np.ascontiguousarray(colour_instances(sample["instances"]))
    h, w = out.shape[:2]
    meta = sample["meta"]
    people = meta.get("people") if isinstance(meta, dict) else None
    for p in people if isinstance(people, list) else []:
        values = [p.get(k) for k in ("instance", "x", "y", "w", "h")] if isinstance(p, dict) else []
        box = [v for v in values if type(v) is int]  # whole numbers only (not bools, not text)
        if len(box) != 5:
            continue
        k, x, y, bw, bh = box
        x0, y0 = min(max(x, -1), w), min(max(y, -1), h)
        x1, y1 = min(max(x + bw - 1, -1), w), min(max(y + bh - 1, -1), h)
        cv2.rectangle(out, (x0, y0), (x1, y1), tuple(int(c) for c in PALETTE[k % len(PALETTE)]), 1)
    return out


def collage(store: Store, ds: Dataset, columns: int = 8) -> bytes:
    """The collage of ``ds`` (whose inputs are read from ``store``) as PNG bytes: a pure
    function of the dataset's bytes, so a resumed build stores the same file again."""
    inputs = ds.metadata.inputs

    def stored(kind: str, mask: bool = False) -> list[bytes]:  # an imported dataset may lack some inputs
        entries = [r for r in inputs.get(kind, []) if (r.mask_file if mask else r.file) is not None][:columns]  # type: ignore[call-overload]

        def read(r: InputEntry) -> bytes:
            if mask or r.file_sha256 is None:
                return store.read_bytes(r.mask_file if mask else r.file)  # type: ignore[arg-type]
            return store.read_input(r.file, r.file_sha256)  # type: ignore[arg-type]

        with ThreadPoolExecutor(8, thread_name_prefix="fgbg-collage") as ex:  # round trips at once on a bucket
            return list(ex.map(read, entries))

    rows: dict[str, list[np.ndarray]] = {
        "backgrounds": [decode_png_color(b) for b in stored("bg")],
        "foregrounds": [_over_checker(decode_png_color(b)) for b in stored("fg")],
        "fg masks": [decode_png(b) for b in stored("fg", mask=True)],
    }
    step = max(1, len(ds) // columns)
    samples = ds.get_many(list(range(0, len(ds), step))[:columns])  # one concurrent fetch on a bucket
    rows["composites"] = [s["image"] for s in samples]
    rows["composite masks"] = [s["mask"] for s in samples]
    if "depth" in ds.fields:
        rows["depth maps"] = [s["depth"] for s in samples]
    if "instances" in ds.fields:
        rows["people"] = [_people(s) for s in samples]
    rows = {label: images for label, images in rows.items() if images}
    canvas = np.full((TILE * len(rows) + 8 * (len(rows) + 1), LABEL + (TILE + 8) * columns, 3), 255, np.uint8)
    for r, (label, images) in enumerate(rows.items()):
        y = 8 + r * (TILE + 8)
        cv2.putText(canvas, label, (8, y + TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
        for c, img in enumerate(images):
            x = LABEL + c * (TILE + 8)
            canvas[y : y + TILE, x : x + TILE] = _tile(img)
    return encode_png_color(canvas)
