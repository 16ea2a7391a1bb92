"""The depth-backend interface: a batch of composites in, a batch of 8-bit depth maps out.

Batched because the real backend (DenseDepth, a later module) is a CNN that is only fast
on batches; the builder hands it ``DepthBatch`` records and never knows which backend runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import msgspec
import numpy as np

from fgbg.readers.schema import DepthSource

__all__ = ["DepthBackend", "DepthBatch", "to_seed_uint8"]


@dataclass(frozen=True)
class DepthBatch:
    """What a backend may look at for N samples of one batch."""

    images: np.ndarray  # (N, H, W, 3) uint8 RGB, the JPEG round-trip; (N, 0, 0, 3) unless needs_pixels
    masks: np.ndarray  # (N, H, W) uint8 composite masks
    boxes: np.ndarray  # (N, 4) int64 placement boxes x, y, w, h (of the sample's own person)
    #: --people: per image, every person's box (K, 4) in paint order and the instance map (H, W),
    #: ids 1..K; None with one person per image
    people: list[tuple[np.ndarray, np.ndarray]] | None = None
    #: (N,) int64 background index of each image (``--depth-layers`` paints on its prediction)
    backgrounds: np.ndarray | None = None


class DepthBackend(ABC):
    """A depth predictor. Subclasses set ``name`` and ``needs_pixels`` and implement predict."""

    name: str = ""
    #: True when predict() reads the composite pixels: the builder then hands it the
    #: *encoded* composite decoded back (seed semantics), which costs one JPEG decode.
    needs_pixels: bool = False

    def __init__(self, out_size: tuple[int, int]):
        self.out_size = out_size  # (w, h) of the stored map

    @abstractmethod
    def predict(self, batch: DepthBatch) -> np.ndarray:
        """Return (N, h, w) uint8 depth maps, 0 = nearest, 255 = farthest in each image."""

    def describe(self) -> DepthSource:
        """What goes into the manifest to identify the depth source (name, weights hash...)."""
        return msgspec.convert({"backend": self.name, "size": list(self.out_size)}, DepthSource)

    def close(self) -> None:
        """Release models/devices; called once by the builder when a worker is done."""


def to_seed_uint8(depth_m: np.ndarray) -> np.ndarray:
    """Seed post-processing of metric depth (N, h, w) in metres to 8-bit maps.

    DenseDepth's seed code computes ``d = clip(1000/pred, 10, 1000) / 1000`` (depth as a
    fraction of 10 m) and then stretches each image to 0..255; ``1000/pred`` is depth in cm,
    so the same mapping from metres is ``clip(depth_m * 100, 10, 1000) / 1000``.
    """
    d = np.clip(depth_m.astype(np.float64) * 100.0, 10.0, 1000.0) / 1000.0
    lo = d.min(axis=(1, 2), keepdims=True)
    hi = d.max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    out: np.ndarray = np.clip(np.rint((d - lo) / span * 255.0), 0, 255).astype(np.uint8)
    return out
