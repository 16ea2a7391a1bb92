"""Resizing math (pure functions): backgrounds to the composite size, foregrounds to their box.

Foregrounds are resized in **premultiplied** alpha and converted back to straight alpha:
resizing straight RGBA averages the colour of fully transparent pixels (often black) into
the visible edge, which shows as a dark halo around every pasted person.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["attach_mask", "fit_box", "resize_rgb", "resize_rgba"]


def _interpolation(src_w: int, src_h: int, w: int, h: int) -> int:
    # Area averaging when shrinking (no aliasing), bilinear when enlarging (no ringing).
    return cv2.INTER_AREA if w <= src_w and h <= src_h else cv2.INTER_LINEAR


def resize_rgb(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize an RGB uint8 image to exactly ``w`` x ``h``."""
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (w, h), interpolation=_interpolation(rgb.shape[1], rgb.shape[0], w, h))


def resize_rgba(rgba: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize straight-alpha RGBA uint8 through premultiplied alpha; returns straight RGBA."""
    if rgba.shape[1] == w and rgba.shape[0] == h:
        return np.ascontiguousarray(rgba)
    f = rgba.astype(np.float32) * (1.0 / 255.0)
    f[..., :3] *= f[..., 3:4]
    r = cv2.resize(f, (w, h), interpolation=_interpolation(rgba.shape[1], rgba.shape[0], w, h))
    alpha = np.clip(r[..., 3:4], 0.0, 1.0)
    safe = np.where(alpha > 0, alpha, 1.0)
    rgb = np.where(alpha > 0, r[..., :3] / safe, 0.0)
    out = np.concatenate([rgb, alpha], axis=2)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


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
