"""``fgbg verify``: prove a dataset is intact, or name exactly what is not.

Checks, for every format the manifest lists: each shard's presence, size and sha256
against the manifest *and* its receipt; that every sample decodes, with the right key, in
the right count; that each annotation equals its row in the annotations index (whose own
sha256 is in the manifest); that the manifest agrees with the build record and the
receipts (a hand-edited manifest is caught); no stale temporary or unknown file in
``shards/``. With ``deep``, every mask is compared with the mask the annotation implies
(the stored foreground's alpha, resized, flipped and placed at x, y). Works on any store.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .manifest import ANNOTATIONS, BUILD_RECORD, MANIFEST
from .receipts import load_receipt
from .storage import TMP_MARK, ObjectStore, Store, open_store

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass(frozen=True)
class Problem:
    where: str  # a file relative to the dataset, e.g. "shards/000002.tar"
    what: str
    sample: str | None = None


@dataclass
class VerifyReport:
    url: str
    problems: list[Problem] = field(default_factory=list)
    shards: int = 0
    samples: int = 0
    deep: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, what: str, sample: str | None = None) -> None:
        self.problems.append(Problem(where, what, sample))

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "shards_checked": self.shards, "samples_checked": self.samples,
                "deep": self.deep, "problems": [asdict(p) for p in self.problems]}

    def text(self) -> str:
        lines = [f"{p.where}{f' sample {p.sample}' if p.sample else ''}: {p.what}" for p in self.problems]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"fgbg verify {self.url}: {self.shards} shards, {self.samples} samples checked"
                     f"{' (deep)' if self.deep else ''}: {verdict}")
        return "\n".join(lines)


def _index_rows(store: Store, manifest: dict[str, Any], report: VerifyReport) -> dict[str, dict[str, str]]:
    try:
        data = store.read_bytes(ANNOTATIONS)
    except FileNotFoundError:
        report.add(ANNOTATIONS, "missing")
        return {}
    if hashlib.sha256(data).hexdigest() != manifest.get("annotations", {}).get("sha256"):
        report.add(ANNOTATIONS, "sha256 differs from the manifest")
    return {row["key"]: row for row in csv.DictReader(io.StringIO(data.decode("ascii", "replace")))}


def _check_meta(meta: dict[str, Any], row: dict[str, str] | None) -> str | None:
    if row is None:
        return "no row in the annotations index"
    pairs = {"bg": meta["bg"]["index"], "fg": meta["fg"]["index"], "flip": meta["flip"],
             "placement": meta["placement"], "x": meta["x"], "y": meta["y"], "w": meta["w"], "h": meta["h"]}
    wrong = [k for k, v in pairs.items() if str(v) != row.get(k)]
    if float(row.get("scale", "nan")) != float(meta["scale"]):
        wrong.append("scale")
    return f"annotation differs from the index in {', '.join(wrong)}" if wrong else None


def _record_problems(store: Store, manifest: dict[str, Any], report: VerifyReport) -> None:
    try:
        record = json.loads(store.read_bytes(BUILD_RECORD))
    except (FileNotFoundError, ValueError):
        report.add(BUILD_RECORD, "missing or unreadable (repair needs it)")
        return
    for key, value in record.items():
        if manifest.get(key) != value:
            report.add(MANIFEST, f"field {key!r} differs from {BUILD_RECORD} (edited by hand?)")


def verify(url: str, deep: bool = False, storage_options: dict[str, Any] | None = None) -> VerifyReport:
    """Check the dataset at ``url``; the report lists every problem found."""
    from readers import open_dataset
    from readers.formats import ShardReadError

    from .inputs import load_inputs
    from .shard import Foregrounds

    store = open_store(url, storage_options)
    report = VerifyReport(store.url, deep=deep)
    try:
        manifest = json.loads(store.read_bytes(MANIFEST))
    except FileNotFoundError:
        report.add(MANIFEST, "missing: the build never finished (rerun it, or fgbg repair)")
        return report
    except ValueError as e:
        report.add(MANIFEST, f"not valid JSON ({e})")
        return report
    _record_problems(store, manifest, report)
    rows = _index_rows(store, manifest, report)
    listed: set[str] = set()
    foregrounds = None
    if deep and manifest["config"].get("kind") != "imported":  # imported masks are the data themselves
        record = json.loads(store.read_bytes(BUILD_RECORD))
        foregrounds = Foregrounds(load_inputs(store, record["inputs"]), record["config"]["mask_threshold"],
                                  record["config"]["soft_mask"])
    options = store.storage_options if isinstance(store, ObjectStore) else None
    for fmt, shards in manifest["shards"].items():
        ds = open_dataset(url, format=fmt, storage_options=options)
        width = int(manifest["key_width"])
        for s, entry in enumerate(shards):
            name = entry["name"]
            listed.update({name, name + ".json"})
            report.shards += 1
            if not store.exists(name):
                report.add(name, "missing")
                continue
            size, digest = store.size(name), store.sha256(name)
            if size != entry["bytes"]:
                report.add(name, f"size {size} differs from the manifest's {entry['bytes']} (truncated or replaced)")
            elif digest != entry["sha256"]:
                report.add(name, "sha256 differs from the manifest (bytes changed)")
            receipt = load_receipt(store, name)
            if receipt is None:
                report.add(name + ".json", "receipt missing or unreadable")
            elif (receipt.bytes, receipt.sha256, receipt.count) != (entry["bytes"], entry["sha256"], entry["count"]):
                report.add(name + ".json", "receipt disagrees with the manifest")
            expected = [f"{entry['first'] + i:0{width}d}" for i in range(entry["count"])]
            seen = []
            try:
                for sample in ds.iter_shard(s):
                    key = sample["key"]
                    seen.append(key)
                    meta = sample["meta"]
                    if meta.get("index") != int(key):
                        report.add(name, f"annotation index {meta.get('index')} differs from its key", key)
                    problem = _check_meta(meta, rows.get(key)) if rows else None
                    if problem:
                        report.add(name, problem, key)
                    if foregrounds is not None:
                        fg = foregrounds.get(meta["fg"]["index"], meta["flip"], meta["w"], meta["h"])
                        want = np.zeros_like(sample["mask"])
                        want[meta["y"]: meta["y"] + meta["h"], meta["x"]: meta["x"] + meta["w"]] = fg.mask
                        if not np.array_equal(want, sample["mask"]):
                            report.add(name, "mask differs from the one its annotation implies", key)
            except (ShardReadError, ValueError, KeyError) as e:
                report.add(name, f"unreadable after sample {seen[-1] if seen else 'none'} ({e})")
            report.samples += len(seen)
            if seen and seen != expected[: len(seen)]:
                report.add(name, "keys out of order or not the shard's range")
            if len(seen) != entry["count"] and not any(p.where == name and "unreadable" in p.what
                                                        for p in report.problems):
                report.add(name, f"holds {len(seen)} samples, the manifest says {entry['count']}")
    total = sum(e["count"] for e in next(iter(manifest["shards"].values()), []))
    if total != manifest["totals"]["samples"]:
        report.add(MANIFEST, f"totals say {manifest['totals']['samples']} samples, shards hold {total}")
    for entry_name in store.listdir("shards"):
        rel = f"shards/{entry_name}"
        if TMP_MARK in entry_name:
            report.add(rel, "stale temporary file (left by a dead builder; removed by the next build or repair)")
        elif rel not in listed:
            report.add(rel, "not listed in the manifest")
    return report
