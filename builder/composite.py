"""Compositing (pure): paste a straight-alpha foreground onto a background, make its mask.

``out = a*fg + (1-a)*bg`` is evaluated in exact integer arithmetic on the box only, with
round-half-up division by 255, so results are identical on every machine and the pixels
outside the box are the background's, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prepared", "blend_box", "composite", "composite_prepared", "div255", "mask_box", "prepare"]


def div255(t: np.ndarray) -> np.ndarray:
    """``round(t / 255)`` for uint16 ``t`` in ``[0, 255*255]``, without a division."""
    t = t + np.uint16(128)
    out: np.ndarray = ((t + (t >> np.uint16(8))) >> np.uint16(8)).astype(np.uint8)
    return out


def blend_box(bg_box: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Blend straight RGBA ``fg`` (h, w, 4) over RGB ``bg_box`` (h, w, 3)."""
    a = fg[..., 3:4].astype(np.uint16)
    t = a * fg[..., :3] + (np.uint16(255) - a) * bg_box
    return div255(t)


def mask_box(alpha: np.ndarray, threshold: int, soft: bool) -> np.ndarray:
    """The mask inside the box: 255 where alpha > threshold (or alpha itself when soft)."""
    if soft:
        return np.where(alpha > threshold, alpha, 0).astype(np.uint8)
    return np.where(alpha > threshold, 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class Prepared:
    """A foreground ready to paste many times: the parts of the blend that do not depend on
    the background, and its mask box, computed once (``out = (premul + bg * inv + 127) / 255``
    is the same integer formula as :func:`blend_box`)."""

    rgba: np.ndarray
    premul: np.ndarray  # uint16 (h, w, 3): alpha * fg
    inv_alpha: np.ndarray  # uint16 (h, w, 1): 255 - alpha
    mask: np.ndarray  # uint8 (h, w): the mask inside the box
    mask_count: int  # non-zero mask pixels (for exact statistics of binary masks)


def prepare(fg: np.ndarray, threshold: int = 0, soft: bool = False) -> Prepared:
    a = fg[..., 3:4].astype(np.uint16)
    mask = mask_box(fg[..., 3], threshold, soft)
    return Prepared(fg, a * fg[..., :3], np.uint16(255) - a, mask, int(np.count_nonzero(mask)))


def composite_prepared(bg: np.ndarray, fg: Prepared, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`composite` for a :class:`Prepared` foreground (same bytes, less work)."""
    h, w = fg.mask.shape
    H, W = bg.shape[:2]
    if not (0 <= x <= W - w and 0 <= y <= H - h):
        raise ValueError(f"box {w}x{h} at ({x}, {y}) does not fit in {W}x{H}")
    image = bg.copy()
    image[y : y + h, x : x + w] = div255(fg.premul + fg.inv_alpha * bg[y : y + h, x : x + w])
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y : y + h, x : x + w] = fg.mask
    return image, mask


def composite(
    bg: np.ndarray, fg: np.ndarray, x: int, y: int, threshold: int = 0, soft: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``fg`` at (x, y) onto a copy of ``bg``; return (image, mask) at bg size.

    ``fg`` is already resized and flipped; the box must lie inside ``bg``.
    """
    h, w = fg.shape[:2]
    H, W = bg.shape[:2]
    if not (0 <= x <= W - w and 0 <= y <= H - h):
        raise ValueError(f"box {w}x{h} at ({x}, {y}) does not fit in {W}x{H}")
    image = bg.copy()
    image[y : y + h, x : x + w] = blend_box(bg[y : y + h, x : x + w], fg)
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y : y + h, x : x + w] = mask_box(fg[..., 3], threshold, soft)
    return image, mask
