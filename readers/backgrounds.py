"""The ``background`` reader field: the stored background each composite was made from.

Why a reader field and not a join users write: ``inputs/bg/NNNN.png`` is a file of the dataset
like any shard, so it is untrusted like one -- each is checked against the sha256 the manifest
records before its first use -- and a training loop wants it decoded once per process, not
once per sample, in every DataLoader worker, on object storage too. So each process keeps the
backgrounds it has used in a least-recently-used cache bounded in bytes (a dataset may have
10,000 of them); the sample's annotation names which one (``meta.bg.index``).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

import numpy as np

from .decode import DecodeError, decode_member
from .errors import DatasetError
from .fs import Location
from .schema import InputEntry, Manifest

__all__ = ["BACKGROUND", "Backgrounds", "background_index"]

BACKGROUND = "background"
CACHE_BYTES = 256 << 20  # decoded (or encoded) backgrounds kept per process


def background_index(meta: Any, key: str, where: str) -> int:
    """The background the annotation of sample ``key`` names (``meta`` decoded, or its JSON
    bytes), once the annotation is proven to be that sample's."""
    if isinstance(meta, (bytes, memoryview)):
        try:
            meta = json.loads(bytes(meta))
        except ValueError:
            raise DatasetError(f"{where}: annotation is not JSON") from None
    if not isinstance(meta, dict) or meta.get("index") != int(key):
        raise DatasetError(f"{where}: its annotation is not this sample's (index {meta.get('index')!r})"
                           if isinstance(meta, dict) else f"{where}: annotation is not a JSON object")
    bg = meta.get("bg")
    index = bg.get("index") if isinstance(bg, dict) else None
    if type(index) is not int:
        raise DatasetError(f"{where}: annotation names no background (meta.bg.index)")
    return index


class Backgrounds:
    """The dataset's stored backgrounds, read on first use, proven against the manifest's
    sha256, decoded once and cached (bounded); safe to pickle (the cache stays behind)."""

    def __init__(self, location: Location, manifest: Manifest, max_pixels: int, budget: int = CACHE_BYTES):
        self.location = location
        self.entries: list[InputEntry] = list(manifest.inputs.get("bg") or [])
        if not self.entries or any(e.file is None or e.file_sha256 is None for e in self.entries):
            raise DatasetError(f"{location.url}: no stored backgrounds with recorded hashes (an imported dataset "
                               "keeps none): the background field is not available")
        self.max_pixels = max_pixels
        self.budget = budget
        self._cache: OrderedDict[tuple[int, bool, int], Any] = OrderedDict()
        self._held = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"], state["_held"] = OrderedDict(), 0  # each process reads (and proves) its own
        return state

    def get(self, index: int, decode: bool, reduce: int, where: str) -> Any:
        """Background ``index``: (H, W, 3) uint8 RGB at 1/``reduce`` of its size, or its PNG
        bytes (``decode`` False); ``where`` names the sample asking, for errors."""
        if not 0 <= index < len(self.entries):
            raise DatasetError(f"{where}: annotation names background {index}; the dataset has {len(self.entries)}")
        key = (index, decode, reduce)
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
            return value.copy() if isinstance(value, np.ndarray) else value  # each sample its own array
        value = self._load(index, decode, reduce)
        size = value.nbytes if isinstance(value, np.ndarray) else len(value)
        self._cache[key] = value
        self._held += size
        while self._held > self.budget and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._held -= old.nbytes if isinstance(old, np.ndarray) else len(old)
        return value.copy() if isinstance(value, np.ndarray) else value

    def _load(self, index: int, decode: bool, reduce: int) -> Any:
        entry = self.entries[index]
        assert entry.file is not None
        path = self.location.path(entry.file)
        try:
            data = self.location.read_bytes(entry.file)
        except FileNotFoundError:
            raise DatasetError(f"{path}: stored background missing") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot be read ({e})") from None
        if hashlib.sha256(data).hexdigest() != entry.file_sha256:
            raise DatasetError(f"{path}: sha256 differs from the manifest's (changed since the build; "
                               "fgbg verify names it)")
        if not decode:
            return data
        try:
            image: np.ndarray = decode_member("image", data, self.max_pixels, reduce)
        except DecodeError as e:
            raise DatasetError(f"{path}: {e}") from None
        return image
