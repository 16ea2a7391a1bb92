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

from dataclasses import dataclass
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
from ..receipts import Receipt, read_receipt, receipt_name
from ..record import BuildRecord
from ..storage import ObjectStore, open_store

__all__ = ["CheckContext", "Problem", "Rows", "ShardCheck", "ShardChecker", "ShardResult", "plan_of"]

# What reading a damaged file can raise below the readers' own checks: a finding, named.
_READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError)


@dataclass(frozen=True)
class Problem:
    where: str  # a file relative to the dataset, e.g. "shards/000002.tar"
    what: str
    sample: str | None = None


ShardResult = tuple[list[Problem], int, "Receipt | None"]  # problems, samples seen, the receipt as read


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

    def check(self, meta: dict[str, Any], key: str) -> str | None:
        i = int(key) - self.base
        if not 0 <= i < self.rows:
            return f"no row in the annotations {self.source}"
        pairs = {"bg": meta["bg"]["index"], "fg": meta["fg"]["index"], "flip": meta["flip"],
                 "placement": meta["placement"], "x": meta["x"], "y": meta["y"], "w": meta["w"], "h": meta["h"]}
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
            self.foregrounds = Foregrounds(load_inputs(self.store, record.inputs), cfg.mask_threshold,
                                           cfg.soft_mask, cfg.size)

    def check(self, task: ShardCheck) -> ShardResult:
        """Every problem of one shard, the samples seen and its receipt (when it parses); never
        raises for what a file holds."""
        try:
            return self._check(task)
        except FgbgError:
            raise
        except Exception as e:  # a file that lies in a way no check foresaw: a finding, not a crash
            return [Problem(task.name, f"cannot be checked ({type(e).__name__}: {e})")], 0, None

    def _check(self, task: ShardCheck) -> ShardResult:
        store, name, entry = self.store, task.name, task.listed
        if not store.exists(name):
            return [Problem(name, "missing")], 0, None
        out: list[Problem] = []
        size, digest = store.size(name), store.sha256(name)
        if entry is not None and size != entry.bytes:
            out.append(Problem(name, f"size {size} differs from the manifest's {entry.bytes} (truncated or replaced)"))
        elif entry is not None and digest != entry.sha256:
            out.append(Problem(name, "sha256 differs from the manifest (bytes changed)"))
        # held to the file's real size unless the file is what changed (then the receipt may be right)
        receipt, why = read_receipt(store, name, size if entry is None or size == entry.bytes else None)
        if receipt is None:
            out.append(Problem(receipt_name(name), why))
        else:
            out += self._receipt_problems(task, receipt, digest)
        bytes_ok = not any(p.where == name for p in out)
        if task.fmt in ("tar", "tarzst") and bytes_ok:
            offsets = receipt.offsets if receipt is not None and task.fmt == "tar" else None
            out += self._layout_problems(task, size, digest, offsets)
        problems, seen = self._sample_problems(task, size, digest, receipt)
        return out + problems, seen, receipt

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

    def _reader(self, task: ShardCheck, size: int, digest: str) -> ShardReader:
        """A reader of the shard as the plan places it (not as the manifest lists it)."""
        entry = ShardEntry(task.name, task.first, task.count, size, digest)
        return reader_class(task.fmt)(self.location, entry, self.ctx.key_width, self.ctx.members)

    def _layout_problems(self, task: ShardCheck, size: int, digest: str, offsets: list[int] | None) -> list[Problem]:
        """What readers rely on beyond the bytes' hash, header by header (data skipped): the
        planned keys in order, each sample exactly the planned members in build order, no extra
        and no duplicate, each sample at its receipt's offset (``.tar``), nothing after the
        last. A shard rewritten together with its receipt and manifest entry hashes fine and
        can still lie; a ``.tar.zst`` is walked through its decompressed stream."""
        from fgbg.readers.formats.tar import TarShardReader
        from fgbg.readers.tarwalk import TarFormatError

        reader = self._reader(task, size, digest)
        assert isinstance(reader, TarShardReader)
        try:
            with reader.stream() as f:
                return tar_layout_problems(f, task, list(self.ctx.members.values()), self.ctx.key_width, offsets)
        except (TarFormatError, DatasetError) as e:
            return [Problem(task.name, f"not a well-formed tar ({e})")]

    def _sample_problems(self, task: ShardCheck, size: int, digest: str,
                         receipt: Receipt | None) -> tuple[list[Problem], int]:
        name, out = task.name, []
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
        reader = self._reader(task, size, digest)
        seen, last = 0, None
        try:
            for key, members in reader.iter_members(tuple(self.ctx.members)):  # keys checked against positions
                last, seen = key, seen + 1
                proven = members_digest(members, self.ctx.members) if digests else None  # raw HDF5: Fletcher-32
                if proven is not None and proven != digests[seen - 1]:
                    out.append(Problem(name, "bytes differ from the receipt's digest", key))  # names the sample
                    try:  # and what the damage does, when it still decodes
                        sample = _decoded(reader, key, members)
                    except DatasetError:
                        continue
                else:
                    sample = _decoded(reader, key, members)
                meta = sample["meta"]
                if not isinstance(meta, dict) or meta.get("index") != int(key):
                    out.append(Problem(name, "annotation index differs from its key", key))
                    continue
                for table in (planned, rows):
                    problem = table.check(meta, key) if table is not None else None
                    if problem:
                        out.append(Problem(name, problem, key))
                if self.foregrounds is not None:
                    out += [Problem(name, p, key) for p in self._mask_problems(meta, sample)]
        except (DatasetError, *_READ_ERRORS) as e:
            why = e if isinstance(e, DatasetError) else f"{type(e).__name__}: {e}"
            out.append(Problem(name, f"unreadable after sample {last or 'none'} ({why})"))
        else:
            if seen != task.count:
                out.append(Problem(name, f"holds {seen} samples, the plan says {task.count}"))
        finally:
            reader.close()
        return out, seen

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
        if "instances" in sample and not np.array_equal(paint_ids(boxes, masks, want.shape[0]), sample["instances"]):
            out.append("instance map differs from the one its annotation implies")
        return out


def _decoded(reader: ShardReader, key: str, members: dict[str, Any]) -> dict[str, Any]:
    """Every member of a sample decoded (raw HDF5 pixels are already arrays)."""
    sample = {}
    for field, value in members.items():
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

