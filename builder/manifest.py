"""The build record, the annotations index and the manifest (docs/FORMAT.md §3-§6).

* ``build.json`` -- written when a build starts (under the lock): config, inputs, depth
  source and their fingerprint. A rerun with other settings is refused against it; workers
  read it to rebuild any shard.
* ``annotations.csv`` -- one row per sample, generated from the plan (a pure function).
* ``manifest.json`` -- written LAST, from the receipts: the dataset's commit point.

All three are canonical JSON/CSV with no timestamps, so equal builds are byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import numpy as np

from fgbg.readers.errors import MetadataError
from fgbg.readers.index import ANNOTATIONS, COLUMNS, AnnotationIndex
from fgbg.readers.schema import MEMBERS, ZSTD_MEMBERS, DepthSource, Manifest, format_of, parse_manifest

from .config import BuildConfig
from .encode import encoder_versions
from .errors import FgbgError
from .plan import Plan
from .receipts import Receipt
from .record import BuildRecord, Inputs, dumps
from .stats import PixelSums
from .storage import Store

__all__ = [
    "ANNOTATIONS",
    "ANNOTATION_COLUMNS",
    "BUILD_RECORD",
    "MANIFEST",
    "TOOL_VERSION",
    "annotation_chunks",
    "annotation_line",
    "annotations_csv",
    "dumps",
    "index_chunks",
    "index_columns",
    "index_csv",
    "make_manifest",
    "make_record",
    "manifest_bytes",
    "manifest_fields",
    "member_names",
    "read_manifest",
    "read_record",
    "record_from_manifest",
]

BUILD_RECORD = "build.json"
MANIFEST = "manifest.json"
ANNOTATION_COLUMNS = COLUMNS  # the index's columns, as readers.index checks them
TOOL_VERSION = "0.1.0"


def read_manifest(store: Store) -> Manifest:
    """``manifest.json`` read (size-bounded) and checked through the readers' schema."""
    if not store.exists(MANIFEST):
        raise FgbgError(f"{store.url}: no {MANIFEST}; not a finished fgbg dataset")
    try:
        return parse_manifest(store.read_metadata(MANIFEST), f"{store.url}/{MANIFEST}")
    except MetadataError as e:
        raise FgbgError(str(e)) from None


def read_record(store: Store, rel: str = BUILD_RECORD) -> BuildRecord:
    """``build.json`` parsed and checked in one place (see :class:`BuildRecord`). A damaged
    record is one :class:`FgbgError` naming it, never a KeyError deep in a worker."""
    where = f"{store.url}/{rel}"
    try:
        return BuildRecord.parse(store.read_metadata(rel), where)
    except MetadataError as e:
        raise FgbgError(f"{e}; fgbg repair restores it from the manifest's copy") from None


def record_from_manifest(manifest: Manifest, where: str, check_fingerprint: bool = True) -> BuildRecord:
    """The build record a manifest was made from (every key, including those append or
    import add), its fingerprint checked unless told otherwise (see BuildRecord.from_schema)."""
    return BuildRecord.from_schema(manifest, where, check_fingerprint)


def make_record(
    cfg: BuildConfig, inputs: Inputs, depth: DepthSource, formats: list[str], hdf5_layout: str, n_samples: int,
    index: str | None = None,
) -> BuildRecord:
    """The build record of a new dataset; its fingerprint covers everything that determines the
    bytes. ``index="parquet"``: the index as ``annotations.parquet`` (format 3; the pyarrow
    version that writes it is recorded, as OpenCV's is for the shards)."""
    if index not in (None, "csv", "parquet"):
        raise FgbgError(f"--index must be csv or parquet, got {index!r}")
    tool = {"fgbg": TOOL_VERSION, **encoder_versions()}
    version = cfg.format_version(parquet=index == "parquet")
    if "tarzst" in formats:
        from .shards.tarzst import zstd_version

        tool["zstd"] = zstd_version()
    if index == "parquet":
        from .index_parquet import pyarrow_version

        tool["pyarrow"] = pyarrow_version()
    return BuildRecord(config=cfg, inputs=inputs, depth=depth, formats=tuple(formats), hdf5_layout=hdf5_layout,
                       key_width=max(8, len(str(max(0, n_samples - 1)))), tool=tool, format_version=version,
                       index="parquet" if index == "parquet" else None)


def member_names(config: object) -> dict[str, str]:
    """Field -> member suffix for a dataset's config: PNG grey fields, or ``.npy.zst`` ones
    with ``--members zstd``."""
    zstd = getattr(config, "members", None) == "zstd"
    return {**MEMBERS, **(ZSTD_MEMBERS if zstd else {})}


def index_chunks(plan: Plan, record: BuildRecord) -> Iterator[bytes]:
    """The annotations index of ``record``'s dataset as written, in chunks (CSV or Parquet)."""
    if record.index == "parquet":
        from .index_parquet import parquet_chunks

        return parquet_chunks(plan, record.key_width)
    return annotation_chunks(plan, record.key_width)


def annotation_line(key_width: int, pos: int, shard: int, bg: int, fg: int, flip: int, placement: int,
                    x: int, y: int, w: int, h: int, scale: float) -> str:
    """One row of ``annotations.csv`` (columns as ``ANNOTATION_COLUMNS``)."""
    return f"{pos:0{key_width}d},{shard},{bg},{fg},{flip},{placement},{x},{y},{w},{h},{scale!r}\n"


def index_columns(plan: Plan, first: int, count: int) -> dict[str, np.ndarray]:
    """The index's columns for positions ``first .. first+count-1``, from the plan (what both
    the CSV and the Parquet index hold)."""
    p = plan.params(first, count)
    return {"key": p.position, "shard": plan.shard_of(p.position), "bg": p.bg, "fg": p.fg, "flip": p.flip,
            "placement": p.placement, "x": p.x, "y": p.y, "w": p.w, "h": p.h, "scale": p.scale}


def _csv_rows(columns: dict[str, np.ndarray], key_width: int) -> bytes:
    rows = zip(*(columns[name].tolist() for name in ANNOTATION_COLUMNS), strict=True)
    return "".join(annotation_line(key_width, *row) for row in rows).encode("ascii")


def annotation_chunks(plan: Plan, key_width: int, chunk: int = 65536) -> Iterator[bytes]:
    """The annotations index, one CSV row per sample in key order, ``chunk`` rows at a time:
    written as it is made, so building it costs one chunk of memory whatever the dataset's size."""
    yield (",".join(ANNOTATION_COLUMNS) + "\n").encode("ascii")
    for first in range(0, plan.n_samples, chunk):
        yield _csv_rows(index_columns(plan, first, min(chunk, plan.n_samples - first)), key_width)


def index_csv(index: AnnotationIndex, key_width: int, chunk: int = 65536) -> Iterator[bytes]:
    """An index read back (from Parquet) as the CSV :func:`annotation_chunks` writes."""
    yield (",".join(ANNOTATION_COLUMNS) + "\n").encode("ascii")
    for lo in range(0, len(index), chunk):
        yield _csv_rows({name: v[lo:lo + chunk] for name, v in index.columns.items()}, key_width)


def annotations_csv(plan: Plan, key_width: int, chunk: int = 65536) -> bytes:
    """The whole annotations index as bytes (small datasets, tests; builds stream it)."""
    return b"".join(annotation_chunks(plan, key_width, chunk))


def manifest_bytes(manifest: Manifest) -> bytes:
    """``manifest.json`` as written: canonical JSON, optional keys only when set."""
    return dumps({k: v for k, v in msgspec.to_builtins(manifest).items() if v is not None})


def manifest_fields(record: BuildRecord) -> dict[str, Any]:
    """The manifest's ``fields``: each field every sample holds (in build order), its member
    suffix and shape, as the build record's settings make them."""
    size = record.config.size
    names = member_names(record.config)
    fields: dict[str, Any] = {"image": {"member": "jpg", "shape": [size, size, 3]},
                              "mask": {"member": names["mask"], "shape": [size, size]}}
    if record.depth_shape is not None:
        dw, dh = record.depth_shape
        fields["depth"] = {"member": names["depth"], "shape": [dh, dw]}
    if getattr(record.config, "people", None) is not None:
        fields["instances"] = {"member": names["instances"], "shape": [size, size]}
    fields["meta"] = {"member": "json"}
    return fields


def make_manifest(
    record: BuildRecord, receipts: Iterable[Receipt], index_sha256: str, extra_stats: dict[str, PixelSums]
) -> Manifest:
    """Assemble the manifest from the build record and all shard receipts.

    ``shards`` maps each format to its shard list in key order; statistics are merged once
    per shard (every format of a shard holds the same samples).
    """
    by_format: dict[str, list[Receipt]] = {fmt: [] for fmt in record.formats}
    for r in sorted(receipts, key=lambda r: r.shard):
        by_format[format_of(r.name)].append(r)
    primary = by_format[record.formats[0]]
    merged: dict[str, PixelSums] = {}
    for r in primary:
        for name, sums in r.stats.items():
            merged.setdefault(name, PixelSums(sums.channels)).merge(PixelSums.from_record(sums))
    return msgspec.convert({
        **record.to_json(),
        "fields": manifest_fields(record),
        "shards": {fmt: [{"name": r.name, "first": r.first, "count": r.count, "bytes": r.bytes, "sha256": r.sha256}
                         for r in rs] for fmt, rs in by_format.items()},
        "totals": {"samples": sum(r.count for r in primary), "shards": len(primary),
                   "bytes": {fmt: sum(r.bytes for r in rs) for fmt, rs in by_format.items()}},
        "statistics": {name: {**s.mean_std(), "pixels": s.count}
                       for name, s in {**merged, **extra_stats}.items()},
        "annotations": {"file": record.index_file, "sha256": index_sha256,
                        "columns": list(ANNOTATION_COLUMNS)},
    }, Manifest)
