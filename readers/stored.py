"""The dataset's stored inputs as reader fields: what ``background`` and ``foreground`` share.

``inputs/bg/NNNN.png`` and ``inputs/fg/NNNN.png`` are files of the dataset like any shard, so
they are untrusted like one: each is checked against the sha256 the manifest records before
its first use in a process. A training loop wants them decoded once per process, not once per
sample, in every DataLoader worker, on object storage too; so each process keeps what it made
of them in a least-recently-used cache bounded in bytes (a dataset may have 10,000 inputs).
The sample's annotation names which ones.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Literal

import numpy as np

from .errors import DatasetError
from .fs import Location
from .schema import InputEntry, Manifest

__all__ = ["CACHE_BYTES", "StoredInputs", "annotation", "input_index"]

CACHE_BYTES = 256 << 20  # what one kind of input keeps per process (decoded or encoded)


def annotation(meta: Any, key: str, where: str) -> dict[str, Any]:
    """The annotation of sample ``key`` (``meta`` decoded, or its JSON bytes), once it is
    proven to be that sample's."""
    if isinstance(meta, (bytes, memoryview)):
        try:
            meta = json.loads(bytes(meta))
        except ValueError:
            raise DatasetError(f"{where}: annotation is not JSON") from None
    if not isinstance(meta, dict) or meta.get("index") != int(key):
        raise DatasetError(f"{where}: its annotation is not this sample's (index {meta.get('index')!r})"
                           if isinstance(meta, dict) else f"{where}: annotation is not a JSON object")
    return meta


def input_index(part: Any, what: str, where: str) -> int:
    """``part["index"]``: the input an annotation's ``bg`` or ``fg`` object names; ``what``
    says which, for errors (``"background (meta.bg.index)"``)."""
    index = part.get("index") if isinstance(part, dict) else None
    if type(index) is not int:
        raise DatasetError(f"{where}: annotation names no {what}")
    return index


def _size(value: Any) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


class StoredInputs:
    """One kind of the dataset's stored inputs (``kind`` ``"bg"`` or ``"fg"``), read on first
    use, proven against the manifest's sha256 and kept, in whatever form a field makes of
    them, in one LRU cache bounded at ``budget`` bytes; safe to pickle (the cache stays behind:
    each process reads, and proves, its own)."""

    kind: Literal["bg", "fg"] = "bg"
    noun = "background"  # names the input in errors and the field

    def __init__(self, location: Location, manifest: Manifest, max_pixels: int, budget: int = CACHE_BYTES):
        self.location = location
        self.entries: list[InputEntry] = list(manifest.inputs.get(self.kind) or [])
        if not self.entries or any(e.file is None or e.file_sha256 is None for e in self.entries):
            raise DatasetError(f"{location.url}: no stored {self.noun}s with recorded hashes (an imported dataset "
                               f"keeps none): the {self.noun} field is not available")
        self.max_pixels = max_pixels
        self.budget = budget
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._held = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"], state["_held"] = OrderedDict(), 0
        return state

    def cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value under ``key``, made on a miss; the least recently used values go once the
        cache holds more than its budget (never the newest). Callers must not write to it."""
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
            return value
        value = make()
        self._cache[key] = value
        self._held += _size(value)
        while self._held > self.budget and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._held -= _size(old)
        return value

    def check_index(self, index: int, where: str) -> None:
        if not 0 <= index < len(self.entries):
            raise DatasetError(f"{where}: annotation names {self.noun} {index}; the dataset has {len(self.entries)}")

    def path(self, index: int) -> str:
        """Where stored input ``index`` is (for errors)."""
        rel = self.entries[index].file
        assert rel is not None
        return self.location.path(rel)

    def read(self, index: int) -> bytes:
        """The bytes of stored input ``index``, proven against the manifest's sha256."""
        entry = self.entries[index]
        assert entry.file is not None
        path = self.location.path(entry.file)
        try:
            data = self.location.read_bytes(entry.file)
        except FileNotFoundError:
            raise DatasetError(f"{path}: stored {self.noun} missing") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot be read ({e})") from None
        if hashlib.sha256(data).hexdigest() != entry.file_sha256:
            raise DatasetError(f"{path}: sha256 differs from the manifest's (changed since the build; "
                               "fgbg verify names it)")
        return data

    def value(self, meta: dict[str, Any], decode: bool, reduce: int, where: str) -> Any:
        """The field's value for the sample whose annotation is ``meta`` (``where`` names it)."""
        raise NotImplementedError
