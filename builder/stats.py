"""Exact dataset statistics (pure): integer pixel sums per channel, merged, then mean/std.

Sums of uint8 values and of their squares are kept as exact integers (Python ints in JSON,
int64 in NumPy: 400k samples x 224^2 x 255^2 is ~1.3e15, far below 2^63), so per-shard sums
merge without rounding and the final mean/std equal a brute-force recomputation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fgbg.readers.schema import PixelSumsRecord

__all__ = ["PixelSums", "float_sums", "opencv_sums", "region_sums", "square_table"]


def region_sums(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum, sum of squares) per channel of a uint8 array (H, W[, C]) as int64."""
    flat = pixels.reshape(-1, pixels.shape[2] if pixels.ndim == 3 else 1).astype(np.int64)
    return flat.sum(axis=0), (flat * flat).sum(axis=0)


_SQUARES = np.arange(256, dtype=np.uint16) ** 2  # 255**2 fits in 16 bits


def opencv_sums(pixels: np.ndarray, squares: np.ndarray | None = None) -> tuple[Any, Any]:
    """OpenCV's per-channel (sum, sum of squares) of uint8 ``pixels`` (H, W[, C<=4]) as two
    4-tuples of float64. Both are exact integers: OpenCV accumulates integer blocks into
    float64, exact while totals stay below 2**53 (any batch of a few million pixels).
    Squares come from a 256-entry table (``squares``: the precomputed table lookup of
    ``pixels``, if the caller has it); a few times faster than NumPy's int64 reductions."""
    import cv2

    sq = squares if squares is not None else square_table(pixels)
    return cv2.sumElems(pixels), cv2.sumElems(sq)


def square_table(pixels: np.ndarray) -> np.ndarray:
    """uint16 squares of uint8 ``pixels`` (to reuse across many :func:`opencv_sums` calls)."""
    import cv2

    out: np.ndarray = cv2.LUT(pixels, _SQUARES)
    return out


def float_sums(pixels: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum, sum of squares) per channel (1-4) of uint8 ``pixels`` ([N,] H, W[, C]) as int64,
    through :func:`opencv_sums` (exact)."""
    img = np.ascontiguousarray(pixels).reshape(-1, pixels.shape[-1] if channels == 1 else pixels.shape[-2], channels)
    if channels == 1:
        img = img[..., 0]
    s, q = opencv_sums(img)
    return np.array(s[:channels]).astype(np.int64), np.array(q[:channels]).astype(np.int64)


@dataclass
class PixelSums:
    """Running exact sums for one field (composite, mask, depth, ...)."""

    channels: int
    count: int = 0  # pixels per channel
    sum: list[int] = field(default_factory=list)
    sumsq: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sum = self.sum or [0] * self.channels
        self.sumsq = self.sumsq or [0] * self.channels

    def add(self, count: int, s: np.ndarray, sq: np.ndarray) -> None:
        """Add ``count`` pixels whose per-channel sums are ``s`` and ``sq``."""
        self.count += int(count)
        self.sum = [a + int(b) for a, b in zip(self.sum, s, strict=True)]
        self.sumsq = [a + int(b) for a, b in zip(self.sumsq, sq, strict=True)]

    def add_pixels(self, pixels: np.ndarray) -> None:
        s, sq = region_sums(pixels)
        self.add(pixels.shape[0] * pixels.shape[1], s, sq)

    def merge(self, other: PixelSums) -> None:
        self.add(other.count, np.asarray(other.sum), np.asarray(other.sumsq))

    def mean_std(self) -> dict[str, list[float]]:
        """Population mean and std per channel on the [0, 1] scale."""
        if self.count == 0:
            return {"mean": [0.0] * self.channels, "std": [0.0] * self.channels}
        n = self.count
        mean = [s / (n * 255) for s in self.sum]
        # n*sumsq - sum^2 is an exact integer: no cancellation error.
        std = [math.sqrt(max(0, n * q - s * s)) / (n * 255) for s, q in zip(self.sum, self.sumsq, strict=True)]
        return {"mean": mean, "std": std}

    def record(self) -> PixelSumsRecord:
        """The sums as a receipt stores them."""
        return PixelSumsRecord(self.channels, self.count, list(self.sum), list(self.sumsq))

    @classmethod
    def from_record(cls, r: PixelSumsRecord) -> PixelSums:
        return cls(r.channels, r.count, list(r.sum), list(r.sumsq))
