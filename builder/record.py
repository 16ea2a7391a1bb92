"""The build record (``build.json``) as one typed, frozen value: what determines every byte.

Every stage reads the record through this type -- ``record.config.size``,
``record.inputs.fg[3].name`` -- never through raw JSON look-ups, so a malformed file fails in
one place (:meth:`BuildRecord.parse`) with one message naming it. The fingerprint is not
stored but computed from the content, so a record cannot disagree with its own fingerprint:
an append makes a new record with :func:`dataclasses.replace` and gets a new fingerprint.

Serialisation is canonical JSON (:func:`dumps`), and the parsed form serialises back to the
same bytes: a record read from a dataset and written again is unchanged, which is what lets
a resumed build prove it continues the same dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from fgbg.readers.errors import MetadataError
from fgbg.readers.schema import (
    BuildRecordSchema,
    DepthSource,
    InputEntry,
    Manifest,
    index_file,
    parse_build_record,
)

from .config import FORMAT_VERSION, BuildConfig
from .errors import FgbgError

__all__ = ["BuildRecord", "Config", "ImportedConfig", "Inputs", "Segment", "dumps", "fingerprint_of"]

#: ((first bg, end bg), (first fg, end fg)) of one build or append segment
Segment = tuple[tuple[int, int], tuple[int, int]]


def dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, fixed indentation, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def fingerprint_of(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a record's body (everything but its fingerprint)."""
    return hashlib.sha256(dumps({k: v for k, v in body.items() if k != "fingerprint"})).hexdigest()


class ImportedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The settings an imported (seed-layout) dataset was found with: there is no plan to
    rebuild it from, only what its samples are."""

    kind: Literal["imported"]
    size: int
    placements: int
    flips: int
    shard_size: int
    quality: int
    mask_threshold: int
    soft_mask: bool
    depth: Literal["imported", "none"]
    depth_size: tuple[int, int] | None
    source: str
    samples: int

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = msgspec.to_builtins(self)
        d["depth_size"] = list(self.depth_size) if self.depth_size else None  # JSON's form: a list
        return d


Config = BuildConfig | ImportedConfig


@dataclass(frozen=True)
class Inputs:
    """The dataset's stored inputs, by index (``inputs/bg/0007.png`` is ``bg[7]``)."""

    bg: tuple[InputEntry, ...]
    fg: tuple[InputEntry, ...]

    def of(self, kind: str) -> tuple[InputEntry, ...]:
        return self.bg if kind == "bg" else self.fg

    def __add__(self, other: Inputs) -> Inputs:
        return Inputs(self.bg + other.bg, self.fg + other.fg)

    def to_json(self) -> dict[str, list[Any]]:
        return {"bg": msgspec.to_builtins(list(self.bg)), "fg": msgspec.to_builtins(list(self.fg))}


@dataclass(frozen=True)
class BuildRecord:
    """``build.json`` (docs/FORMAT.md §3), typed; ``fingerprint`` is derived from the content."""

    config: Config
    inputs: Inputs
    depth: DepthSource
    formats: tuple[str, ...]
    hdf5_layout: str
    key_width: int
    tool: dict[str, str]
    segments: tuple[Segment, ...] | None = None  # set by append: one per build/append
    lineage: tuple[str, ...] | None = None  # set by append: the fingerprints it grew from
    left_out: tuple[str, ...] | None = None  # set by import: source files it did not take
    format_version: int = FORMAT_VERSION
    index: str | None = None  # "parquet": annotations.parquet (format 3); None: annotations.csv

    @property
    def index_file(self) -> str:
        """The annotations index's file name."""
        return index_file(self.index)

    @property
    def imported(self) -> bool:
        return isinstance(self.config, ImportedConfig)

    @property
    def build_config(self) -> BuildConfig:
        """The config of a dataset with a plan (every command that makes pixels needs one)."""
        if not isinstance(self.config, BuildConfig):
            raise FgbgError("an imported dataset has no plan to rebuild shards from; run fgbg import again to redo it")
        return self.config

    @property
    def has_depth(self) -> bool:
        return self.config.depth != "none"

    @property
    def depth_shape(self) -> tuple[int, int] | None:
        """(w, h) of the stored depth maps, or None without depth."""
        if not self.has_depth:
            return None
        c = self.config
        return c.depth_shape if isinstance(c, BuildConfig) else c.depth_size

    @property
    def accepted(self) -> set[str]:
        """Fingerprints whose shards belong to this dataset (its own and those it grew from)."""
        return {self.fingerprint, *(self.lineage or ())}

    def body(self) -> dict[str, Any]:
        """The JSON object without the fingerprint (optional keys only when set)."""
        d: dict[str, Any] = {
            "format_version": self.format_version,
            "config": self.config.to_json(),
            "depth": msgspec.to_builtins(self.depth),
            "formats": list(self.formats),
            "hdf5_layout": self.hdf5_layout,
            "inputs": self.inputs.to_json(),
            "key_width": self.key_width,
            "tool": dict(self.tool),
        }
        if self.segments is not None:
            d["segments"] = [[list(b), list(f)] for b, f in self.segments]
        if self.lineage is not None:
            d["lineage"] = list(self.lineage)
        if self.left_out is not None:
            d["left_out"] = list(self.left_out)
        if self.index is not None:
            d["index"] = self.index
        return d

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical body: it covers everything that determines the bytes."""
        return fingerprint_of(self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "fingerprint": self.fingerprint}

    def to_bytes(self) -> bytes:
        return dumps(self.to_json())

    def with_changes(self, **changes: Any) -> BuildRecord:
        """A new record (with its own fingerprint): the cached one must not be carried over."""
        return dataclasses.replace(self, **changes)

    # -- parsing --------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes, where: str) -> BuildRecord:
        """``build.json`` bytes -> a record: types and ranges (the readers' schema), the
        settings through :class:`BuildConfig`, and the stored fingerprint recomputed."""
        return cls.from_schema(parse_build_record(data, where), where)

    @classmethod
    def from_schema(cls, s: BuildRecordSchema | Manifest, where: str, check_fingerprint: bool = True) -> BuildRecord:
        """A record from its checked schema (``build.json``) or from the manifest made from it.
        ``check_fingerprint=False`` only to *show* what a file says (the card, ``info``): its
        integrity is verify's finding, not a reason to show nothing."""
        config = _config(s.config, where)
        segments = None if s.segments is None else tuple(((b[0], b[1]), (f[0], f[1])) for b, f in s.segments)
        record = cls(config=config, inputs=Inputs(tuple(s.inputs.get("bg", ())), tuple(s.inputs.get("fg", ()))),
                     depth=s.depth, formats=tuple(s.formats), hdf5_layout=s.hdf5_layout, key_width=s.key_width,
                     tool=dict(s.tool), segments=segments,
                     lineage=None if s.lineage is None else tuple(s.lineage),
                     left_out=None if s.left_out is None else tuple(s.left_out),
                     format_version=s.format_version, index=s.index)
        if s.depth.backend != config.depth:
            raise MetadataError(f"{where}: config.depth is {config.depth!r} but the depth source is "
                                f"{s.depth.backend!r}")
        if check_fingerprint and record.fingerprint != s.fingerprint:
            raise MetadataError(f"{where}: its fingerprint does not match its content (edited or damaged)")
        return record


_SETTINGS = frozenset(f.name for f in dataclasses.fields(BuildConfig))


def _config(raw: dict[str, Any], where: str) -> Config:
    unknown = sorted(set(raw) - _SETTINGS)
    if raw.get("kind") != "imported" and unknown:  # a dataclass would drop them silently
        raise MetadataError(f"{where}: config has unknown settings {', '.join(map(repr, unknown[:5]))}")
    try:
        if raw.get("kind") == "imported":
            return msgspec.convert(raw, ImportedConfig)
        return msgspec.convert(raw, BuildConfig)  # types checked, then BuildConfig's own rules
    except (FgbgError, msgspec.ValidationError) as e:
        raise MetadataError(f"{where}: config is not a valid build configuration ({e})") from None
