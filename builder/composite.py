"""Compositing (pure): paste a straight-alpha foreground onto a background, make its mask.

``out = a*fg + (1-a)*bg`` is evaluated in exact integer arithmetic on the box only, with
round-half-up division by 255, so results are identical on every machine and the pixels
outside the box are the background's, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Prepared", "blend_box", "box_origin", "composite", "composite_prepared", "div255", "mask_box", "paste",
           "prepare"]


def div255(t: np.ndarray) -> np.ndarray:
    """``round(t / 255)`` for uint16 ``t`` in ``[0, 255*255]``, without a division."""
    t = t + np.uint16(128)
    out: np.ndarray = ((t + (t >> np.uint16(8))) >> np.uint16(8)).astype(np.uint8)
    return out


_DIV255 = div255(np.arange(255 * 255 + 1, dtype=np.uint16))  # the same rounding as one table lookup


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
    """A foreground ready to paste many times onto canvases ``canvas_width`` pixels wide.

    Most foreground pixels are either opaque (the result is the foreground's colour) or fully
    transparent (the background's); only the partially transparent edge needs the blend. So
    the opaque part is one masked copy, and the blend -- the same integer formula as
    :func:`blend_box`, ``out = (premul + bg * inv + 127) / 255`` -- runs on the edge only,
    through flat offsets computed here once. The mask's sums, which do not depend on the
    placement, are precomputed too (for exact statistics of the masks).
    """

    canvas_width: int
    rgb: np.ndarray  # uint8 (h, w, 3), contiguous
    opaque: np.ndarray  # uint8 (h, w): 1 where alpha == 255
    edge_offsets: np.ndarray  # intp (3 * edge pixels,): flat offsets from the box origin, per channel
    edge_premul: np.ndarray  # uint16: alpha * fg at the edge
    edge_inv: np.ndarray  # uint16: 255 - alpha at the edge
    mask: np.ndarray  # uint8 (h, w): the mask inside the box
    mask_count: int  # non-zero mask pixels
    mask_sum: int  # sum and sum of squares of the mask box (the rest of a mask is 0)
    mask_sumsq: int

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.mask.shape
        return h, w


def prepare(fg: np.ndarray, threshold: int = 0, soft: bool = False, canvas_width: int = 224,
            mask_alpha: np.ndarray | None = None) -> Prepared:
    """Precompute what pasting straight RGBA ``fg`` at any position needs (see :class:`Prepared`).
    ``mask_alpha``: the alpha the mask is made from when ``fg``'s own was changed by a blend
    option (the mask follows the person, not the blend)."""
    if fg.ndim != 3 or fg.shape[2] != 4 or fg.dtype != np.uint8:
        raise ValueError(f"foreground must be uint8 (h, w, 4), got {fg.dtype} {fg.shape}")
    if fg.shape[1] > canvas_width:
        raise ValueError(f"foreground width {fg.shape[1]} exceeds the canvas width {canvas_width}")
    alpha = fg[..., 3]
    rgb = np.ascontiguousarray(fg[..., :3])
    opaque = alpha == 255
    rows, cols = np.nonzero((alpha > 0) & ~opaque)
    offsets = (((rows * canvas_width + cols) * 3)[:, None] + np.arange(3)).reshape(-1).astype(np.intp)
    a = alpha[rows, cols].astype(np.uint16)[:, None]
    mask = mask_box(alpha if mask_alpha is None else mask_alpha, threshold, soft)
    m = mask.astype(np.int64)
    return Prepared(
        canvas_width=canvas_width, rgb=rgb, opaque=opaque.view(np.uint8), edge_offsets=offsets,
        edge_premul=(a * rgb[rows, cols]).reshape(-1), edge_inv=np.repeat(np.uint16(255) - a[:, 0], 3),
        mask=mask, mask_count=int(np.count_nonzero(mask)), mask_sum=int(m.sum()), mask_sumsq=int((m * m).sum()),
    )


def box_origin(fg: Prepared, x: int, y: int) -> int:
    """Flat offset of the box's top-left pixel in a canvas of ``fg.canvas_width``."""
    return (y * fg.canvas_width + x) * 3


def paste(canvas: np.ndarray, fg: Prepared, x: int, y: int) -> None:
    """Paste ``fg`` at (x, y) onto ``canvas`` (contiguous uint8 (H, W, 3) holding the
    background), in place: the opaque part by one masked copy, the edge by the blend."""
    import cv2

    h, w = fg.shape
    H, W = canvas.shape[:2]
    if fg.canvas_width != W:
        raise ValueError(f"foreground prepared for a canvas {fg.canvas_width} wide, background is {W} wide")
    if not (0 <= x <= W - w and 0 <= y <= H - h):
        raise ValueError(f"box {w}x{h} at ({x}, {y}) does not fit in {W}x{H}")
    box = canvas[y : y + h, x : x + w]
    out = cv2.copyTo(fg.rgb, fg.opaque, box)  # writes into the view (same size and type) and returns it
    if out is not box:  # never seen; be correct anyway (the check by identity: .ctypes costs ~2 us)
        box[...] = out
    if fg.edge_offsets.size:
        flat = canvas.reshape(-1)
        at = fg.edge_offsets + box_origin(fg, x, y)
        flat[at] = _DIV255.take(fg.edge_premul + fg.edge_inv * flat[at])


def composite_prepared(bg: np.ndarray, fg: Prepared, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`composite` for a :class:`Prepared` foreground (same bytes, a fraction of the work)."""
    image = np.ascontiguousarray(bg).copy()
    paste(image, fg, x, y)
    h, w = fg.shape
    mask = np.zeros(bg.shape[:2], dtype=np.uint8)
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
