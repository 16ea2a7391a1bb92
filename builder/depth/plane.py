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

from .base import DepthBackend, DepthBatch, to_seed_uint8

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
        n, H = batch.masks.shape[:2]
        w, h = self.out_size
        rows = (np.arange(h, dtype=np.float64) + 0.5) * (H / h)
        scene = np.repeat(floor_depth(rows, H)[:, None], w, axis=1)
        out = np.empty((n, h, w), dtype=np.float64)
        for i in range(n):
            foot_row = float(batch.boxes[i, 1] + batch.boxes[i, 3])  # y + h: where it stands
            foot = floor_depth(np.array([foot_row]), H)[0]
            small = cv2.resize(batch.masks[i], (w, h), interpolation=cv2.INTER_AREA)
            out[i] = np.where(small > 127, foot, scene)
        return to_seed_uint8(out)
