"""Opening a dataset from its manifest and reading samples back as NumPy arrays.

Every sample is a dict: ``key`` (str), ``image`` (H, W, 3 uint8 RGB), ``mask`` (H, W
uint8), ``depth`` (h, w uint8; absent for depth ``none``) and ``meta`` (the annotation,
``meta["index"]`` = key as int). ``iter(ds)`` reads shards sequentially in key order;
``ds[i]`` seeks straight to sample ``i`` using the offsets recorded in the shard's receipt.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .decode import FIELD_OF_SUFFIX, MAX_PIXELS, DecodeError, decode_member
from .tarwalk import walk_tar

__all__ = ["Dataset", "DatasetError", "open_dataset"]

MANIFEST = "manifest.json"
_READ_BUFFER = 1 << 20


class DatasetError(ValueError):
    """The dataset or one of its shards is missing or malformed; the message names it."""


def _split(name: str) -> tuple[str, str]:
    key, _, suffix = name.partition(".")
    return key, suffix


class Dataset:
    """A finished fgbg dataset (local folder)."""

    def __init__(self, root: str | Path, manifest: dict[str, Any], fields: Sequence[str] | None = None,
                 max_pixels: int = MAX_PIXELS):
        self.root = Path(root)
        self.manifest = manifest
        available = tuple(manifest["fields"])
        self.fields = tuple(fields) if fields is not None else available
        unknown = [f for f in self.fields if f not in available]
        if unknown:
            raise DatasetError(
                f"{self.root}: no field(s) {', '.join(unknown)}; this dataset has {', '.join(available)}")
        self.max_pixels = max_pixels
        self.shards = manifest["shards"]
        self._offsets: dict[int, list[int]] = {}

    @property
    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.manifest["statistics"]
        return stats

    def __len__(self) -> int:
        return int(self.manifest["totals"]["samples"])

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, samples={len(self)}, shards={len(self.shards)})"

    # -- sequential ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        for shard in self.shards:
            yield from self.iter_shard(shard)

    def iter_shard(self, shard: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Samples of one shard in key order."""
        path = self.root / shard["name"]
        try:
            f = open(path, "rb", buffering=_READ_BUFFER)
        except FileNotFoundError:
            raise DatasetError(f"{path}: shard listed in the manifest is missing") from None
        with f:
            yield from self._group(walk_tar(f, str(path)), str(path))

    def _group(self, members: Iterator[tuple[str, bytes]], source: str) -> Iterator[dict[str, Any]]:
        current: str | None = None
        raw: dict[str, bytes] = {}
        for name, data in members:
            key, suffix = _split(name)
            if key != current:
                if current is not None:
                    yield self._decode(current, raw, source)
                current, raw = key, {}
            field = FIELD_OF_SUFFIX.get(suffix)
            if field is None:
                warnings.warn(f"{source}: ignored member {name!r} (unknown type)", stacklevel=2)
            elif field in self.fields:
                raw[field] = data
        if current is not None:
            yield self._decode(current, raw, source)

    def _decode(self, key: str, raw: dict[str, bytes], source: str) -> dict[str, Any]:
        sample: dict[str, Any] = {"key": key}
        for field in self.fields:
            if field not in raw:
                raise DatasetError(f"{source}: sample {key} has no {field} member")
            try:
                sample[field] = decode_member(field, raw[field], self.max_pixels)
            except DecodeError as e:
                raise DatasetError(f"{source}: sample {key} {field}: {e}") from None
        return sample

    # -- random access ------------------------------------------------------------------
    def _shard_of(self, index: int) -> tuple[int, dict[str, Any]]:
        size = int(self.manifest["config"]["shard_size"])
        s = index // size
        return s, self.shards[s]

    def _offsets_of(self, s: int, shard: dict[str, Any]) -> list[int]:
        if s not in self._offsets:
            receipt = self.root / (shard["name"].rsplit(".", 1)[0] + ".json")
            try:
                self._offsets[s] = json.loads(receipt.read_bytes())["offsets"]
            except (OSError, ValueError, KeyError) as e:
                raise DatasetError(f"{receipt}: cannot read the shard's offset index ({e})") from None
        return self._offsets[s]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample {index} out of range (dataset has {n})")
        s, shard = self._shard_of(index)
        offset = self._offsets_of(s, shard)[index - shard["first"]]
        path = self.root / shard["name"]
        key = f"{index:0{self.manifest['key_width']}d}"
        with open(path, "rb") as f:
            f.seek(offset)
            members = []
            for name, data in walk_tar(f, str(path)):
                if _split(name)[0] != key:
                    break
                members.append((name, data))
        samples = list(self._group(iter(members), str(path)))
        if len(samples) != 1:
            raise DatasetError(f"{path}: no sample {key} at byte {offset}")
        return samples[0]


def open_dataset(url: str | Path, fields: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS) -> Dataset:
    """Open the dataset at ``url`` (a folder holding ``manifest.json``)."""
    root = Path(url)
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no manifest; not a finished fgbg dataset") from None
    except ValueError as e:
        raise DatasetError(f"{path}: manifest is not valid JSON ({e})") from None
    return Dataset(root, manifest, fields, max_pixels)
