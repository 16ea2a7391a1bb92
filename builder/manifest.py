"""The build record, the annotations index and the manifest (docs/FORMAT.md §3-§6).

* ``build.json`` -- written when a build starts (under the lock): config, inputs, depth
  source and their fingerprint. A rerun with other settings is refused against it; workers
  read it to rebuild any shard.
* ``annotations.csv`` -- one row per sample, generated from the plan (a pure function).
* ``manifest.json`` -- written LAST, from the receipts: the dataset's commit point.

All three are canonical JSON/CSV with no timestamps, so equal builds are byte-identical.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from typing import Any

from fgbg.readers.errors import MetadataError
from fgbg.readers.schema import parse_build_record

from .config import FORMAT_VERSION, BuildConfig
from .encode import encoder_versions
from .errors import FgbgError
from .plan import Plan
from .receipts import Receipt
from .shards import FORMATS
from .stats import PixelSums
from .storage import Store

__all__ = [
    "ANNOTATIONS",
    "ANNOTATION_COLUMNS",
    "BUILD_RECORD",
    "MANIFEST",
    "TOOL_VERSION",
    "annotation_line", "annotations_csv",
    "dumps",
    "make_manifest",
    "make_record",
    "read_json",
    "read_record",
]

BUILD_RECORD = "build.json"
MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.csv"
ANNOTATION_COLUMNS = ("key", "shard", "bg", "fg", "flip", "placement", "x", "y", "w", "h", "scale")
TOOL_VERSION = "0.1.0"


def dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, fixed indentation, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def read_json(store: Store, rel: str) -> Any:
    return json.loads(store.read_bytes(rel))


def read_record(store: Store, rel: str = BUILD_RECORD) -> dict[str, Any]:
    """``build.json`` parsed and checked in one place: types and ranges (the readers' schema),
    its own fingerprint, and the settings through :class:`BuildConfig`. A damaged record is
    one :class:`FgbgError` naming it, never a KeyError deep in a worker."""
    where = f"{store.url}/{rel}"
    try:
        data = store.read_metadata(rel)
        parse_build_record(data, where)
    except MetadataError as e:
        raise FgbgError(f"{e}; fgbg repair restores it from the manifest's copy") from None
    record: dict[str, Any] = json.loads(data)
    if record["fingerprint"] != fingerprint(record):
        raise FgbgError(f"{where}: its fingerprint does not match its content (edited or damaged); "
                        "fgbg repair restores it from the manifest's copy")
    if record["config"].get("kind") != "imported":
        try:
            BuildConfig.from_json(record["config"])
        except (TypeError, ValueError, FgbgError) as e:
            raise FgbgError(f"{where}: config is not a valid build configuration ({e})") from None
    return record


def make_record(
    cfg: BuildConfig, inputs: dict[str, list[dict[str, Any]]], depth: dict[str, Any], formats: list[str],
    hdf5_layout: str, n_samples: int,
) -> dict[str, Any]:
    """The build record; its fingerprint covers everything that determines the bytes."""
    body = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_json(),
        "depth": depth,
        "formats": list(formats),
        "hdf5_layout": hdf5_layout,
        "inputs": inputs,
        "key_width": max(8, len(str(max(0, n_samples - 1)))),
        "tool": {"fgbg": TOOL_VERSION, **encoder_versions()},
    }
    body["fingerprint"] = fingerprint(body)
    return body


def fingerprint(record: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a build record without its fingerprint field."""
    return hashlib.sha256(dumps({k: v for k, v in record.items() if k != "fingerprint"})).hexdigest()


# What make_manifest adds to the build record: the rest of a manifest is the record itself.
_MANIFEST_ONLY = ("fields", "shards", "totals", "statistics", "annotations")


def record_from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The build record a manifest was made from (every key, including those append or
    import add), with its fingerprint."""
    return {k: v for k, v in manifest.items() if k not in _MANIFEST_ONLY}


def _format_of(shard_rel: str) -> str:
    ext = "." + shard_rel.rsplit(".", 1)[1]
    return next(fmt for fmt, extension in FORMATS.items() if extension == ext)


def annotation_line(key_width: int, pos: int, shard: int, bg: int, fg: int, flip: int, placement: int,
                    x: int, y: int, w: int, h: int, scale: float) -> str:
    """One row of ``annotations.csv`` (columns as ``ANNOTATION_COLUMNS``)."""
    return f"{pos:0{key_width}d},{shard},{bg},{fg},{flip},{placement},{x},{y},{w},{h},{scale!r}\n"


def annotations_csv(plan: Plan, key_width: int, chunk: int = 65536) -> bytes:
    """The annotations index: one CSV row per sample in key order."""
    buf = io.StringIO()
    buf.write(",".join(ANNOTATION_COLUMNS) + "\n")
    for first in range(0, plan.n_samples, chunk):
        p = plan.params(first, min(chunk, plan.n_samples - first))
        cols = zip(p.position.tolist(), plan.shard_of(p.position).tolist(), p.bg.tolist(), p.fg.tolist(),
                   p.flip.tolist(), p.placement.tolist(), p.x.tolist(), p.y.tolist(), p.w.tolist(), p.h.tolist(),
                   p.scale.tolist(), strict=True)
        buf.writelines(annotation_line(key_width, *row) for row in cols)
    return buf.getvalue().encode("ascii")


def make_manifest(
    record: dict[str, Any], receipts: Iterable[Receipt], annotations: bytes, extra_stats: dict[str, PixelSums]
) -> dict[str, Any]:
    """Assemble the manifest from the build record and all shard receipts.

    ``shards`` maps each format to its shard list in key order; statistics are merged once
    per shard (every format of a shard holds the same samples).
    """
    by_format: dict[str, list[Receipt]] = {fmt: [] for fmt in record["formats"]}
    for r in sorted(receipts, key=lambda r: r.shard):
        by_format[_format_of(r.name)].append(r)
    primary = by_format[record["formats"][0]]
    merged: dict[str, PixelSums] = {}
    for r in primary:
        for name, sums in r.stats.items():
            merged.setdefault(name, PixelSums(int(sums["channels"]))).merge(PixelSums.from_json(sums))
    fields = {"image": {"member": "jpg", "shape": [record["config"]["size"]] * 2 + [3]},
              "mask": {"member": "mask.png", "shape": [record["config"]["size"]] * 2}}
    if record["config"]["depth"] != "none":
        dw, dh = record["config"]["depth_size"]
        fields["depth"] = {"member": "depth.png", "shape": [dh, dw]}
    fields["meta"] = {"member": "json"}
    return {
        **record,
        "fields": fields,
        "shards": {fmt: [{"name": r.name, "first": r.first, "count": r.count, "bytes": r.bytes, "sha256": r.sha256}
                         for r in rs] for fmt, rs in by_format.items()},
        "totals": {"samples": sum(r.count for r in primary), "shards": len(primary),
                   "bytes": {fmt: sum(r.bytes for r in rs) for fmt, rs in by_format.items()}},
        "statistics": {name: {**s.mean_std(), "pixels": s.count}
                       for name, s in {**merged, **extra_stats}.items()},
        "annotations": {"file": ANNOTATIONS, "sha256": hashlib.sha256(annotations).hexdigest(),
                        "columns": list(ANNOTATION_COLUMNS)},
    }
