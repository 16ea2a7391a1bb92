"""One shard proven for ``fgbg verify``: its bytes, its receipt and every sample, against what
the build record's plan says the shard must be.

Why the plan and not the manifest: the manifest and the receipts are claims written beside the
shard, and a shard damaged together with consistent lies in both (sizes, hashes, totals, even
per-sample digests rewritten to match) hashes fine. The plan -- a pure function of the build
record, whose own fingerprint is checked -- says which samples the shard holds, under which
keys, with which members and which annotations. So a shard is checked against the plan's
range and members whatever the manifest says, its receipt against the plan and the manifest
both, each sample against its receipt's digest, and each annotation against the plan's row
(and the index's). Without a plan (imported datasets, a damaged record) the manifest's ranges
stand in, then the receipts'.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import mmap
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from fgbg.readers.decode import DecodeError, decode_member
from fgbg.readers.errors import DatasetError, MetadataError
from fgbg.readers.formats import ShardReader, reader_class
from fgbg.readers.fs import Location
from fgbg.readers.index import PARQUET, IndexRows
from fgbg.readers.schema import Manifest, ShardEntry, members_digest

from ..config import BuildConfig
from ..errors import FgbgError
from ..inputs import fg_boxes, load_inputs
from ..manifest import index_columns
from ..people import PlacedBox, paint_ids
from ..plan import Plan, plan_for
from ..receipts import Receipt, read_receipt, receipt_name, write_receipt
from ..record import BuildRecord
from ..storage import LocalStore, ObjectStore, open_store

__all__ = ["CheckContext", "Problem", "Proofs", "Rows", "ShardCheck", "ShardChecker", "ShardResult", "plan_of"]

# What reading a damaged file can raise below the readers' own checks: a finding, named.
_READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError)


@dataclass(frozen=True)
class Problem:
    where: str  # a file relative to the dataset, e.g. "shards/000002.tar"
    what: str
    sample: str | None = None


@dataclass
class Proofs:
    """Which proofs ran on how many samples (the report says so)."""

    digest: int = 0  # bytes equal to the digest the receipt recorded at build time
    decoded: int = 0  # every member decoded (no digest to prove it by, or ``decode`` asked for)
    repainted: int = 0  # ``deep``: masks painted again from the annotation and the stored inputs

    def add(self, other: Proofs) -> None:
        self.digest += other.digest
        self.decoded += other.decoded
        self.repainted += other.repainted


#: problems, samples seen, the receipt as read, the proofs that ran
ShardResult = tuple[list[Problem], int, "Receipt | None", Proofs]


class Rows:
    """Annotation rows of consecutive samples as typed columns (the index's, or the plan's),
    looked up by key; ``source`` names them in findings."""

    def __init__(self, columns: dict[str, np.ndarray], base: int, source: str = "index",
                 names: tuple[list[str], list[str]] | None = None):
        self.columns = columns
        self.rows = len(columns["key"])
        self.base = base  # the key of row 0
        self.source = source
        self.names = names  # the plan's: (background names, foreground names) as the record lists them

    def differing(self, annotated: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Positions in ``annotated`` whose annotation may differ from its row: exactly those
        the per-sample :meth:`check` must look at (all of them when any value is not a plain
        int, or the batch does not even have the fields: the check says what is wrong)."""
        try:
            metas = [m for _, m in annotated]
            ints = [(m["bg"]["index"], m["fg"]["index"], *(m[k] for k in _INT_KEYS)) for m in metas]
            if set(map(type, itertools.chain.from_iterable(ints))) != {int}:  # a bool, float or text among them
                return list(range(len(annotated)))
            values = np.array(ints, np.int64)
            scale = np.array([m["scale"] for m in metas], np.float64)
            i = np.array([int(k) for k, _ in annotated], np.int64) - self.base
        except (KeyError, TypeError, ValueError, OverflowError):
            return list(range(len(annotated)))
        inside = (i >= 0) & (i < self.rows)
        j = np.where(inside, i, 0)
        want = np.stack([self.columns[c][j] for c in ("bg", "fg", *_INT_KEYS)], axis=1)
        bad = ~inside | (values != want).any(axis=1) | (scale != self.columns["scale"][j].astype(np.float64))
        if self.names is not None:
            bg_names, fg_names = self.names
            bad |= np.array([m["bg"].get("name") != bg_names[b] or m["fg"].get("name") != fg_names[f]
                             for m, (b, f, *_) in zip(metas, want.tolist(), strict=True)])
        return [int(x) for x in np.flatnonzero(bad)]

    def check(self, meta: dict[str, Any], key: str) -> str | None:
        i = int(key) - self.base
        if not 0 <= i < self.rows:
            return f"no row in the annotations {self.source}"
        pairs = {"bg": meta["bg"]["index"], "fg": meta["fg"]["index"], **{k: meta[k] for k in _INT_KEYS}}
        wrong = [k for k, v in pairs.items() if type(v) is not int or int(self.columns[k][i]) != v]
        if float(self.columns["scale"][i]) != float(meta["scale"]):
            wrong.append("scale")
        if self.names is not None and not wrong:
            bg, fg = self.names
            wrong += [f"{kind} name" for kind, names in (("bg", bg), ("fg", fg))
                      if meta[kind].get("name") != names[meta[kind]["index"]]]
        return f"annotation differs from the {self.source} in {', '.join(wrong)}" if wrong else None


@dataclass(frozen=True)
class ShardCheck:
    """One shard to check: where the plan (or, without one, the manifest or its receipt) puts
    it, and what the manifest lists for it (None: not listed, or the manifest is unreadable)."""

    fmt: str
    shard: int
    name: str
    first: int
    count: int
    listed: ShardEntry | None
    index: Rows | None = None  # its rows of a CSV index (a Parquet one is read by the checker)


@dataclass(frozen=True)
class CheckContext:
    """What every shard check needs, read once by verify (and sent to each worker process)."""

    url: str
    storage_options: dict[str, Any] | None
    deep: bool
    key_width: int
    members: dict[str, str]  # field -> member suffix every sample holds (the plan's, else the manifest's)
    decode: bool  # decode every sample, even those whose digest proves their bytes
    record: BuildRecord | None  # intact: its plan, fingerprints and inputs are used
    manifest: Manifest | None = None  # the parsed manifest, when its Parquet index is to be read
    parquet_index: bool = False


def plan_of(record: BuildRecord | None) -> Plan | None:
    """The plan of a built (not imported) dataset's intact record; None otherwise."""
    if record is None or not isinstance(record.config, BuildConfig):
        return None
    try:
        return plan_for(record.config, record, fg_boxes(record.inputs), len(record.inputs.bg))
    except (FgbgError, ValueError):
        return None


class ShardChecker:
    """Checks whole shards; built once per process (verify runs shards in a process pool)."""

    def __init__(self, ctx: CheckContext):
        from ..shard import Foregrounds

        self.ctx = ctx
        self.store = open_store(ctx.url, ctx.storage_options)
        options = self.store.storage_options if isinstance(self.store, ObjectStore) else None
        self.location = Location(ctx.url, options)
        record = ctx.record
        self.plan = plan_of(record)
        self.fingerprints = {record.fingerprint, *(record.lineage or ())} if record is not None else None
        self.names = None
        if self.plan is not None and record is not None:
            self.names = ([e.name for e in record.inputs.bg], [e.name for e in record.inputs.fg])
        self.index_rows = IndexRows(self.location, ctx.manifest) if ctx.parquet_index and ctx.manifest else None
        self.foregrounds = None
        if ctx.deep and record is not None and isinstance(record.config, BuildConfig):  # imported masks are data
            cfg = record.config
            self.foregrounds = Foregrounds(load_inputs(self.store, record.inputs, fresh=True), cfg.mask_threshold,
                                           cfg.soft_mask, cfg.size)
        self.layers = None  # deep + --depth-layers: every depth map painted again from the stored predictions
        if self.foregrounds is not None and record is not None and record.build_config.depth_layers:
            from ..shard import layered_depth

            self.layers = layered_depth(self.store, record)

    def check(self, task: ShardCheck) -> ShardResult:
        """Every problem of one shard, the samples seen and its receipt (when it parses); never
        raises for what a file holds."""
        try:
            return self._check(task)
        except FgbgError:
            raise
        except Exception as e:  # a file that lies in a way no check foresaw: a finding, not a crash
            return [Problem(task.name, f"cannot be checked ({type(e).__name__}: {e})")], 0, None, Proofs()

    def _check(self, task: ShardCheck) -> ShardResult:
        store, name, entry = self.store, task.name, task.listed
        if not store.exists(name):
            return [Problem(name, "missing")], 0, None, Proofs()
        with self._bytes(name) as (location, mapped):  # read once: hashed, walked and split from the same bytes
            size = len(mapped) if mapped is not None else 0
            digest = hashlib.sha256(mapped if mapped is not None else b"").hexdigest()
            out: list[Problem] = []
            if entry is not None and size != entry.bytes:
                out.append(Problem(name, f"size {size} differs from the manifest's {entry.bytes} (truncated or "
                                         "replaced)"))
            elif entry is not None and digest != entry.sha256:
                out.append(Problem(name, "sha256 differs from the manifest (bytes changed)"))
            # held to the file's real size unless the file is what changed (then the receipt may be right)
            receipt, why = read_receipt(store, name, size if entry is None or size == entry.bytes else None)
            if receipt is not None and location is not self.location:  # the downloaded copy's reader reads it
                write_receipt(LocalStore(location.url), receipt)
            if receipt is None:
                out.append(Problem(receipt_name(name), why))
            else:
                out += self._receipt_problems(task, receipt, digest)
            reader = self._reader(location, task, size, digest)
            try:
                problems, seen, proofs = self._sample_problems(reader, task, receipt)
                if task.fmt in ("tar", "tarzst") and not any(p.where == name for p in out):
                    offsets = receipt.offsets if receipt is not None and task.fmt == "tar" else None
                    out += self._layout_problems(reader, task, offsets)
            finally:
                reader.close()
        return out + problems, seen, receipt, proofs

    @contextlib.contextmanager
    def _bytes(self, name: str) -> Iterator[tuple[Location, mmap.mmap | None]]:
        """The shard's bytes, mapped (None when empty), and a Location to read it through:
        locally the file in place; on an object store one download into a temporary folder
        (its receipt, once read, is written beside it), so hash, layout walk and samples cost
        one GET, not three passes of ranged reads."""
        if not isinstance(self.store, ObjectStore):
            with self.location.mapped(name) as mm:
                yield self.location, mm
            return
        with tempfile.TemporaryDirectory(prefix="fgbg-verify-") as tmp:
            local = Path(tmp) / name
            local.parent.mkdir(parents=True)
            self.store.download(name, local)
            copy = Location(tmp)
            with copy.mapped(name) as mm:
                yield copy, mm

    def _receipt_problems(self, task: ShardCheck, receipt: Receipt, digest: str) -> list[Problem]:
        rel, entry = receipt_name(task.name), task.listed
        out = []
        if entry is not None and (receipt.bytes, receipt.sha256, receipt.count, receipt.first) != (
                entry.bytes, entry.sha256, entry.count, entry.first):
            out.append(Problem(rel, "receipt disagrees with the manifest"))
        elif entry is None and receipt.sha256 != digest:
            out.append(Problem(task.name, "sha256 differs from its receipt (bytes changed)"))
        if (receipt.first, receipt.count) != (task.first, task.count):
            out.append(Problem(rel, f"receipt lists samples {receipt.first}+{receipt.count}, the plan "
                                    f"{task.first}+{task.count}"))
        if self.fingerprints is not None and receipt.fingerprint not in self.fingerprints:
            out.append(Problem(rel, "receipt belongs to another build (its fingerprint is not the record's)"))
        return out

    def _reader(self, location: Location, task: ShardCheck, size: int, digest: str) -> ShardReader:
        """A reader of the shard as the plan places it (not as the manifest lists it)."""
        entry = ShardEntry(task.name, task.first, task.count, size, digest)
        reader = reader_class(task.fmt)(location, entry, self.ctx.key_width, self.ctx.members)
        reader.views = True  # members as views of the mapped shard: hashed in place, copied only to decode
        return reader

    def _layout_problems(self, reader: ShardReader, task: ShardCheck, offsets: list[int] | None) -> list[Problem]:
        """What readers rely on beyond the bytes' hash, header by header: the planned keys in
        order, each sample exactly the planned members in build order, no extra and no
        duplicate, each sample at its receipt's offset (``.tar``), nothing after the last. A
        shard rewritten together with its receipt and manifest entry hashes fine and can still
        lie. Proven by the reader's fast paths when they took every sample (the common case);
        otherwise walked here, data skipped (a ``.tar.zst`` through its decompressed stream)."""
        from fgbg.readers.formats.tar import TarShardReader
        from fgbg.readers.tarwalk import TarFormatError

        assert isinstance(reader, TarShardReader)
        members = list(self.ctx.members.values())
        if reader.layout_proven(members):  # the samples just read proved it, header by header
            return []
        try:
            with reader.stream() as f:
                return tar_layout_problems(f, task, members, self.ctx.key_width, offsets)
        except (TarFormatError, DatasetError) as e:
            return [Problem(task.name, f"not a well-formed tar ({e})")]

    def _sample_problems(self, reader: ShardReader, task: ShardCheck,
                         receipt: Receipt | None) -> tuple[list[Problem], int, Proofs]:
        """Each sample: its digest, its key, its annotation against the plan's row and the
        index's; decoded only where that proves more -- no digest to prove its bytes by
        (older receipts, raw HDF5 pixels), ``decode`` asked for, or bytes that differ (to say
        what the damage does) -- and with ``deep`` its masks repainted."""
        name, out, proofs = task.name, [], Proofs()
        rows = task.index
        if self.index_rows is not None:  # this shard's rows of the Parquet index (one row group read)
            try:
                rows = Rows(self.index_rows.rows(task.first, task.count).columns, task.first)
            except MetadataError as e:
                out.append(Problem(PARQUET, str(e).split(": ", 1)[-1]))
        planned = None
        if self.plan is not None:
            planned = Rows(index_columns(self.plan, task.first, task.count), task.first, "plan", self.names)
        digests = receipt.digests if receipt is not None and receipt.count == task.count else []
        every = tuple(self.ctx.members)
        light = every if self.ctx.decode else tuple(f for f in every if f == "meta" or (
            self.foregrounds is not None and f in ("mask", "instances")) or (self.layers is not None and f == "depth"))
        seen, last = 0, None
        annotated: list[tuple[str, dict[str, Any]]] = []  # checked against the tables a batch at a time
        try:
            for key, members in reader.iter_members(every):  # keys checked against positions
                last, seen = key, seen + 1
                proven = members_digest(members, self.ctx.members) if digests else None  # raw HDF5: Fletcher-32
                if proven is not None and proven != digests[seen - 1]:
                    out.append(Problem(name, "bytes differ from the receipt's digest", key))  # names the sample
                    try:  # and what the damage does, when it still decodes
                        sample = _decoded(reader, key, members, every)
                    except DatasetError:
                        continue
                else:
                    fields = light if proven is not None else every
                    sample = _decoded(reader, key, members, fields)
                    proofs.digest += proven is not None
                    proofs.decoded += fields == every
                meta = sample["meta"]
                if not isinstance(meta, dict) or meta.get("index") != int(key):
                    out.append(Problem(name, "annotation index differs from its key", key))
                    continue
                annotated.append((key, meta))
                if len(annotated) == _BATCH:
                    out += _annotation_problems(name, annotated, (planned, rows))
                if self.foregrounds is not None:
                    proofs.repainted += 1
                    out += [Problem(name, p, key) for p in self._mask_problems(meta, sample)]
        except (DatasetError, *_READ_ERRORS) as e:
            why = e if isinstance(e, DatasetError) else f"{type(e).__name__}: {e}"
            out.append(Problem(name, f"unreadable after sample {last or 'none'} ({why})"))
        else:
            if seen != task.count:
                out.append(Problem(name, f"holds {seen} samples, the plan says {task.count}"))
        out += _annotation_problems(name, annotated, (planned, rows))
        return out, seen, proofs

    def _mask_problems(self, meta: dict[str, Any], sample: dict[str, Any]) -> list[str]:
        """``deep``: the mask (and with --people the instance map) each annotation implies,
        painted again from the stored inputs, against the stored ones."""
        assert self.foregrounds is not None
        people = meta.get("people", [meta])
        want = np.zeros_like(sample["mask"])
        boxes, masks = [], []
        for p in people:
            (w, h), angle = p.get("size", (p["w"], p["h"])), p.get("angle", 0)  # --rotate: its own size, turned
            boxes.append(PlacedBox(p["x"], p["y"], p["w"], p["h"]))
            masks.append(self.foregrounds.get(p["fg"]["index"], p["flip"], w, h, angle=angle).mask)
            box = slice(p["y"], p["y"] + p["h"]), slice(p["x"], p["x"] + p["w"])
            np.maximum(want[box], masks[-1], out=want[box])
        out = []
        if not np.array_equal(want, sample["mask"]):
            out.append("mask differs from the one its annotation implies")
        ids = paint_ids(boxes, masks, want.shape[0]) if len(people) > 1 or "instances" in sample else None
        if ids is not None and "instances" in sample and not np.array_equal(ids, sample["instances"]):
            out.append("instance map differs from the one its annotation implies")
        if self.layers is not None and "depth" in sample:
            placed = [(b.x, b.y, b.w, b.h) for b in boxes]
            layers = [want] if ids is None else [np.where(ids == k + 1, 255, 0).astype(np.uint8)
                                                  for k in range(len(boxes))]
            if not np.array_equal(self.layers.paint_one(meta["bg"]["index"], placed, layers), sample["depth"]):
                out.append("depth map differs from the one its background's prediction and annotation paint")
        return out


_BATCH = 1024  # annotations checked against the plan's and the index's rows at once
_INT_KEYS = ("flip", "placement", "x", "y", "w", "h")


def _annotation_problems(name: str, annotated: list[tuple[str, dict[str, Any]]],
                         tables: tuple[Rows | None, ...]) -> list[Problem]:
    """Each annotation against each table's row, a batch at once (NumPy; the per-sample check
    only for those that differ, for its message); empties ``annotated``."""
    out = []
    for table in tables:
        if table is None or not annotated:
            continue
        for i in table.differing(annotated):
            key, meta = annotated[i]
            problem = table.check(meta, key)
            if problem:
                out.append(Problem(name, problem, key))
    annotated.clear()
    return out


def _decoded(reader: ShardReader, key: str, members: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The sample's ``fields`` decoded (raw HDF5 pixels are already arrays)."""
    sample = {}
    for field in fields:
        value = members[field]
        if isinstance(value, (bytes, memoryview)):
            try:
                value = decode_member(field, bytes(value))
            except DecodeError as e:
                raise DatasetError(f"{reader.path}: sample {key} {field}: {e}") from None
        sample[field] = value
    return sample


def tar_layout_problems(f: IO[bytes], task: ShardCheck, members: list[str], width: int,
                        offsets: list[int] | None) -> list[Problem]:
    """The member headers of tar stream ``f`` against the plan: samples ``task.first`` ..
    in order, each exactly ``members`` in that order, each at ``offsets`` (when given)."""
    from fgbg.readers.tarwalk import walk_headers

    name = task.name
    sample = member = 0
    for offset, header_name in walk_headers(f, name):
        key = f"{task.first + sample:0{width}d}"
        if sample >= task.count:
            return [Problem(name, f"member {header_name!r} after the last planned sample ({task.count} samples)")]
        if member == 0 and offsets is not None and (sample >= len(offsets) or offsets[sample] != offset):
            return [Problem(name, f"sample {key} does not start at the receipt's offset", key)]
        want = f"{key}.{members[member]}"
        if header_name != want:
            return [Problem(name, f"member {header_name!r} where {want!r} belongs", key)]
        member += 1
        if member == len(members):
            sample, member = sample + 1, 0
    if (sample, member) != (task.count, 0):
        return [Problem(name, f"holds {sample} whole samples, the plan has {task.count}")]
    return []

