"""``fgbg verify``: prove a dataset is intact, or name exactly what is not.

Checks every shard the build record's plan implies -- and every one the manifest or a receipt
names -- whatever the manifest says: each shard's presence, size and sha256 against its
receipt and the manifest, its receipt against the plan, the tar layout header by header
(the planned keys and members, each sample at its recorded offset), every sample against its
receipt's digest and decoded, each annotation against the plan's row and the index's (whose
own sha256 is in the manifest); then that the manifest is exactly what the build record,
the receipts and the index make (a hand-edited manifest is caught), the card and collage, and
no stale temporary or unknown file in ``shards/``. A finding in the metadata never stops the
shard checks: the report names every damaged shard and sample. With ``deep``, every mask is
compared with the mask the annotation implies (the stored foreground's alpha, resized,
flipped and placed at x, y). Works on any store.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np

from fgbg.readers.errors import DatasetError, MetadataError
from fgbg.readers.fs import Location
from fgbg.readers.index import PARQUET, CsvRows, IndexRows, index_bound
from fgbg.readers.schema import (
    MEMBERS,
    Manifest,
    ShardEntry,
    decode_manifest,
    manifest_problems,
    shard_position,
)

from ..card import CARD, PREVIEW, dataset_card, draw_preview
from ..config import BuildConfig
from ..depth.layers import model_output
from ..depth.stored import StoredPredictions, depth_file
from ..errors import FgbgError
from ..floor_fit import fit_floor
from ..inputs import input_statistics, load_inputs
from ..manifest import (
    BUILD_RECORD,
    MANIFEST,
    make_manifest,
    manifest_bytes,
    manifest_fields,
    record_from_manifest,
)
from ..processes import init_worker_process, spawn_executor, worker_count
from ..receipts import Receipt, read_receipt, receipt_name
from ..record import BuildRecord
from ..shards import shard_name
from ..stats import PixelSums
from ..storage import TMP_MARK, ObjectStore, Store, open_store
from .shard_check import CheckContext, Problem, Proofs, Rows, ShardCheck, ShardChecker, ShardResult, plan_of

__all__ = ["INDEX_FINDINGS", "Problem", "VerifyReport", "verify"]


@dataclass
class VerifyReport:
    url: str
    problems: list[Problem] = field(default_factory=list)
    shards: int = 0
    samples_per_format: dict[str, int] = field(default_factory=dict)  # a tar+hdf5 dataset is checked twice
    deep: bool = False
    proofs: Proofs = field(default_factory=Proofs)  # samples (of every format) each proof ran on

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
                "deep": self.deep, "proofs": asdict(self.proofs), "problems": [asdict(p) for p in self.problems]}

    def _counts(self) -> str:
        """``72 samples in 8 tar shards`` -- per format, so a two-format dataset is not counted twice."""
        per = self.samples_per_format
        p = self.proofs
        proofs = f"bytes proven by digest: {p.digest}, decoded: {p.decoded}" + (
            f", masks repainted: {p.repainted}" if self.deep else "")
        if len(set(per.values())) == 1 and len(per) > 1:
            return f"{self.samples} samples checked in each of {' and '.join(per)} ({self.shards} shards; {proofs})"
        counts = ", ".join(f"{n} {fmt}" for fmt, n in per.items()) or "0"
        return f"{counts} samples checked ({self.shards} shards; {proofs})"

    def text(self) -> str:
        lines = [f"{p.where}{f' sample {p.sample}' if p.sample else ''}: {p.what}" for p in self.problems]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"fgbg verify {self.url}: {self._counts()}{' (deep)' if self.deep else ''}: {verdict}")
        return "\n".join(lines)


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


#: what a shard check says of the index's rows (not of the shard): void when the index is damaged
INDEX_FINDINGS = ("annotation differs from the index", "no row in the annotations index")


def _drop_index_findings(problems: list[Problem]) -> list[Problem]:
    """A damaged index proves nothing about the samples (repair rewrites it): what it said goes."""
    return [p for p in problems if not p.what.startswith(INDEX_FINDINGS)]


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
        self._last: tuple[int, Rows | None] = (-1, None)
        try:
            self._rows = CsvRows(self._f, self.name)
        except MetadataError as e:
            self.malformed = str(e).removeprefix(f"{self.name}: ")

    def rows(self, s: int, first: int, count: int) -> Rows | None:
        if self._last[0] == s:  # the shard's other format
            return self._last[1]
        index = None
        if self._rows is not None and self.malformed is None:
            try:
                index = Rows(self._rows.rows(first, count).columns, first)
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


def _cross_problems(receipts: list[Receipt], report: VerifyReport) -> None:
    """Receipts against each other: every format of a shard holds the same samples (the same
    exact sums, the same per-sample digests), and receipts written since digests exist all
    have them (a stripped list is found)."""
    of_shard: dict[int, Receipt] = {}
    for receipt in receipts:
        other = of_shard.setdefault(receipt.shard, receipt)
        if other.stats != receipt.stats:
            report.add(receipt_name(receipt.name), "statistic sums differ from the other format's receipt")
        if other.digests and receipt.digests and other.digests != receipt.digests:
            report.add(receipt_name(receipt.name), "per-sample digests differ from the other format's receipt")
    if any(r.digests for r in receipts):
        for r in receipts:
            if not r.digests:
                report.add(receipt_name(r.name), "has no per-sample digests while the others do (stripped?)")


def _input_statistics(store: Store, record: BuildRecord) -> dict[str, PixelSums]:
    """The stored inputs' exact statistics (none for an imported dataset); FgbgError when an
    input does not match its recorded hash."""
    if not isinstance(record.config, BuildConfig):
        return {}
    if record.config.depth_layers:  # the backgrounds' predictions are inputs too: hashed and parsed
        predictions = StoredPredictions(store, record.inputs.bg, record.config.depth_shape, capacity=1, fresh=True)
        predictions.check_all()
        _floor_problems(record.config, predictions)
    return input_statistics(load_inputs(store, record.inputs, fresh=True), record.config)


def _floor_problems(cfg: BuildConfig, predictions: Sequence[np.ndarray]) -> None:
    """``config.floors`` (what the plan stands people on) must be the fit of each stored
    prediction: FgbgError naming the first background whose recorded floor is not."""
    if cfg.floors is None:
        return
    if len(cfg.floors) != len(predictions):
        raise FgbgError(f"{BUILD_RECORD}: config.floors has {len(cfg.floors)} entries for {len(predictions)} "
                        "backgrounds")
    output = model_output(cfg.depth, cfg.depth_preset, cfg.depth_input)
    for i, recorded in enumerate(cfg.floors):
        if fit_floor(predictions[i], output, cfg.size) != recorded:
            raise FgbgError(f"{BUILD_RECORD}: config.floors[{i}] is not the floor fitted from "
                            f"{depth_file(i)} (edited?)")


def _made_problems(data: bytes, manifest: Manifest, record: BuildRecord | None, annotations: str | None,
                   read: list[Receipt | None], statistics: Future[dict[str, PixelSums]] | None,
                   report: VerifyReport) -> None:
    """The manifest must be exactly what the build record, the receipts (``read`` by the shard
    checks) and the index make: its shard list, totals and statistics are derived data, so an
    edit to any of them (which no hash covers) is found here. Skipped when a part it needs is
    already reported broken (the findings before it name what to mend)."""
    if record is None or annotations is None or statistics is None or not report.ok:
        return
    receipts = [r for r in read if r is not None]
    if len(receipts) < len(read):
        return
    try:
        extra = statistics.result()
    except FgbgError as e:
        report.add("inputs/", str(e))
        return
    made_manifest = make_manifest(record, receipts, annotations, extra)
    if manifest_bytes(made_manifest) != data:
        made, stored, own = msgspec.to_builtins(made_manifest), msgspec.to_builtins(manifest), record.body()
        fields = sorted(k for k in set(made) | set(stored) if made.get(k) != stored.get(k) and k not in own)
        report.add(MANIFEST, f"differs from what {BUILD_RECORD}, the receipts and the index make"
                             f" ({', '.join(fields) if fields else 'not in canonical form'})")


def _card_problems(store: Store, manifest: Manifest, collage: Future[bytes], report: VerifyReport) -> None:
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
    elif report.ok and picture != collage.result():  # drawn from the shards: compared when they are sound
        report.add(PREVIEW, "preview collage differs from the one the shards make (fgbg repair redraws it)")


def _record_problems(store: Store, report: VerifyReport) -> BuildRecord | None:
    """The build record checked alone (schema, settings, its own fingerprint); returned when
    it checks out."""
    try:
        data = store.read_metadata(BUILD_RECORD)
    except (FileNotFoundError, MetadataError):
        report.add(BUILD_RECORD, "missing or unreadable (repair needs it)")
        return None
    try:
        return BuildRecord.parse(data, BUILD_RECORD)
    except MetadataError as e:
        report.add(BUILD_RECORD, str(e).removeprefix(f"{BUILD_RECORD}: "))
        return None


def _read_manifest(store: Store, report: VerifyReport) -> tuple[bytes | None, Manifest | None, bool]:
    """(its bytes, the manifest decoded -- types and ranges checked, so its shard names are safe
    to open --, whether its fields also agree with each other); findings reported, never
    raised: a manifest that lies about totals still lists the shards to check."""
    if not store.exists(MANIFEST):
        report.add(MANIFEST, "missing: the build never finished (rerun it, or fgbg repair)")
        return None, None, False
    try:
        data = store.read_metadata(MANIFEST)
        manifest = decode_manifest(data, MANIFEST)
    except MetadataError as e:
        report.add(MANIFEST, str(e).removeprefix(f"{MANIFEST}: "))
        return None, None, False
    problems = manifest_problems(manifest)
    for problem in problems:
        report.add(MANIFEST, problem)
    return data, manifest, not problems


def _compare_record(record: BuildRecord, manifest: Manifest, report: VerifyReport) -> None:
    """The manifest carries a copy of the build record: it must be the record."""
    stored = msgspec.to_builtins(manifest)
    for key, value in record.to_json().items():
        if stored.get(key) != value:
            report.add(MANIFEST, f"field {key!r} differs from {BUILD_RECORD} (edited by hand?)")


def _record_copy(manifest: Manifest | None) -> BuildRecord | None:
    """The manifest's copy of the build record when that copy checks out (build.json damaged:
    what repair restores it from, so the plan verify checks against)."""
    if manifest is None:
        return None
    with contextlib.suppress(MetadataError):
        return record_from_manifest(manifest, MANIFEST)
    return None


def _shard_file(rel: str) -> bool:
    """A shard's file or its receipt, by name."""
    return shard_position(rel.removesuffix(".json")) is not None


def _shard_files(store: Store) -> dict[tuple[str, int], list[str]]:
    """Shard files and receipts in ``shards/``, by (format, shard number)."""
    found: dict[tuple[str, int], list[str]] = {}
    for entry in store.listdir("shards"):
        position = shard_position(f"shards/{entry}".removesuffix(".json"))
        if position is not None:
            found.setdefault(position, []).append(f"shards/{entry}")
    return found


def _layout(store: Store, record: BuildRecord | None, manifest: Manifest | None, sound: bool,
            on_disk: dict[tuple[str, int], list[str]],
            report: VerifyReport) -> tuple[dict[tuple[str, int], tuple[int, int]], str]:
    """Where each shard of the dataset must be: {(format, shard): (first, count)} and what says
    so -- the build record's plan; without one (imported, or no intact record), the manifest
    when sound; else the receipts found in ``shards/`` (each held to its shard's real size)."""
    plan = plan_of(record)
    # the plan's size is a claim too (a forged record with its fingerprint recomputed can ask
    # for 10^10 shards): held to what the dataset's files could be, so memory stays bounded
    bound = 4 * max(len(on_disk), sum(map(len, manifest.shards.values())) if manifest is not None else 0, 256)
    if plan is not None and record is not None:
        if plan.n_shards * len(record.formats) <= bound:
            return {(fmt, s): plan.shard_range(s) for s in range(plan.n_shards) for fmt in record.formats}, "plan"
        report.add(BUILD_RECORD, f"its plan makes {plan.n_shards} shards per format, far more than this dataset's "
                                 "files hold: the shards are checked against the manifest or their receipts instead")
    if manifest is not None and sound:
        return {(fmt, s): (e.first, e.count) for fmt, entries in manifest.shards.items()
                for s, e in enumerate(entries)}, "manifest"
    out = {}
    for (fmt, s), names in sorted(on_disk.items()):
        name = shard_name(s, fmt)
        if receipt_name(name) in names:
            receipt = read_receipt(store, name, store.size(name) if store.exists(name) else None)[0]
            if receipt is not None:
                out[(fmt, s)] = (receipt.first, receipt.count)
    return out, "receipts"


def _listed(manifest: Manifest | None, layout: dict[tuple[str, int], tuple[int, int]], source: str,
            report: VerifyReport) -> dict[tuple[str, int], ShardEntry]:
    """The manifest's entry of each shard, by (format, number); an entry the plan does not
    have, or places elsewhere, is a finding."""
    listed: dict[tuple[str, int], ShardEntry] = {}
    for fmt, entries in (manifest.shards.items() if manifest is not None else ()):
        for entry in entries:
            position = shard_position(entry.name)
            if position is None or position[0] != fmt or position in listed:
                continue  # misnamed or listed twice: manifest_problems says so
            listed[position] = entry
            where = layout.get(position)
            if where is None and source != "manifest":
                report.add(MANIFEST, f"lists {entry.name}, which the {source} does not have")
            elif where is not None and where != (entry.first, entry.count):
                report.add(MANIFEST, f"lists {entry.name} as samples {entry.first}+{entry.count}, the {source} "
                                     f"has {where[0]}+{where[1]}")
    return listed


def _members(record: BuildRecord | None, manifest: Manifest | None) -> dict[str, str] | None:
    """Field -> member suffix each sample holds, in build order: the record's, else the manifest's."""
    if record is not None:
        return {f: spec["member"] for f, spec in manifest_fields(record).items()}
    if manifest is not None:
        return {f: manifest.fields[f].member for f in MEMBERS if f in manifest.fields}
    return None


_checker: ShardChecker | None = None  # per worker process: made by its first task
_context: CheckContext | None = None


def _init(ctx: CheckContext) -> None:
    """Worker initializer: the process settings only; the checker is made by the first task
    (a failing initializer would make the pool respawn workers forever)."""
    global _checker, _context
    init_worker_process()
    _checker, _context = None, ctx


def _check(task: ShardCheck) -> ShardResult:
    global _checker
    if _checker is None:
        assert _context is not None
        _checker = ShardChecker(_context)
    return _checker.check(task)


def _bounded_map(pool: Any, fn: Callable[[Any], ShardResult], items: Iterator[Any],
                 window: int) -> Iterator[ShardResult]:
    """``pool.map`` with at most ``window`` tasks submitted ahead, results in order: the tasks
    carry index rows, made as they are submitted, never all at once."""
    pending: collections.deque[Future[ShardResult]] = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass
class _IndexCheck:
    """The annotations index as verify reads it: streamed to the shard checks (CSV), or read
    by them a row group at a time (Parquet); its verdict once every shard is checked."""

    name: str
    feed: _CsvFeed | None = None
    parquet: bool = False
    sha256: str | None = None
    problem: str | None = None

    @classmethod
    def open(cls, store: Store, location: Location, manifest: Manifest | None, sound: bool,
             report: VerifyReport) -> _IndexCheck:
        if manifest is None or not sound:  # no sha256 or row count to hold it to: the plan's rows stand alone
            return cls(manifest.annotations.file if manifest is not None else "")
        check = cls(manifest.annotations.file)
        if not _index_present(store, manifest, report):
            return check
        if check.name != PARQUET:
            check.feed = _CsvFeed(location, manifest)
            return check
        check.sha256 = store.sha256(check.name)  # hashed as a stream, its footer checked here
        if check.sha256 != manifest.annotations.sha256:
            check.problem, check.sha256 = "sha256 differs from the manifest", None
            return check
        try:
            IndexRows(location, manifest).close()
            check.parquet = True
        except (MetadataError, DatasetError) as e:
            check.problem, check.sha256 = f"malformed ({str(e).split(': ', 1)[-1]})", None
        return check

    def rows(self, s: int, first: int, count: int) -> Rows | None:
        return self.feed.rows(s, first, count) if self.feed is not None else None

    def finish(self, store: Store, manifest: Manifest | None, report: VerifyReport) -> None:
        if self.feed is not None and manifest is not None:
            self.sha256, self.problem = self.feed.verdict(store, manifest)
        if self.problem:
            report.add(self.name, self.problem)


def verify(url: str, deep: bool = False, storage_options: dict[str, Any] | None = None,
           workers: int | None = None, decode: bool = False) -> VerifyReport:
    """Check the dataset at ``url`` (shards in ``workers`` processes); the report lists every
    problem. Nothing found in one file stops the checks of the others.

    A sample whose bytes equal the digest its receipt recorded at build time is exactly what
    the builder encoded, so by default only its annotation is decoded (to check it against the
    plan and the index); samples without digests are decoded whole, and ``decode=True``
    decodes every sample. ``deep`` repaints every mask from its annotation."""
    store = open_store(url, storage_options)
    report = VerifyReport(store.url, deep=deep)
    record = _record_problems(store, report)
    data, manifest, sound = _read_manifest(store, report)
    if record is not None and manifest is not None:
        _compare_record(record, manifest, report)
    plan_record = record or _record_copy(manifest)  # build.json damaged: the copy repair restores it from
    on_disk = _shard_files(store)
    layout, source = _layout(store, plan_record, manifest, sound, on_disk, report)
    listed = _listed(manifest, layout, source, report)
    members = _members(plan_record, manifest)
    location = Location(str(url), store.storage_options if isinstance(store, ObjectStore) else None)
    index = _IndexCheck.open(store, location, manifest, sound, report)
    order = sorted(layout, key=lambda k: (k[1], k[0]))  # shard-major: each block of the index once
    results: dict[tuple[str, int], ShardResult] = {}
    # what the parent checks besides the shards, made in a thread while they are checked (not after)
    with ThreadPoolExecutor(1, thread_name_prefix="fgbg-verify") as side:
        statistics = collage = None
        if manifest is not None and sound:
            statistics = side.submit(_input_statistics, store, record) if record is not None else None
            collage = side.submit(draw_preview, store, manifest)  # compared only if the shards prove sound
        if members is None:
            report.add(MANIFEST, f"no samples checked: neither {BUILD_RECORD} nor {MANIFEST} says what a sample holds")
        else:
            width = plan_record.key_width if plan_record is not None else manifest.key_width  # type: ignore[union-attr]
            ctx = CheckContext(str(url), storage_options, deep, width, members, decode, plan_record, manifest,
                               index.parquet)
            tasks = (ShardCheck(fmt, s, shard_name(s, fmt), *layout[(fmt, s)], listed.get((fmt, s)),
                                index.rows(s, *layout[(fmt, s)])) for fmt, s in order)
            results = _run_checks(ctx, tasks, order, workers, store.url)
        index.finish(store, manifest, report)
        formats = list(dict.fromkeys([*(manifest.shards if manifest is not None else ()),  # the manifest's order
                                      *(plan_record.formats if plan_record is not None else ()),
                                      *sorted(f for f, _ in layout)]))
        report.samples_per_format = {fmt: 0 for fmt in formats if any(f == fmt for f, _ in layout)}
        receipts: list[Receipt | None] = []
        for fmt, s in sorted(results, key=lambda k: (formats.index(k[0]), k[1])):  # the report in format order
            problems, seen, receipt, proofs = results[(fmt, s)]
            report.problems += problems if index.sha256 is not None else _drop_index_findings(problems)
            report.samples_per_format[fmt] += seen
            report.proofs.add(proofs)
            receipts.append(receipt)
        report.shards = len(results)
        _cross_problems([r for r in receipts if r is not None], report)
        if manifest is not None and data is not None and collage is not None:
            _made_problems(data, manifest, record, index.sha256, receipts, statistics, report)
            _card_problems(store, manifest, collage, report)
    known = {n for fmt, s in layout for n in (shard_name(s, fmt), receipt_name(shard_name(s, fmt)))}
    for entry_name in store.listdir("shards"):
        rel = f"shards/{entry_name}"
        if TMP_MARK in entry_name:
            report.add(rel, "stale temporary file (left by a dead builder; removed by the next build or repair)")
        elif rel not in known:
            shard_like = source == "plan" and _shard_file(rel)
            report.add(rel, "not a shard of the build record's plan" if shard_like else "not listed in the manifest")
    return report


def _run_checks(ctx: CheckContext, tasks: Iterator[ShardCheck], order: list[tuple[str, int]],
                workers: int | None, where: str) -> dict[tuple[str, int], ShardResult]:
    """Every shard's check, in ``workers`` processes (inline for one)."""
    found: dict[tuple[str, int], ShardResult] = {}
    n_workers = min(worker_count(workers), len(order))
    with contextlib.ExitStack() as stack:
        if n_workers <= 1:
            checker = ShardChecker(ctx)
            results: Iterator[ShardResult] = (checker.check(t) for t in tasks)
        else:
            pool = spawn_executor(n_workers, _init, (ctx,))
            stack.callback(pool.shutdown, cancel_futures=True)  # on an error or Ctrl-C too: no waiting for the rest
            results = _bounded_map(pool, _check, tasks, 4 * n_workers)
        try:
            for key, result in zip(order, results, strict=False):
                found[key] = result
        except BrokenProcessPool as e:
            raise FgbgError(f"{where}: a verify worker process died (killed, or out of memory?); "
                            "nothing was changed: run verify again") from e
    return found
