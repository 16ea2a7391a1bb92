"""Resizing math (pure functions): backgrounds to the composite size, foregrounds to their box.

Foregrounds are resized in **premultiplied** alpha and converted back to straight alpha:
resizing straight RGBA averages the colour of fully transparent pixels (often black) into
the visible edge, which shows as a dark halo around every pasted person.
"""

from __future__ import annotations

import cv2
import numpy as np

from fgbg.readers.pixels import interpolation, resize_rgba  # the readers place people with it too

__all__ = ["attach_mask", "fit_box", "resize_rgb", "resize_rgba"]


def resize_rgb(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize an RGB uint8 image to exactly ``w`` x ``h``."""
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (w, h), interpolation=interpolation(rgb.shape[1], rgb.shape[0], w, h))


def fit_box(src_w: int, src_h: int, box_w: int, box_h: int, keep_aspect: bool) -> tuple[int, int]:
    """Size of a foreground in a ``box_w`` x ``box_h`` box: the box, or the largest same-aspect fit."""
    if not keep_aspect:
        return box_w, box_h
    s = min(box_w / src_w, box_h / src_h)
    return max(1, min(box_w, int(src_w * s + 0.5))), max(1, min(box_h, int(src_h * s + 0.5)))


def attach_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Combine an RGB foreground and a separate mask (same size) into straight RGBA."""
    if mask.ndim == 3:
        mask = mask[..., 0]  # grayscale files arrive as RGB with equal channels
    return np.concatenate([rgb[..., :3], mask[..., None]], axis=2)
