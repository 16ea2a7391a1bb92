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
CAMERA_M = 1.5  # camera height above the floor: with the rows above, it fixes the focal length


def focal_px(height: int) -> float:
    """Focal length in pixels of the room model's pinhole camera: a floor row's depth is
    ``focal * CAMERA_M / (row - horizon)``, which :func:`floor_depth` writes as ``k / (row - horizon)``."""
    return WALL_M * (WALL_LINE - HORIZON) * height / CAMERA_M


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
        post-processing runs on those few values, for the whole batch at once (bit-for-bit
        what :func:`to_seed_uint8` gives on the full maps: the same float64 operations,
        element by element; min and max are exact)."""
        if batch.people is not None:
            return np.stack([self._crowd(boxes, ids) for boxes, ids in batch.people])
        n, H = batch.masks.shape[:2]
        w, h = self.out_size
        rows = (np.arange(h, dtype=np.float64) + 0.5) * (H / h)
        scene = _seed_scale(floor_depth(rows, H))  # (h,)
        foot = _seed_scale(floor_depth((batch.boxes[:, 1] + batch.boxes[:, 3]).astype(np.float64), H))  # (n,)
        person = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in batch.masks]) > 127
        visible = ~person.all(axis=2)  # (n, h): rows where the scene shows somewhere
        has_person = person.any(axis=(1, 2))
        lo = np.minimum(np.where(visible, scene, np.inf).min(axis=1), np.where(has_person, foot, np.inf))
        hi = np.maximum(np.where(visible, scene, -np.inf).max(axis=1), np.where(has_person, foot, -np.inf))
        span = np.where(hi > lo, hi - lo, 1.0)
        values = np.concatenate([np.broadcast_to(scene, (n, h)), foot[:, None]], axis=1)  # (n, h + 1)
        levels = np.clip(np.rint((values - lo[:, None]) / span[:, None] * 255.0), 0, 255).astype(np.uint8)
        out: np.ndarray = np.where(person, levels[:, -1, None, None], levels[:, :-1, None])  # (n, h, w)
        return out


    def _crowd(self, boxes: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """One image with several people: each person's pixels take the floor depth at that
        person's own foot row; the scene and the stretch as for one person."""
        H = ids.shape[0]
        w, h = self.out_size
        rows = (np.arange(h, dtype=np.float64) + 0.5) * (H / h)
        scene = _seed_scale(floor_depth(rows, H))
        feet = _seed_scale(floor_depth((boxes[:, 1] + boxes[:, 3]).astype(np.float64), H))  # (K,)
        label = np.full((h, w), -1, np.int64)
        for k in range(len(boxes)):  # paint order: a nearer person covers a farther one
            layer = cv2.resize(np.where(ids == k + 1, 255, 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
            label[layer > 127] = k
        shown = np.unique(label[label >= 0])
        visible = ~(label >= 0).all(axis=1)
        values = [scene[visible], feet[shown]]
        lo = min(float(v.min()) for v in values if v.size)
        hi = max(float(v.max()) for v in values if v.size)
        span = hi - lo if hi > lo else 1.0
        levels = np.clip(np.rint((np.concatenate([scene, feet]) - lo) / span * 255.0), 0, 255).astype(np.uint8)
        out: np.ndarray = np.where(label >= 0, levels[h + np.maximum(label, 0)], levels[:h, None])
        return out


def _seed_scale(depth_m: np.ndarray) -> np.ndarray:
    """The first step of :func:`to_seed_uint8`: depth as a clipped fraction of 10 m."""
    out: np.ndarray = np.clip(depth_m * 100.0, 10.0, 1000.0) / 1000.0
    return out
