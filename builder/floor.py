"""``--position floor`` (pure): people standing on the room's floor, sized by their distance.

The geometry is the plane prior's room (:mod:`builder.depth.plane`): a level pinhole camera
``CAMERA_M`` above a floor whose horizon is at ``HORIZON`` of the image height, the floor
visible below the wall line. A person whose feet touch the floor at row ``v`` (the bottom edge
of their box, the row the plane prior reads their depth at) stands at ``d = floor_depth(v)``
and a person ``H`` metres tall spans ``focal * H / d = H * (v - horizon) / CAMERA_M`` rows:
nearer people are lower in the frame and larger. So the plan draws, per person, a feet row on
the visible floor and a height in metres, and the box follows (the width from the
foreground's own aspect); ``--fg-scale`` does not apply. The foreground's box is taken as the
person: a cut-out with empty rows under the feet stands that many rows lower than drawn.
"""

from __future__ import annotations

import math

import numpy as np

from .depth.plane import CAMERA_M, HORIZON, WALL_LINE, WALL_M, floor_depth

__all__ = ["distance_m", "feet_range", "person_rows"]


def feet_range(size: int) -> tuple[int, int]:
    """(lowest, highest) feet row, inclusive: the first row below the wall line to the frame's
    bottom edge (``size``: feet on the last pixel row)."""
    return math.floor(WALL_LINE * size) + 1, size


def person_rows(feet: np.ndarray, height_m: np.ndarray, size: int,
                horizon: np.ndarray | float | None = None) -> np.ndarray:
    """Height in pixels (float) of people ``height_m`` tall whose feet are at row ``feet``;
    ``horizon``: a fitted horizon row (``--depth-layers``, :mod:`.floor_fit`) instead of the room's."""
    h = HORIZON * size if horizon is None else horizon
    out: np.ndarray = height_m * (np.asarray(feet, np.float64) - h) / CAMERA_M
    return out


def distance_m(feet: np.ndarray | int, size: int, horizon: float | None = None) -> np.ndarray:
    """Distance in metres of the floor at row ``feet`` (what the plane prior gives the person).
    With a fitted ``horizon``: the distance under the room's camera (its height and focal length)
    looking at a floor with that horizon, ``k / (feet - horizon)`` -- the distance that makes the
    person as tall as :func:`person_rows` does (no back wall caps it)."""
    if horizon is None:
        out: np.ndarray = floor_depth(np.asarray(feet, np.float64), size)
        return out
    k = WALL_M * (WALL_LINE * size - HORIZON * size)  # floor_depth's: focal x camera height
    out = k / np.maximum(np.asarray(feet, np.float64) - horizon, 1e-6)
    return out
