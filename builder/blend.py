"""Compositing options beyond straight alpha (pure functions): how a person's edge meets the
room, turning the person, and colour harmonisation. Every option is off by default; the mask always follows the
foreground's own alpha, never the blend (the model learns the person, not the seam).

* ``hard`` -- a hard cut: alpha becomes 0 or 255 at the mask threshold (the seeds' 004 way);
* ``feather:R`` -- the alpha softened inward by a Gaussian of radius R px: ``min(alpha,
  blur(alpha))``, so the edge fades into the room but never spreads past the cut-out;
* ``poisson`` -- OpenCV's ``seamlessClone`` (Poisson image editing, normal clone) of the
  person's opaque region into the room, computed on the placement box (pixels outside the
  box stay the background's, byte for byte);
* rotate DEG -- the person turned by a whole angle in [-DEG, DEG] (drawn per sample by the
  plan), on the box that holds the turned image;
* harmonise S -- the person's colours moved toward the room's: Reinhard colour transfer in
  Lab (mean and standard deviation per channel, over the person's pixels and the whole
  room), applied with strength S in (0, 1].
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from fgbg.readers.pixels import rotate_rgba, rotated_box  # the readers place people with them too

__all__ = ["BLENDS", "blend_alpha", "check_blend", "harmonise", "lab_stats", "poisson_paste", "rotate_rgba",
           "rotated_box"]

BLENDS = ("alpha", "hard", "feather:R", "poisson")

_FEATHER = re.compile(r"feather:([0-9]{1,3})")


def check_blend(blend: str | None) -> str | None:
    """A problem with ``blend`` (one line), or None when it is valid (None = alpha)."""
    if blend is None or blend in ("hard", "poisson"):
        return None
    m = _FEATHER.fullmatch(blend)
    if m and 1 <= int(m.group(1)) <= 64:
        return None
    return f"--blend must be alpha, hard, feather:R (R = 1..64 px) or poisson, got {blend!r}"


def blend_alpha(alpha: np.ndarray, blend: str, threshold: int) -> np.ndarray:
    """The alpha a foreground is pasted with under ``hard`` or ``feather:R``."""
    if blend == "hard":
        out: np.ndarray = np.where(alpha > threshold, 255, 0).astype(np.uint8)
        return out
    m = _FEATHER.fullmatch(blend)
    if m is None:
        raise ValueError(f"not an alpha blend: {blend!r}")
    r = int(m.group(1))
    blurred = cv2.GaussianBlur(alpha, (2 * r + 1, 2 * r + 1), r / 2, borderType=cv2.BORDER_CONSTANT)
    feathered: np.ndarray = np.minimum(alpha, blurred)
    return feathered


def lab_stats(bgr: np.ndarray, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation in (8-bit OpenCV) Lab, over ``where`` if given."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float64)
    if where is not None:
        lab = lab[where.reshape(-1)]
    if lab.size == 0:
        return np.zeros(3), np.ones(3)
    return lab.mean(axis=0), lab.std(axis=0)


def harmonise(bgr: np.ndarray, alpha: np.ndarray, room: tuple[np.ndarray, np.ndarray], strength: float) -> np.ndarray:
    """``bgr`` (the person, h x w x 3) with its Lab statistics moved toward ``room``'s by ``strength``."""
    mean_p, std_p = lab_stats(bgr, alpha > 0)
    mean_r, std_r = room
    lab = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2LAB).astype(np.float64)
    moved = (lab - mean_p) * (std_r / np.maximum(std_p, 1.0)) + mean_r
    out = np.clip(np.rint(lab + strength * (moved - lab)), 0, 255).astype(np.uint8)
    result: np.ndarray = cv2.cvtColor(out, cv2.COLOR_LAB2BGR)
    return result


_PAD = 4  # seamlessClone needs its region away from the image's border: it works on a padded copy


def poisson_paste(canvas: np.ndarray, person: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Poisson-clone ``person`` (BGR, h x w) where ``mask`` > 0 into ``canvas`` at (x, y), in
    place, changing only the box. Solved on the box and a margin of the room around it (the
    room's border reflected where the box touches it); an empty mask changes nothing."""
    h, w = mask.shape
    region = (mask > 0).astype(np.uint8) * 255
    if not region.any():
        return
    H, W = canvas.shape[:2]
    top, left = max(0, y - _PAD), max(0, x - _PAD)
    window = cv2.copyMakeBorder(canvas[top:min(H, y + h + _PAD), left:min(W, x + w + _PAD)],
                                _PAD - (y - top), _PAD - min(_PAD, H - y - h), _PAD - (x - left),
                                _PAD - min(_PAD, W - x - w), cv2.BORDER_REFLECT)
    src = np.zeros_like(window)
    src[_PAD:_PAD + h, _PAD:_PAD + w] = person
    full = np.zeros(window.shape[:2], np.uint8)
    full[_PAD:_PAD + h, _PAD:_PAD + w] = region
    rx, ry, rw, rh = cv2.boundingRect(full)
    cloned = cv2.seamlessClone(src, window, full, (rx + rw // 2, ry + rh // 2), cv2.NORMAL_CLONE)
    canvas[y:y + h, x:x + w] = cloned[_PAD:_PAD + h, _PAD:_PAD + w]
