"""The ``foreground`` reader field: the person (or people) of each composite, as pasted.

Each person is the stored foreground (``inputs/fg/NNNN.png``, straight RGBA) placed as the
annotation says and as the builder placed it, with the builder's own functions
(:mod:`readers.pixels`): resized through premultiplied alpha to the person's size (``w``,
``h``; with ``rotate`` the annotation's ``size``), mirrored when ``flip`` is 1, turned by
``angle`` with ``rotate``, and put at its box (``x``, ``y``) on a transparent layer the size of
the composite. So the layer lines up with ``image``, ``mask`` and ``instances`` pixel for
pixel, every sample's value has the same shape (it batches), and with the default straight
alpha blending the composite *is* the layers blended over ``background`` in paint order
(before JPEG), byte for byte.

- One person per composite: (H, W, 4) uint8, RGBA; (0, 0, 0, 0) outside the person.
- ``--people MIN-MAX``: (MAX, H, W, 4): layer ``i`` is the person of ``meta.people[i]``
  (paint order, farther first: instance ``i + 1``), the layers past the sample's people fully
  transparent.
- ``decode=False``: the stored foreground's PNG bytes (with ``--people`` a list, one per
  person of ``meta.people``): nothing placed.

The stored foregrounds are proven against the manifest's sha256 before their first use in
each process; decoded foregrounds and placed people are kept in one bounded cache (each
combination of foreground, flip and size recurs in every placement).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .decode import DecodeError, decode_rgba
from .errors import DatasetError
from .fs import Location
from .pixels import resize_rgba, rotate_rgba, rotated_box
from .schema import Manifest
from .stored import CACHE_BYTES, StoredInputs, input_index

__all__ = ["FOREGROUND", "Foregrounds", "Placed", "reduce_layers"]

FOREGROUND = "foreground"
_NAMED = "foreground (fg.index)"


class Placed(NamedTuple):
    """One person as an annotation places it."""

    fg: int  # the stored foreground
    flip: int  # 1: mirrored
    box: tuple[int, int, int, int]  # x, y, w, h in the composite (of the turned person with rotate)
    size: tuple[int, int]  # the person's own w, h before turning (the box's w, h when upright)
    angle: int  # degrees counter-clockwise (0 without rotate)

    @property
    def slices(self) -> tuple[slice, slice]:
        x, y, w, h = self.box
        return slice(y, y + h), slice(x, x + w)


def _int(person: dict[str, Any], name: str, where: str, low: int = 0) -> int:
    value = person.get(name)
    if type(value) is not int or value < low:
        raise DatasetError(f"{where}: annotation's {name} is {value!r}, not a whole number >= {low}")
    return value


def reduce_layers(layers: np.ndarray, w: int, h: int) -> np.ndarray:
    """RGBA layers (..., H, W, 4) resized to ``w`` x ``h`` through premultiplied alpha."""
    flat = layers.reshape(-1, *layers.shape[-3:])
    out = np.zeros((len(flat), h, w, 4), np.uint8)
    for i, layer in enumerate(flat):
        if layer[..., 3].any():  # a transparent layer stays transparent
            out[i] = resize_rgba(layer, w, h)
    return out.reshape(*layers.shape[:-3], h, w, 4)


class Foregrounds(StoredInputs):
    """The dataset's stored foregrounds, read on first use, proven against the manifest's
    sha256, decoded once, placed as each annotation says; cached (bounded), safe to pickle."""

    kind = "fg"
    noun = FOREGROUND

    def __init__(self, location: Location, manifest: Manifest, max_pixels: int, budget: int = CACHE_BYTES):
        super().__init__(location, manifest, max_pixels, budget)
        image = manifest.fields.get("image")
        if image is None or image.shape is None or len(image.shape) != 3:
            raise DatasetError(f"{location.url}: the manifest gives no composite size (fields.image.shape): "
                               "the foreground field is not available")
        self.height, self.width = image.shape[0], image.shape[1]
        config = manifest.config
        people = config.get("people")
        self.layers: int | None = None  # --people: the most people a composite holds
        if people is not None:
            if not (isinstance(people, list) and len(people) == 2 and all(type(n) is int for n in people)
                    and 1 <= people[0] <= people[1] <= 255):
                raise DatasetError(f"{location.url}: manifest's config.people is {people!r}, not [MIN, MAX]")
            self.layers = people[1]
        self.rotate = config.get("rotate") is not None

    def shape(self) -> tuple[int, ...]:
        """The shape of a decoded value at full size: (H, W, 4), or (MAX, H, W, 4) with people."""
        frame = (self.height, self.width, 4)
        return frame if self.layers is None else (self.layers, *frame)

    def people(self, meta: dict[str, Any], where: str) -> list[Placed]:
        """Every person of the annotation ``meta``, in its order, checked: a foreground of the
        dataset, a box inside the composite of the size the person's own size turns to."""
        listed = [meta] if self.layers is None else meta.get("people")
        if not isinstance(listed, list) or not 1 <= len(listed) <= (self.layers or 1):
            raise DatasetError(f"{where}: annotation's people is not a list of 1 to {self.layers} people")
        out = []
        for person in listed:
            if not isinstance(person, dict):
                raise DatasetError(f"{where}: annotation's people holds {type(person).__name__}, not a person")
            fg = input_index(person.get("fg"), _NAMED, where)
            self.check_index(fg, where)
            flip = _int(person, "flip", where)
            x, y, w, h = (_int(person, k, where, low) for k, low in (("x", 0), ("y", 0), ("w", 1), ("h", 1)))
            if x + w > self.width or y + h > self.height:
                raise DatasetError(f"{where}: annotation's box {w}x{h} at ({x}, {y}) is not inside the "
                                   f"{self.width}x{self.height} composite")
            pw, ph, angle = w, h, 0
            if self.rotate:
                turn, size = person.get("angle"), person.get("size")
                if (type(turn) is not int or not isinstance(size, list) or len(size) != 2
                        or any(type(n) is not int or n < 1 for n in size)
                        or rotated_box(size[0], size[1], turn) != (w, h)):
                    raise DatasetError(f"{where}: annotation's angle {turn!r} and size {size!r} do not make "
                                       f"its {w}x{h} box")
                pw, ph, angle = size[0], size[1], turn
            if flip > 1:
                raise DatasetError(f"{where}: annotation's flip is {flip}, not 0 or 1")
            out.append(Placed(fg, flip, (x, y, w, h), (pw, ph), angle))
        return out

    def value(self, meta: dict[str, Any], decode: bool, reduce: int, where: str) -> Any:
        people = self.people(meta, where)
        if not decode:
            files = [self._png(p.fg) for p in people]
            return files if self.layers is not None else files[0]
        layers = np.zeros(self.shape(), np.uint8)
        frames = layers.reshape(-1, self.height, self.width, 4)
        for frame, p in zip(frames, people, strict=False):
            frame[p.slices] = self.placed(p)
        if reduce != 1:
            layers = reduce_layers(layers, -(-self.width // reduce), -(-self.height // reduce))
        return layers

    def _png(self, index: int) -> bytes:
        data: bytes = self.cached(("png", index), lambda: self.read(index))
        return data

    def placed(self, p: Placed) -> np.ndarray:
        """Person ``p`` as pasted: (h, w, 4) straight RGBA (cached: do not write to it)."""
        placed: np.ndarray = self.cached(("placed", p.fg, p.flip, p.size, p.angle), lambda: self._place(p))
        return placed

    def _place(self, p: Placed) -> np.ndarray:
        rgba = resize_rgba(self.cached(("stored", p.fg), lambda: self._decode(p.fg)), *p.size)
        if p.flip:
            rgba = rgba[:, ::-1]
        rgba = rotate_rgba(np.ascontiguousarray(rgba), p.angle) if p.angle else np.ascontiguousarray(rgba)
        return rgba

    def _decode(self, index: int) -> np.ndarray:
        try:
            return decode_rgba(self.read(index), self.max_pixels)
        except DecodeError as e:
            raise DatasetError(f"{self.path(index)}: {e}") from None
