"""``fgbg preview``: one collage to see a dataset at a glance, like the seeds' overviews.

Rows: backgrounds, foregrounds (over a checkerboard, so transparency shows), foreground
masks, composites, composite masks, depth maps -- ``columns`` of each, with row labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..encode import decode_png, decode_png_color, encode_png_color
from ..storage import ObjectStore, open_store

__all__ = ["preview"]

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


def preview(url: str, out: str | Path, columns: int = 8, storage_options: dict[str, Any] | None = None) -> Path:
    """Write the collage PNG to ``out`` and return its path."""
    from fgbg.readers import open_dataset

    store = open_store(url, storage_options)
    options = store.storage_options if isinstance(store, ObjectStore) else None
    ds = open_dataset(url, storage_options=options)
    inputs = ds.manifest["inputs"]

    def stored(kind: str, field: str) -> list[bytes]:  # an imported dataset may lack some inputs
        return [store.read_bytes(r[field]) for r in [r for r in inputs[kind] if field in r][:columns]]

    rows: dict[str, list[np.ndarray]] = {
        "backgrounds": [decode_png_color(b) for b in stored("bg", "file")],
        "foregrounds": [_over_checker(decode_png_color(b)) for b in stored("fg", "file")],
        "fg masks": [decode_png(b) for b in stored("fg", "mask_file")],
    }
    step = max(1, len(ds) // columns)
    samples = [ds[i] for i in range(0, len(ds), step)][:columns]
    rows["composites"] = [s["image"] for s in samples]
    rows["composite masks"] = [s["mask"] for s in samples]
    if "depth" in ds.fields:
        rows["depth maps"] = [s["depth"] for s in samples]
    rows = {label: images for label, images in rows.items() if images}
    canvas = np.full((TILE * len(rows) + 8 * (len(rows) + 1), LABEL + (TILE + 8) * columns, 3), 255, np.uint8)
    for r, (label, images) in enumerate(rows.items()):
        y = 8 + r * (TILE + 8)
        cv2.putText(canvas, label, (8, y + TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
        for c, img in enumerate(images):
            x = LABEL + c * (TILE + 8)
            canvas[y : y + TILE, x : x + TILE] = _tile(img)
    path = Path(out)
    path.write_bytes(encode_png_color(canvas))
    return path
