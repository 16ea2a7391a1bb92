"""Per-sample output options: normalisation with the manifest's statistics, resizing."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .foregrounds import reduce_layers

__all__ = ["SampleTransform"]


class SampleTransform:
    """Turns decoded uint8 fields into float32 normalised ones and/or resizes them.

    ``normalize``: image -> (x/255 - mean) / std per channel, depth likewise with the depth
    statistics, background with the stored backgrounds' (``inputs_bg``), mask -> x/255 (a
    probability, not standardised), foreground -> x/255 in all four channels (RGBA layers,
    transparent outside the person: not standardised). ``resize`` (w, h): image
    and depth by area (shrink) or bilinear (enlarge), the mask by nearest neighbour so it
    stays binary, the foreground's layers likewise through premultiplied alpha.
    """

    def __init__(self, statistics: dict[str, dict[str, list[float]]], normalize: bool = False,
                 resize: tuple[int, int] | None = None):
        self.normalize = normalize
        self.resize = resize
        self.mean = {k: np.asarray(v["mean"], np.float32) for k, v in statistics.items()}
        self.std = {k: np.maximum(np.asarray(v["std"], np.float32), 1e-6) for k, v in statistics.items()}

    def _resize(self, field: str, x: np.ndarray) -> np.ndarray:
        assert self.resize is not None
        w, h = self.resize
        if field == "foreground":  # RGBA layers (..., H, W, 4): through premultiplied alpha, no dark fringe
            return x if x.shape[-3:-1] == (h, w) else reduce_layers(x, w, h)
        if x.shape[1] == w and x.shape[0] == h:
            return x
        if field == "mask":
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if w <= x.shape[1] and h <= x.shape[0] else cv2.INTER_LINEAR
        return cv2.resize(x, (w, h), interpolation=interp)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        for field in ("image", "mask", "depth", "background", "foreground"):
            if field not in sample:
                continue
            x = sample[field]
            if self.resize is not None:
                x = self._resize(field, x)
            if self.normalize:
                x = x.astype(np.float32) * np.float32(1 / 255)
                if field not in _UNSCALED:
                    stats = _STATISTICS.get(field, field)
                    x = (x - self.mean[stats]) / self.std[stats]
            sample[field] = x
        return sample


_UNSCALED = ("mask", "foreground")  # x/255 only: a probability; RGBA layers mostly transparent
_STATISTICS = {"background": "inputs_bg"}  # the manifest's statistics of a field's pixels, where named otherwise
