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

import collections
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np

from fgbg.readers.errors import DatasetError, MetadataError
from fgbg.readers.fs import Location
from fgbg.readers.index import PARQUET, AnnotationIndex, CsvRows, IndexRows, index_bound
from fgbg.readers.schema import (
    MEMBERS,
    Manifest,
    PixelSumsRecord,
    ShardEntry,
    members_digest,
    parse_manifest,
)

from ..card import CARD, PREVIEW, dataset_card, draw_preview
from ..config import BuildConfig
from ..errors import FgbgError
from ..inputs import input_statistics, load_inputs
from ..manifest import (
    BUILD_RECORD,
    MANIFEST,
    make_manifest,
    manifest_bytes,
    record_from_manifest,
)
from ..people import PlacedBox, paint_ids
from ..processes import init_worker_process, spawn_executor, worker_count
from ..receipts import Receipt, read_receipt, receipt_name
from ..record import BuildRecord
from ..stats import PixelSums
from ..storage import TMP_MARK, ObjectStore, Store, open_store

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
    samples_per_format: dict[str, int] = field(default_factory=dict)  # a tar+hdf5 dataset is checked twice
    deep: bool = False

    @property
    def samples(self) -> int:
        """Samples of the dataset checked: the most any one format's copy yielded (each copy holds them all)."""
        return max(self.samples_per_format.values(), default=0)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, what: str, sample: str | None = None) -> None:
        self.problems.append(Problem(where, what, sample))

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.ok, "shards_checked": self.shards, "samples_checked": self.samples,
                "samples_checked_per_format": self.samples_per_format,
                "deep": self.deep, "problems": [asdict(p) for p in self.problems]}

    def _counts(self) -> str:
        """``72 samples in 8 tar shards`` -- per format, so a two-format dataset is not counted twice."""
        per = self.samples_per_format
        if len(set(per.values())) == 1 and len(per) > 1:
            return f"{self.samples} samples checked in each of {' and '.join(per)} ({self.shards} shards)"
        counts = ", ".join(f"{n} {fmt}" for fmt, n in per.items()) or "0"
        return f"{counts} samples checked ({self.shards} shards)"

    def text(self) -> str:
        lines = [f"{p.where}{f' sample {p.sample}' if p.sample else ''}: {p.what}" for p in self.problems]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"fgbg verify {self.url}: {self._counts()}{' (deep)' if self.deep else ''}: {verdict}")
        return "\n".join(lines)


_ShardResult = tuple[list[Problem], int, "Receipt | None"]  # problems, samples seen, the receipt as read


class _Index:
    """The annotations index as typed NumPy columns (``fgbg.readers.index``: 88 bytes a row,
    parsed in one pass; Python lists of strings took several times that), looked up by key."""

    def __init__(self, index: AnnotationIndex, base: int = 0):
        self.columns = index.columns
        self.rows = len(index)
        self.base = base  # the key of row 0 (a shard's rows of a Parquet index)

    def check(self, meta: dict[str, Any], key: str) -> str | None:
        i = int(key) - self.base
        if not 0 <= i < self.rows:
            return "no row in the annotations index"
        pairs = {"bg": meta["bg"]["index"], "fg": meta["fg"]["index"], "flip": meta["flip"],
                 "placement": meta["placement"], "x": meta["x"], "y": meta["y"], "w": meta["w"], "h": meta["h"]}
        wrong = [k for k, v in pairs.items() if type(v) is not int or int(self.columns[k][i]) != v]
        if float(self.columns["scale"][i]) != float(meta["scale"]):
            wrong.append("scale")
        return f"annotation differs from the index in {', '.join(wrong)}" if wrong else None


def _read_optional(store: Store, rel: str) -> bytes | None:
    try:
        return store.read_bytes(rel)
    except FileNotFoundError:
        return None


def _index_present(store: Store, manifest: Manifest, report: VerifyReport) -> bool:
    """Whether the index the manifest names is there, and no larger than its rows can be."""
    name = manifest.annotations.file
    if not store.exists(name):
        report.add(name, "missing")
        return False
    if store.size(name) > index_bound(manifest):
        report.add(name, f"{store.size(name)} bytes: more than {manifest.totals.samples} rows can take")
        return False
    return True


_INDEX_PROBLEMS = ("annotation differs from the index", "no row in the annotations index")


def _drop_index_findings(problems: list[Problem]) -> list[Problem]:
    """A damaged index proves nothing about the samples (repair rewrites it): what it said goes."""
    return [p for p in problems if not p.what.startswith(_INDEX_PROBLEMS)]


class _CsvFeed:
    """A CSV index streamed to the shard checks in shard order: each check gets its shard's
    rows (one block in memory, never the file); hashed on the way. A lie found while parsing
    stops the feed; the verdict waits for the hash (:meth:`verdict`), as a damaged file is
    reported as damaged, not as malformed."""

    def __init__(self, location: Location, manifest: Manifest):
        self.name = manifest.annotations.file
        self._f = location.open(self.name)
        self._rows: CsvRows | None = None
        self.malformed: str | None = None
        self._last: tuple[int, _Index | None] = (-1, None)
        try:
            self._rows = CsvRows(self._f, self.name)
        except MetadataError as e:
            self.malformed = str(e).removeprefix(f"{self.name}: ")

    def rows(self, s: int, entry: ShardEntry) -> _Index | None:
        if self._last[0] == s:  # the shard's other format
            return self._last[1]
        index = None
        if self._rows is not None and self.malformed is None:
            try:
                index = _Index(self._rows.rows(entry.first, entry.count), entry.first)
            except MetadataError as e:
                self.malformed = str(e).removeprefix(f"{self.name}: ")
        self._last = (s, index)
        return index

    def verdict(self, store: Store, manifest: Manifest) -> tuple[str | None, str | None]:
        """(the index's sha256 when it is sound, what is wrong with it otherwise)."""
        digest = None
        if self._rows is not None and self.malformed is None:
            try:
                digest = self._rows.finish()
            except MetadataError as e:
                self.malformed = str(e).removeprefix(f"{self.name}: ")
        self._f.close()
        if digest is None:  # the parser gave up before the end: the file hashed as a whole
            digest = store.sha256(self.name)
        if digest != manifest.annotations.sha256:
            return None, "sha256 differs from the manifest"
        if self.malformed:
            return None, f"malformed ({self.malformed})"
        return digest, None


def _made_problems(store: Store, data: bytes, manifest: Manifest, record: BuildRecord | None,
                   annotations: str | None, read: list[Receipt | None], report: VerifyReport) -> None:
    """The manifest must be exactly what the build record, the receipts (``read`` by the shard
    checks) and the index make: its shard list, totals and statistics are derived data, so an
    edit to any of them (which no hash covers) is found here. Skipped when a part it needs is
    already reported broken."""
    if record is None or annotations is None or not report.ok:
        return
    receipts = [r for r in read if r is not None]
    if len(receipts) < len(read):
        return
    stats_of_shard: dict[int, dict[str, PixelSumsRecord]] = {}
    for receipt in receipts:
        # every format of a shard holds the same samples: the same exact sums
        if stats_of_shard.setdefault(receipt.shard, receipt.stats) != receipt.stats:
            report.add(receipt_name(receipt.name), "statistic sums differ from the other format's receipt")
    if any(r.digests for r in receipts):  # receipts written since digests exist all have them
        for r in receipts:
            if not r.digests:
                report.add(receipt_name(r.name), "has no per-sample digests while the others do (stripped?)")
    extra: dict[str, PixelSums] = {}
    if isinstance(record.config, BuildConfig):  # an imported dataset has no input statistics
        try:
            extra = input_statistics(load_inputs(store, record.inputs), record.config)
        except FgbgError as e:
            report.add("inputs/", str(e))
            return
    made_manifest = make_manifest(record, receipts, annotations, extra)
    if manifest_bytes(made_manifest) != data:
        made, stored, own = msgspec.to_builtins(made_manifest), msgspec.to_builtins(manifest), record.body()
        fields = sorted(k for k in set(made) | set(stored) if made.get(k) != stored.get(k) and k not in own)
        report.add(MANIFEST, f"differs from what {BUILD_RECORD}, the receipts and the index make"
                             f" ({', '.join(fields) if fields else 'not in canonical form'})")


def _card_problems(store: Store, manifest: Manifest, report: VerifyReport) -> None:
    """The dataset card and its collage must be what the manifest and the shards make: a card
    edited by hand, or left from before an append, would tell users the wrong counts."""
    try:
        expected = dataset_card(manifest, has_preview=True, where=MANIFEST)
    except MetadataError as e:  # the build settings it carries do not check out
        report.add(MANIFEST, str(e).removeprefix(f"{MANIFEST}: "))
        return
    card = _read_optional(store, CARD)
    if card is None:
        report.add(CARD, "dataset card missing (fgbg repair writes it)")
    elif card != expected:
        report.add(CARD, "dataset card differs from the one the manifest makes (fgbg repair rewrites it)")
    picture = _read_optional(store, PREVIEW)
    if picture is None:
        report.add(PREVIEW, "preview collage missing (fgbg repair writes it)")
    elif report.ok and picture != draw_preview(store, manifest):  # drawn from the shards: compared when sound
        report.add(PREVIEW, "preview collage differs from the one the shards make (fgbg repair redraws it)")


def _record_problems(store: Store, manifest: Manifest | None, report: VerifyReport) -> BuildRecord | None:
    """Check the build record (schema, settings, its own fingerprint) and compare it with the
    manifest's copy of it (``manifest`` None: the manifest is unusable, the record alone is
    checked); returns it when it checks out."""
    try:
        data = store.read_metadata(BUILD_RECORD)
    except (FileNotFoundError, MetadataError):
        report.add(BUILD_RECORD, "missing or unreadable (repair needs it)")
        return None
    try:
        record = BuildRecord.parse(data, BUILD_RECORD)
    except MetadataError as e:
        report.add(BUILD_RECORD, str(e).removeprefix(f"{BUILD_RECORD}: "))
        return None
    if manifest is not None:
        stored = msgspec.to_builtins(manifest)
        for key, value in record.to_json().items():
            if stored.get(key) != value:
                report.add(MANIFEST, f"field {key!r} differs from {BUILD_RECORD} (edited by hand?)")
    return record


@dataclass(frozen=True)
class _Context:
    """What every shard check needs, read once by verify() (the index's rows travel with each
    shard's task, or are read by the check itself from a Parquet index)."""

    url: str
    storage_options: dict[str, Any] | None
    deep: bool
    manifest: Manifest
    record: BuildRecord | None
    parquet_index: bool = False  # the shard checks read their rows of annotations.parquet


class _ShardChecker:
    """Checks whole shards; built once per process (verify runs shards in a process pool)."""

    def __init__(self, ctx: _Context):
        from fgbg.readers import Dataset

        from ..shard import Foregrounds

        self.store = open_store(ctx.url, ctx.storage_options)
        self.manifest = ctx.manifest
        self.member_names: dict[str, str] = {f: spec.member for f, spec in ctx.manifest.fields.items()}
        self.index_rows = None
        if ctx.parquet_index:
            options = self.store.storage_options if isinstance(self.store, ObjectStore) else None
            self.index_rows = IndexRows(Location(ctx.url, options), ctx.manifest)
        self.foregrounds = None
        record = ctx.record
        if record is None and ctx.deep:  # build.json is damaged: the manifest's copy, if that one holds
            with contextlib.suppress(MetadataError):
                record = record_from_manifest(ctx.manifest, MANIFEST)
        if ctx.deep and record is not None and isinstance(record.config, BuildConfig):  # imported masks are data
            cfg = record.config
            self.foregrounds = Foregrounds(load_inputs(self.store, record.inputs), cfg.mask_threshold,
                                           cfg.soft_mask, cfg.size)
        options = self.store.storage_options if isinstance(self.store, ObjectStore) else None
        location = Location(ctx.url, options)  # the manifest verify already read and checked
        self.datasets: dict[str, Dataset] = {fmt: Dataset(location, self.manifest, format=fmt)
                                             for fmt in self.manifest.shards}

    def check(self, fmt: str, s: int, index: _Index | None = None) -> _ShardResult:
        """Every problem of shard ``s`` of ``fmt``, the samples seen and its receipt (when it
        parses); ``index``: the shard's rows of a CSV index (a Parquet one is read here); never
        raises for what a file holds."""
        entry = self.manifest.shards[fmt][s]  # type: ignore[index]  # fmt is one of its keys
        try:
            return self._check_shard(fmt, s, entry, index)
        except FgbgError:
            raise
        except Exception as e:  # a file that lies in a way no check foresaw: a finding, not a crash
            return [Problem(entry.name, f"cannot be checked ({type(e).__name__}: {e})")], 0, None

    def _check_shard(self, fmt: str, s: int, entry: ShardEntry, index: _Index | None) -> _ShardResult:
        store = self.store
        name = entry.name
        out: list[Problem] = []
        if not store.exists(name):
            return [Problem(name, "missing")], 0, None
        size, digest = store.size(name), store.sha256(name)
        if size != entry.bytes:
            what = f"size {size} differs from the manifest's {entry.bytes} (truncated or replaced)"
            out.append(Problem(name, what))
        elif digest != entry.sha256:
            out.append(Problem(name, "sha256 differs from the manifest (bytes changed)"))
        receipt, why = read_receipt(store, name, size if size == entry.bytes else None)
        if receipt is None:
            out.append(Problem(receipt_name(name), why))
        elif (receipt.bytes, receipt.sha256, receipt.count, receipt.first) != (
                entry.bytes, entry.sha256, entry.count, entry.first):
            out.append(Problem(receipt_name(name), "receipt disagrees with the manifest"))
        if fmt == "tar" and receipt is not None and not out:
            planned = [self.manifest.fields[f].member for f in MEMBERS if f in self.manifest.fields]  # build order
            out += _tar_layout_problems(self.datasets[fmt].location, name, receipt.offsets, planned,
                                        self.manifest.key_width, entry.first)
        seen = 0
        last: str | None = None
        if self.index_rows is not None:  # this shard's rows of the Parquet index (one row group read)
            try:
                index = _Index(self.index_rows.rows(entry.first, entry.count), entry.first)
            except MetadataError as e:
                out.append(Problem(self.manifest.annotations.file, str(e).split(": ", 1)[-1]))
                index = None
        ds = self.datasets[fmt]
        reader = ds._readers[s]
        digests = receipt.digests if receipt is not None and receipt.count == entry.count else []
        try:
            for key, members in ds.iter_members(s):  # readers check each key against its position
                last, seen = key, seen + 1
                proven = members_digest(members, self.member_names) if digests else None
                if proven is not None and proven != digests[seen - 1]:
                    out.append(Problem(name, "bytes differ from the receipt's digest", key))  # names the sample
                    try:  # and what the damage does, when it still decodes
                        sample = ds._decode(reader, key, members)
                    except DatasetError:
                        continue
                else:
                    sample = ds._decode(reader, key, members)
                meta = sample["meta"]
                if not isinstance(meta, dict) or meta.get("index") != int(key):
                    out.append(Problem(name, "annotation index differs from its key", key))
                    continue
                problem = index.check(meta, key) if index is not None else None
                if problem:
                    out.append(Problem(name, problem, key))
                if self.foregrounds is not None:
                    out += [Problem(name, p, key) for p in self._mask_problems(meta, sample)]
        except DatasetError as e:
            out.append(Problem(name, f"unreadable after sample {last or 'none'} ({e})"))
        else:
            if seen != entry.count:
                out.append(Problem(name, f"holds {seen} samples, the manifest says {entry.count}"))
        return out, seen, receipt

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


def _tar_layout_problems(location: Location, name: str, offsets: list[int], members: list[str], width: int,
                         first: int) -> list[Problem]:
    """What readers rely on beyond the bytes' hash: at each recorded offset starts the header
    of the expected key, and every sample holds exactly the planned members (``members``, in
    order), no extra and no duplicate. A shard rewritten together with its receipt hashes fine
    and can still lie; this walk reads headers only (data blocks are skipped)."""
    from fgbg.readers.tarwalk import TarFormatError, walk_headers

    sample = member = 0
    try:
        with location.open(name) as f:
            for offset, header_name in walk_headers(f, location.path(name)):
                key = f"{first + sample:0{width}d}"
                if member == 0 and (sample >= len(offsets) or offsets[sample] != offset):
                    return [Problem(name, f"sample {key} does not start at the receipt's offset", key)]
                want = f"{key}.{members[member]}"
                if header_name != want:
                    return [Problem(name, f"member {header_name!r} where {want!r} belongs", key)]
                member += 1
                if member == len(members):
                    sample, member = sample + 1, 0
    except TarFormatError as e:
        return [Problem(name, f"not a well-formed tar ({e})")]
    if (sample, member) != (len(offsets), 0):
        return [Problem(name, f"holds {sample} whole samples, the receipt lists {len(offsets)}")]
    return []



_checker: _ShardChecker | None = None  # per worker process: made by its first task
_context: _Context | None = None


def _init(ctx: _Context) -> None:
    """Worker initializer: the process settings only; the checker is made by the first task
    (a failing initializer would make the pool respawn workers forever)."""
    global _checker, _context
    init_worker_process()
    _checker, _context = None, ctx


def _check(task: tuple[str, int, _Index | None]) -> _ShardResult:
    global _checker
    if _checker is None:
        assert _context is not None
        _checker = _ShardChecker(_context)
    return _checker.check(*task)


def _bounded_map(pool: Any, fn: Callable[[Any], _ShardResult], items: Iterator[Any],
                 window: int) -> Iterator[_ShardResult]:
    """``pool.map`` with at most ``window`` tasks submitted ahead, results in order: the tasks
    carry index rows, made as they are submitted, never all at once."""
    pending: collections.deque[Future[_ShardResult]] = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def verify(url: str, deep: bool = False, storage_options: dict[str, Any] | None = None,
           workers: int | None = None) -> VerifyReport:
    """Check the dataset at ``url`` (shards in ``workers`` processes); the report lists every problem."""
    store = open_store(url, storage_options)
    report = VerifyReport(store.url, deep=deep)
    if not store.exists(MANIFEST):
        report.add(MANIFEST, "missing: the build never finished (rerun it, or fgbg repair)")
        return report
    try:
        data = store.read_metadata(MANIFEST)
        manifest = parse_manifest(data, MANIFEST)  # types, ranges, names, counts: nothing below trusts it unchecked
    except MetadataError as e:
        report.add(MANIFEST, str(e).removeprefix(f"{MANIFEST}: "))
        if store.exists(BUILD_RECORD):  # is the record intact? then repair can rewrite the manifest
            _record_problems(store, None, report)
        return report
    record = _record_problems(store, manifest, report)
    index_name = manifest.annotations.file
    location = Location(str(url), store.storage_options if isinstance(store, ObjectStore) else None)
    index_sha256: str | None = None
    index_problem: str | None = None
    feed = None
    parquet_index = False
    if _index_present(store, manifest, report):
        if index_name == PARQUET:  # hashed as a stream, its footer checked here, its rows per shard check
            index_sha256 = store.sha256(index_name)
            if index_sha256 != manifest.annotations.sha256:
                index_problem, index_sha256 = "sha256 differs from the manifest", None
            else:
                try:
                    IndexRows(location, manifest).close()
                    parquet_index = True
                except (MetadataError, DatasetError) as e:
                    index_problem, index_sha256 = f"malformed ({str(e).split(': ', 1)[-1]})", None
        else:
            feed = _CsvFeed(location, manifest)
    ctx = _Context(str(url), storage_options, deep, manifest, record, parquet_index)
    formats = list(manifest.shards)
    n_shards = len(next(iter(manifest.shards.values()), []))
    order = [(fmt, s) for s in range(n_shards) for fmt in formats]  # shard-major: each block of the index once
    tasks = ((fmt, s, feed.rows(s, manifest.shards[fmt][s]) if feed else None) for fmt, s in order)
    listed = {n for shards in manifest.shards.values() for e in shards for n in (e.name, receipt_name(e.name))}
    n_workers = min(worker_count(workers), len(order))
    found: dict[tuple[str, int], _ShardResult] = {}
    with contextlib.ExitStack() as stack:
        if n_workers <= 1:
            checker = _ShardChecker(ctx)
            results: Iterator[_ShardResult] = (checker.check(*t) for t in tasks)
        else:
            pool = spawn_executor(n_workers, _init, (ctx,))
            stack.callback(pool.shutdown, cancel_futures=True)  # on an error or Ctrl-C too: no waiting for the rest
            results = _bounded_map(pool, _check, tasks, 4 * n_workers)
        try:
            for key, result in zip(order, results, strict=False):
                found[key] = result
        except BrokenProcessPool as e:
            raise FgbgError(f"{store.url}: a verify worker process died (killed, or out of memory?); "
                            "nothing was changed: run verify again") from e
    if feed is not None:
        index_sha256, index_problem = feed.verdict(store, manifest)
    if index_problem:
        report.add(index_name, index_problem)
    report.samples_per_format = {fmt: 0 for fmt in manifest.shards}
    receipts: list[Receipt | None] = []
    for fmt in formats:  # the report in format order, as the shards are listed
        for s in range(n_shards):
            problems, seen, receipt = found[(fmt, s)]
            report.problems += problems if index_sha256 is not None else _drop_index_findings(problems)
            report.samples_per_format[fmt] += seen
            receipts.append(receipt)
    report.shards = len(order)
    total = sum(e.count for e in next(iter(manifest.shards.values()), []))
    if total != manifest.totals.samples:
        report.add(MANIFEST, f"totals say {manifest.totals.samples} samples, shards hold {total}")
    _made_problems(store, data, manifest, record, index_sha256, receipts, report)
    _card_problems(store, manifest, report)
    for entry_name in store.listdir("shards"):
        rel = f"shards/{entry_name}"
        if TMP_MARK in entry_name:
            report.add(rel, "stale temporary file (left by a dead builder; removed by the next build or repair)")
        elif rel not in listed:
            report.add(rel, "not listed in the manifest")
    return report
