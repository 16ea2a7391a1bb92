"""The ``background`` reader field: the stored background each composite was made from.

Why a reader field and not a join users write: see :mod:`readers.stored` -- the file is
proven against the manifest's sha256 before its first use in each process, decoded once and
kept in a cache bounded in bytes (a dataset may have 10,000 backgrounds); the sample's
annotation names which one (``meta.bg.index``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .decode import DecodeError, decode_member
from .errors import DatasetError
from .stored import StoredInputs, annotation, input_index

__all__ = ["BACKGROUND", "Backgrounds", "background_index"]

BACKGROUND = "background"
_NAMED = "background (meta.bg.index)"


def background_index(meta: Any, key: str, where: str) -> int:
    """The background the annotation of sample ``key`` names (``meta`` decoded, or its JSON
    bytes), once the annotation is proven to be that sample's."""
    return input_index(annotation(meta, key, where).get("bg"), _NAMED, where)


class Backgrounds(StoredInputs):
    """The dataset's stored backgrounds, read on first use, proven against the manifest's
    sha256, decoded once and cached (bounded); safe to pickle (the cache stays behind)."""

    kind = "bg"
    noun = BACKGROUND

    def value(self, meta: dict[str, Any], decode: bool, reduce: int, where: str) -> Any:
        return self.get(input_index(meta.get("bg"), _NAMED, where), decode, reduce, where)

    def get(self, index: int, decode: bool, reduce: int, where: str) -> Any:
        """Background ``index``: (H, W, 3) uint8 RGB at 1/``reduce`` of its size, or its PNG
        bytes (``decode`` False); ``where`` names the sample asking, for errors."""
        self.check_index(index, where)
        value = self.cached((index, decode, reduce), lambda: self._load(index, decode, reduce))
        return value.copy() if isinstance(value, np.ndarray) else value  # each sample its own array

    def _load(self, index: int, decode: bool, reduce: int) -> Any:
        data = self.read(index)
        if not decode:
            return data
        try:
            image: np.ndarray = decode_member("image", data, self.max_pixels, reduce)
        except DecodeError as e:
            raise DatasetError(f"{self.path(index)}: {e}") from None
        return image
