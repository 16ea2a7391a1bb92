"""``plane``: a non-learned geometric depth prior for offline demos. It is not a model.

It knows nothing about the pixels. The background is assumed to be a room seen by a camera
1.5 m above the floor: rows above a fixed wall line are a fronto-parallel back wall at
``WALL_M``; rows below are the floor plane, whose depth falls off as 1/(row - horizon).
The foreground is an upright plane standing on the floor: every pixel of its mask takes the
floor depth at its foot row (the bottom row of its box). Useful to exercise the depth stage
and to get maps with the right shape and statistics; use ``densedepth`` for real data.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import DepthBackend, DepthBatch

__all__ = ["PlaneDepth"]

HORIZON = 0.40  # horizon row as a fraction of the image height
WALL_LINE = 0.55  # row where the back wall meets the floor
WALL_M = 6.0  # distance of the back wall in metres


def floor_depth(rows: np.ndarray, height: int) -> np.ndarray:
    """Depth in metres of each row (float, 0 = top) under the room model."""
    horizon, wall = HORIZON * height, WALL_LINE * height
    k = WALL_M * (wall - horizon)  # continuous at the wall line
    with np.errstate(divide="ignore"):
        floor = k / np.maximum(rows - horizon, 1e-6)
    return np.where(rows <= wall, WALL_M, np.minimum(floor, WALL_M))


class PlaneDepth(DepthBackend):
    name = "plane"
    needs_pixels = False

    def predict(self, batch: DepthBatch) -> np.ndarray:
        """Per image there are only the scene's row depths and one person depth, so the seed
        post-processing runs on those few values (bit-for-bit what :func:`to_seed_uint8` gives
        on the full map: the same float64 operations, element by element)."""
        n, H = batch.masks.shape[:2]
        w, h = self.out_size
        rows = (np.arange(h, dtype=np.float64) + 0.5) * (H / h)
        scene = floor_depth(rows, H)
        out = np.empty((n, h, w), dtype=np.uint8)
        for i in range(n):
            foot_row = float(batch.boxes[i, 1] + batch.boxes[i, 3])  # y + h: where it stands
            foot = floor_depth(np.array([foot_row]), H)
            person = cv2.resize(batch.masks[i], (w, h), interpolation=cv2.INTER_AREA) > 127
            visible_rows = ~person.all(axis=1)
            values = np.concatenate([scene[visible_rows], foot if person.any() else foot[:0]])
            d = np.clip(values * 100.0, 10.0, 1000.0) / 1000.0
            lo, hi = d.min(), d.max()
            span = hi - lo if hi > lo else 1.0
            levels = np.clip(np.rint((np.clip(np.concatenate([scene, foot]) * 100.0, 10.0, 1000.0) / 1000.0 - lo)
                                     / span * 255.0), 0, 255).astype(np.uint8)
            out[i] = np.where(person, levels[-1], levels[:-1, None])
        return out
