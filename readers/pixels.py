"""Placing a person (pure functions): resizing RGBA through premultiplied alpha, turning it.

The builder pastes foregrounds with exactly these functions (``fgbg.builder.resize`` and
``fgbg.builder.blend`` import them from here), so the readers' ``foreground`` field
reproduces the person as pasted, byte for byte, without importing the builder.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["interpolation", "resize_rgba", "rotate_rgba", "rotated_box"]


def interpolation(src_w: int, src_h: int, w: int, h: int) -> int:
    """Area averaging when shrinking (no aliasing), bilinear when enlarging (no ringing)."""
    return cv2.INTER_AREA if w <= src_w and h <= src_h else cv2.INTER_LINEAR


def resize_rgba(rgba: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize straight-alpha RGBA uint8 through premultiplied alpha; returns straight RGBA."""
    if rgba.shape[1] == w and rgba.shape[0] == h:
        return np.ascontiguousarray(rgba)
    f = rgba.astype(np.float32) * (1.0 / 255.0)
    f[..., :3] *= f[..., 3:4]
    r = cv2.resize(f, (w, h), interpolation=interpolation(rgba.shape[1], rgba.shape[0], w, h))
    alpha = np.clip(r[..., 3:4], 0.0, 1.0)
    safe = np.where(alpha > 0, alpha, 1.0)
    rgb = np.where(alpha > 0, r[..., :3] / safe, 0.0)
    out = np.concatenate([rgb, alpha], axis=2)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def rotated_box(w: int, h: int, angle: int) -> tuple[int, int]:
    """(w, h) of the box holding a w x h image turned by ``angle`` degrees (exactly (w, h) at 0)."""
    if angle % 180 == 0:
        return w, h
    t = math.radians(angle)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    return math.ceil(round(w * c + h * s, 6)), math.ceil(round(w * s + h * c, 6))


def rotate_rgba(rgba: np.ndarray, angle: int) -> np.ndarray:
    """A straight-alpha image (h, w, 4) turned ``angle`` degrees counter-clockwise about its
    centre, on the box that holds it (:func:`rotated_box`); resampled through premultiplied
    alpha (bilinear) so no dark fringe comes in from the transparent surround."""
    h, w = rgba.shape[:2]
    bw, bh = rotated_box(w, h, angle)
    turn = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)  # pixel centres
    turn[0, 2] += (bw - w) / 2
    turn[1, 2] += (bh - h) / 2
    a = rgba[..., 3:4].astype(np.float32)
    premul = np.concatenate([rgba[..., :3].astype(np.float32) * a / 255, a], axis=2)
    out = cv2.warpAffine(premul, turn, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(0, 0, 0, 0))
    alpha = out[..., 3:4]
    colour = np.where(alpha > 0, out[..., :3] * 255 / np.maximum(alpha, 1e-6), 0)
    turned: np.ndarray = np.clip(np.rint(np.concatenate([colour, alpha], axis=2)), 0, 255).astype(np.uint8)
    return turned
