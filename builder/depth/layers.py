"""``--depth-layers``: depth maps painted from one model prediction per background.

A learned model costs one forward pass per composite, and a dataset's composites share few
backgrounds (the seeds: 400,000 samples, 100 backgrounds). A pasted person is a flat cut-out
standing on the floor of a photograph, so its true depth is the floor's depth where it stands.
This module paints a sample's map from the model's view of its background alone:

* the background's prediction (``values``: metres, or relative inverse depth, at the stored
  depth size, before the 8-bit stretch -- stored per background, see :mod:`.stored`);
* every person's pixels set to the background's value at that person's **feet**
  (:func:`feet_pixel`), people painted in paint order, so nearer people cover farther ones;
* then the backend's usual per-image stretch to 8 bits (:func:`~.presets.stretch`).

Everything here is a pure function of the stored prediction and the sample's annotation (its
boxes and masks), which is what lets ``fgbg verify --deep`` repaint every map byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fgbg.readers.schema import DepthSource

from ..lru import LRU
from .base import DepthBackend, DepthBatch
from .presets import output_kind, parse_preset

__all__ = ["OUTPUTS", "LayeredDepth", "feet_pixel", "model_output", "paint", "person_labels"]

PLAIN_BUDGET = 128 << 20  # bytes of backgrounds' plain maps a worker keeps (~1,000 at 112x112)
OUTPUTS = ("metric", "inverse")  # what a stored prediction holds: metres, or relative inverse depth


def model_output(depth: str, preset: str | None, input_size: tuple[int, int] | None) -> str:
    """The convention of a learned backend's unstretched maps: DenseDepth (Keras, or an ONNX
    export under the ``densedepth`` preset) and ``metric`` models give metres, ``inverse``
    models relative inverse depth."""
    if depth == "densedepth":
        return "metric"
    if depth != "onnx" or preset is None:
        raise ValueError(f"--depth-layers needs a learned depth backend, not {depth!r}")
    return output_kind(parse_preset(preset, input_size))


def feet_pixel(box: tuple[int, int, int, int], frame: tuple[int, int], depth_shape: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the depth-map pixel under a person's feet.

    The feet are the bottom centre of the person's box ``(x, y, w, h)`` in the composite
    ``frame`` (W, H): the centre of its last row, ``y + h - 1/2``, and of its width,
    ``x + w/2`` -- mapped to the depth map of ``depth_shape`` (w, h) and rounded down, in
    integers. The last row is inside the box, so a box that reaches the bottom edge of the
    frame (``y + h = H``) stands on the map's last row, and one at the left or right edge on
    the first or last column: no clamping is ever needed, because boxes lie inside the frame.
    A turned person (``--rotate``) stands on the bottom centre of its turned box, the row its
    lowest pixel is on.
    """
    x, y, w, h = box
    fw, fh = frame
    dw, dh = depth_shape
    return (2 * (y + h) - 1) * dh // (2 * fh), (2 * x + w) * dw // (2 * fw)


def person_labels(layers: Sequence[np.ndarray], depth_shape: tuple[int, int]) -> np.ndarray:
    """Which person each depth-map pixel shows: (h, w) int64, -1 where nobody is.

    ``layers`` are the people's masks at composite size in paint order (farther first), each
    shown only where no nearer person is (with ``--people``: ``instances == i``). A person
    covers a depth pixel where its mask, area-resized to the depth size, exceeds 127 -- the
    rule of the ``plane`` prior -- and later (nearer) people overwrite earlier ones.
    """
    w, h = depth_shape
    labels = np.full((h, w), -1, np.int64)
    for k, layer in enumerate(layers):
        small = cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA)
        labels[small > 127] = k
    return labels


def paint(background: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], labels: np.ndarray,
          frame: tuple[int, int]) -> np.ndarray:
    """One sample's map before the stretch: ``background`` (h, w), and where ``labels`` shows
    person ``k`` the background's value at the feet of ``boxes[k]`` (float64)."""
    h, w = background.shape
    values = background.astype(np.float64)
    if not boxes:
        return values
    rows, cols = zip(*(feet_pixel(b, frame, (w, h)) for b in boxes), strict=True)
    feet = values[list(rows), list(cols)]
    out: np.ndarray = np.where(labels >= 0, feet[np.maximum(labels, 0)], values)
    return out


class LayeredDepth(DepthBackend):
    """Maps painted from stored background predictions: no model, no pixels looked at.

    ``source`` is the dataset's depth record (the model that made the predictions, its weights
    hash, runtime and precision), so a dataset's record reads the same in both modes except for
    ``config.depth_layers``; ``output`` is that model's convention (:data:`OUTPUTS`).
    """

    name = "layered"
    needs_pixels = False

    def __init__(self, out_size: tuple[int, int], source: DepthSource, output: str,
                 predictions: Sequence[np.ndarray], frame: tuple[int, int]):
        super().__init__(out_size)
        if output not in OUTPUTS:
            raise ValueError(f"layered depth: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.source = source
        self.output = output
        self.predictions = predictions
        self.frame = frame
        w, h = out_size  # a plain map: float64 values, two masks and the 8-bit levels per pixel
        self._plains: LRU[int, _Plain] = LRU(max(64, PLAIN_BUDGET // (11 * w * h)))

    def describe(self) -> DepthSource:
        return self.source

    def values(self, background: int, boxes: Sequence[tuple[int, int, int, int]],
               layers: Sequence[np.ndarray]) -> np.ndarray:
        """The unstretched map of one sample on ``background`` (see :func:`paint`)."""
        return paint(self.predictions[background], boxes, person_labels(layers, self.out_size), self.frame)

    def predict(self, batch: DepthBatch) -> np.ndarray:
        if batch.backgrounds is None:
            raise ValueError("layered depth needs each image's background index")
        if batch.people is None and len(batch.backgrounds):
            return self._predict_single(batch)
        w, h = self.out_size
        out = np.empty((len(batch.backgrounds), h, w), np.uint8)
        for j, b in enumerate(batch.backgrounds.tolist()):
            if batch.people is not None:
                boxes, ids = batch.people[j]
                people = [(int(q[0]), int(q[1]), int(q[2]), int(q[3])) for q in boxes]
                layers = [np.where(ids == k + 1, 255, 0).astype(np.uint8) for k in range(len(people))]
            else:
                q = batch.boxes[j]
                people, layers = [(int(q[0]), int(q[1]), int(q[2]), int(q[3]))], [batch.masks[j]]
            out[j] = self.paint_one(b, people, layers)
        return out

    def _predict_single(self, batch: DepthBatch) -> np.ndarray:
        """One person per image: :meth:`paint_one` for the whole batch at once -- the
        backgrounds' 8-bit maps stacked, each person's pixels set to its feet's level in one
        ``where``; the images whose person hides every nearest or farthest pixel of its
        background (their stretch changes) are painted one by one. Bit for bit paint_one's."""
        assert batch.backgrounds is not None
        w, h = self.out_size
        plains = [self._plain(b) for b in batch.backgrounds.tolist()]
        shown = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in batch.masks]) > 127
        x, y, bw, bh = (batch.boxes[:, k].astype(np.int64) for k in range(4))
        fw, fh = self.frame
        rows, cols = (2 * (y + bh) - 1) * h // (2 * fh), (2 * x + bw) * w // (2 * fw)  # feet_pixel, vectorised
        feet = np.array([p.scaled[r, c] for p, r, c in zip(plains, rows.tolist(), cols.tolist(), strict=True)])
        lo, hi = np.array([p.lo for p in plains]), np.array([p.hi for p in plains])
        out = np.where(shown, self._levels(feet, lo, hi)[:, None, None], np.stack([p.levels for p in plains]))
        for j, p in enumerate(plains):
            flat = shown[j].ravel()
            if flat[p.lowest_at].all() or flat[p.highest_at].all():
                q = batch.boxes[j]
                out[j] = self.paint_one(int(batch.backgrounds[j]), [(int(q[0]), int(q[1]), int(q[2]), int(q[3]))],
                                        [batch.masks[j]])
        return out

    def _plain(self, background: int) -> _Plain:
        """What every sample on ``background`` shares, made once per background (a bounded
        cache of ``PLAIN_BUDGET`` bytes: every background of a usual dataset, since each shard
        uses nearly all of them): its values after the stretch's element-wise first step (metric: the seeds'
        ``clip(100 d, 10, 1000) / 1000``; inverse: the values) in float64, their min and max,
        where those extremes are, and the background's own 8-bit map."""
        return self._plains.get_or_make(background, self._make_plain)

    def _make_plain(self, background: int) -> _Plain:
        scaled = self.predictions[background].astype(np.float64)
        if self.output == "metric":
            scaled = np.clip(scaled * 100.0, 10.0, 1000.0) / 1000.0
        lo, hi = float(scaled.min()), float(scaled.max())
        return _Plain(scaled, lo, hi, scaled == lo, scaled == hi, self._levels(scaled, lo, hi),
                      np.flatnonzero(scaled == lo), np.flatnonzero(scaled == hi))

    def _levels(self, scaled: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
        """The stretch's last step, exactly as :func:`~.presets.stretch` writes it (``lo`` and
        ``hi`` per element when arrays: the same float64 operations on each)."""
        span = np.where(hi > lo, np.subtract(hi, lo), 1.0)
        if self.output == "metric":
            out: np.ndarray = np.clip(np.rint((scaled - lo) / span * 255.0), 0, 255).astype(np.uint8)
        else:
            out = np.rint(255.0 * (hi - scaled) / span).astype(np.uint8)
        return out

    def paint_one(self, background: int, boxes: Sequence[tuple[int, int, int, int]],
                  layers: Sequence[np.ndarray]) -> np.ndarray:
        """One sample's stored 8-bit map: ``stretch(paint(...))`` bit for bit (the same float64
        operations on the same elements; min and max are exact).

        People take values of the background itself (at their feet), so the painted map's min
        and max are the background's unless people cover every pixel holding one of them. In
        that common case the map is the background's cached 8-bit map with the people's pixels
        set to their feet's level: one copy, not a float pass over the map."""
        plain = self._plain(background)
        h, w = plain.scaled.shape
        labels = person_labels(layers, (w, h))
        if not boxes:
            return plain.levels.copy()
        feet = np.array([plain.scaled[r, c] for r, c in (feet_pixel(b, self.frame, (w, h)) for b in boxes)])
        shown = labels >= 0
        if not (shown[plain.lowest].all() or shown[plain.highest].all()):
            out = plain.levels.copy()
            out[shown] = self._levels(feet, plain.lo, plain.hi)[labels[shown]]
            return out
        painted = np.where(shown, feet[np.maximum(labels, 0)], plain.scaled)
        return self._levels(painted, float(painted.min()), float(painted.max()))


@dataclass(frozen=True)
class _Plain:
    """One background's share of every layered map painted on it (see LayeredDepth._plain)."""

    scaled: np.ndarray  # (h, w) float64 after the stretch's element-wise first step
    lo: float
    hi: float
    lowest: np.ndarray  # (h, w) bool: where the minimum is
    highest: np.ndarray  # where the maximum is
    levels: np.ndarray  # (h, w) uint8: the background alone, stretched
    lowest_at: np.ndarray  # flat indices of the minimum's pixels
    highest_at: np.ndarray  # and of the maximum's
