"""Orchestration of a build: check inputs, claim the dataset, build missing shards, commit.

Order matters for the guarantees in docs/FORMAT.md §5:
1. every input is read and checked before anything is written (bad input never touches
   an existing dataset);
2. the dataset lock is taken, and the build record is compared with the one already there
   (another config is refused) or written (a new dataset);
3. each shard is checked against its receipt and rebuilt only if not done -- in a process
   pool, whole shards per task, so a crash costs at most the shards in flight;
4. the annotations index and then the manifest are written last, from the receipts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fgbg.readers.extras import require
from fgbg.readers.index import PARQUET
from fgbg.readers.schema import Manifest

from .card import CARD, PREVIEW, write_card
from .config import BuildConfig
from .depth import describe_backend
from .errors import ConfigMismatchError, FgbgError, LockedError, OutputError
from .inputs import encode_inputs, fg_boxes, input_statistics, load_inputs, write_inputs
from .layer_inputs import carry_predictions, first_backgrounds, floors_of, predict_backgrounds
from .manifest import (
    ANNOTATIONS,
    BUILD_RECORD,
    MANIFEST,
    index_chunks,
    make_manifest,
    make_record,
    manifest_bytes,
    read_record,
)
from .plan import plan_for
from .processes import init_worker_process, spawn_executor, worker_count
from .receipts import Receipt
from .record import BuildRecord
from .shard import ShardBuilder, depth_settings
from .shards import HDF5_LAYOUTS
from .sources import Mapper, PreparedInput, load_backgrounds, load_foregrounds
from .stats import PixelSums
from .storage import ObjectStore, Store, open_store

__all__ = [
    "BuildResult", "LocalPool", "Runner", "ShardWorker", "build", "check_output", "complete", "local_runner",
    "record_differences", "run_record", "run_shards",
]

_DATASET_ENTRIES = {BUILD_RECORD, MANIFEST, ANNOTATIONS, PARQUET, CARD, PREVIEW, "shards", "inputs", ".fgbg.lock"}


@dataclass(frozen=True)
class BuildResult:
    url: str
    samples: int
    shards: int
    built: int  # shards written by this run
    reused: int  # shards found done and kept
    built_samples: int  # samples in the shards written by this run
    seconds: float
    manifest: Manifest


def record_differences(old: BuildRecord, new: BuildRecord) -> list[str]:
    """Human-readable differences between two build records (what makes them incompatible)."""
    diffs = []
    old_config, new_config = old.config.to_json(), new.config.to_json()
    for key in sorted(set(old_config) | set(new_config)):
        a, b = old_config.get(key), new_config.get(key)
        if a != b:
            diffs.append(f"{key}: {a} -> {b}")
    for kind in ("bg", "fg"):
        x = [(r.name, r.sha256) for r in old.inputs.of(kind)]
        y = [(r.name, r.sha256) for r in new.inputs.of(kind)]
        if x != y:
            changed = sorted({n for n, _ in set(x) ^ set(y)})
            diffs.append(f"{kind} inputs: {len(x)} -> {len(y)} files, differing: {', '.join(changed[:5]) or 'order'}")
    old_body, new_body = old.body(), new.body()
    for key in ("depth", "formats", "hdf5_layout", "format_version", "tool", "key_width", "index"):
        if old_body.get(key) != new_body.get(key):
            diffs.append(f"{key}: {old_body.get(key)} -> {new_body.get(key)}")
    return diffs


# -- worker side ------------------------------------------------------------------------
class ShardWorker(Protocol):
    """What runs in a worker process: makes sure a shard is done in every format."""

    def ensure(self, shard: int) -> list[tuple[Receipt, bool]]:
        """Receipts of the shard in every format, (re)building what is not done."""
        raise NotImplementedError

    def flush(self) -> None:
        """Every shard ``ensure`` returned is committed (receipt written), or its error raised."""

    def close(self) -> None:
        """Release what the worker holds (models, open files)."""


_worker: ShardWorker | None = None
_FLUSH_TIMEOUT = 3600.0  # seconds a drained worker waits for the others' last commits
_flush_barrier: Any = None  # one per pool process: makes each of the pool's flush tasks land on its own worker


def _init_pool_worker(barrier: Any) -> None:
    global _flush_barrier
    init_worker_process()
    _flush_barrier = barrier


def _flush_worker() -> None:
    """Drain this process's background commits, then wait until every worker of the pool got
    its own flush task (a worker waiting here takes no second one). Always reaches the
    barrier, failed or not, so that a failure cannot leave the others waiting."""
    try:
        if _worker is not None:
            _worker.flush()
    finally:
        _flush_barrier.wait(timeout=_FLUSH_TIMEOUT)


def _ensure_shard(factory: Callable[[], ShardWorker], shard: int) -> list[tuple[Receipt, bool]]:
    global _worker
    if _worker is None:  # a pool serves one build (LocalPool.run runs once): one factory
        _worker = factory()
    return _worker.ensure(shard)


def _started() -> None:
    """A no-op task: submitted once per worker so that all of them start right away."""


class LocalPool:
    """Spawned worker processes for the shards of one build.

    Started before the driver reads and checks its inputs, so that the workers' interpreter
    start and imports (~0.3 s each) overlap that work instead of following it; the shard
    factory (which needs the build record) is sent with the tasks. A ProcessPoolExecutor,
    not multiprocessing.Pool: a worker that dies (OOM killer, kill -9) fails the build with
    an error instead of leaving its shard pending forever, and shutting down never waits on
    Pool's handler threads (whose terminate() can hang). The workers' initializer does cheap
    settings only; the shard worker itself is made by the first task, so a failure (bad
    weights, unreadable inputs) reaches the builder as that task's exception -- a failing
    initializer would make the pool respawn workers forever.
    """

    def __init__(self, workers: int):
        if workers < 2:
            raise ValueError(f"a pool needs at least 2 workers, got {workers}")
        self._workers = workers
        barrier = multiprocessing.get_context("spawn").Barrier(workers)
        self._ex = spawn_executor(workers, _init_pool_worker, (barrier,))
        for _ in range(workers):  # one process each, started now (the executor starts them on demand)
            self._ex.submit(_started)
        self._used = False

    def map(self, function: Callable[[Any], PreparedInput], items: Iterable[Any]) -> Iterator[PreparedInput]:
        """``function`` over ``items`` in the workers, results in order: the per-file input
        preparation (decode, resize, PNG encode, hash), which otherwise runs in the driver
        alone while the workers wait (10,000 backgrounds: most of the time to the first shard)."""
        try:
            yield from self._ex.map(function, items, chunksize=8)
        except BrokenProcessPool as e:
            raise FgbgError("a build worker process died (killed, or out of memory?) while reading the inputs; "
                            "nothing was written: rerun the same command") from e

    def run(self, factory: Callable[[], ShardWorker], shards: list[int]) -> Iterator[list[tuple[Receipt, bool]]]:
        if self._used:
            raise RuntimeError("a LocalPool runs the shards of one build only")
        self._used = True
        futures = {self._ex.submit(_ensure_shard, factory, s): s for s in shards}
        try:
            for done in as_completed(futures):
                yield done.result()
            # commits still running in the workers' threads: all done before the caller goes on
            for flushed in [self._ex.submit(_flush_worker) for _ in range(self._workers)]:
                flushed.result()
        except BrokenProcessPool as e:
            raise FgbgError(
                "a build worker process died (killed, or out of memory?) while building shards; the shards "
                "already committed are kept: rerun the same command to resume"
            ) from e

    def close(self) -> None:
        """Stop at once: queued shards are dropped and running ones killed (their temporary
        files are removed by the next build, which holds the lock). Returns once they are gone:
        no worker may commit a shard after the builder let go of the lock."""
        ex = self._ex
        # Private attributes, read before shutdown() drops them: no public kill before 3.14.
        processes = list((getattr(ex, "_processes", None) or {}).values())
        manager = getattr(ex, "_executor_manager_thread", None)
        ex.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        if manager is not None:
            manager.join()
        for process in processes:
            process.join()


def run_shards(
    factory: Callable[[], ShardWorker], shards: list[int], workers: int, pool: LocalPool | None = None
) -> Iterator[list[tuple[Receipt, bool]]]:
    """Ensure each shard in a pool of ``workers`` spawned processes (inline for one worker).

    ``factory`` must be picklable (a module-level callable or a ``functools.partial``);
    each worker calls it once, so models and inputs are loaded once per process. ``pool``
    is one already started (see :class:`LocalPool`); otherwise one is made here.
    """
    global _worker
    if workers <= 1 or len(shards) <= 1:
        _worker = factory()
        try:
            for s in shards:
                yield _worker.ensure(s)
            _worker.flush()
        finally:
            _worker.close()
            _worker = None
        return
    own = pool is None
    pool = pool or LocalPool(workers)
    try:
        yield from pool.run(factory, shards)
    finally:
        if own:
            pool.close()


def _shard_builder(store: Store, record: BuildRecord, depth_options: dict[str, Any]) -> ShardBuilder:
    """On an object store shards are committed in the background (builder/committer.py): the
    upload's tail and the receipt's round trips overlap the next shard, instead of idling it."""
    return ShardBuilder(store, record, depth_options, background_commits=isinstance(store, ObjectStore))


# -- driver -----------------------------------------------------------------------------
def _prepare_record(
    store: Store, cfg: BuildConfig | None, sources: tuple[Any, Any] | None, formats: list[str], layout: str,
    depth_options: dict[str, Any], index: str = "csv", workers: int | None = None, progress: bool | None = None,
) -> tuple[BuildRecord, dict[str, Path], object]:
    existing = read_record(store) if store.exists(BUILD_RECORD) else None
    if sources is None:
        if existing is None:
            raise FgbgError(f"{store.url}: no dataset here to resume; give --bg and --fg to start one")
        if existing.imported:
            raise FgbgError(f"{store.url}: an imported dataset has no plan to rebuild shards from; "
                            "run fgbg import again to redo it")
        return existing, {}, None
    assert cfg is not None
    bgs, fgs = sources
    records, files = encode_inputs(cfg, bgs, fgs)
    n = len(bgs) * len(fgs) * cfg.flips * cfg.placements
    depth = describe_backend(cfg.depth, cfg.depth_shape, **depth_settings(cfg, depth_options))
    keep: object = None
    if cfg.depth_layers and existing is not None:  # resuming: the predictions are the dataset's inputs
        records = carry_predictions(records, existing.inputs)
    elif cfg.depth_layers:  # the model once per background, before the first shard
        pngs = [b.png for b in bgs]
        made = predict_backgrounds(cfg, records, pngs, depth_options, workers, progress,
                                   calibration=first_backgrounds(cfg, pngs))
        records, files, keep = made.inputs, {**files, **made.files}, made.spool
    if cfg.depth_layers and cfg.position == "floor":  # each background's floor, from its prediction
        stored = existing.build_config if existing is not None and not existing.imported else None
        if stored is not None and stored.floors is None and stored.depth_layers and stored.position == "floor":
            floors = None  # a dataset made before floors were fitted: it keeps the room's
        else:
            floors = floors_of(cfg, records, lambda rel: files[rel].read_bytes() if rel in files
                               else store.read_bytes(rel))
        cfg = dataclasses.replace(cfg, floors=floors)
    record = make_record(cfg, records, depth, formats, layout, n, index)
    if existing is not None and existing.fingerprint != record.fingerprint:
        diffs = record_differences(existing, record) or ["fingerprint"]
        raise ConfigMismatchError(
            f"{store.url}: already holds a dataset built with other settings or inputs "
            f"({'; '.join(diffs)}); use a new --out, or rerun with the original settings to resume"
        )
    return record, files, keep


def check_output(store: Store) -> None:
    """Refuse an output that is a file, unwritable, or a non-empty folder that is no dataset."""
    store.check_writable()
    if not store.exists(BUILD_RECORD):
        strangers = [name for name in store.listdir("") if name not in _DATASET_ENTRIES]
        if strangers:
            raise OutputError(
                f"{store.url}: folder is not empty ({', '.join(strangers[:3])}...) and holds no fgbg "
                "dataset; choose a new or empty folder"
            )


Runner = Callable[[list[int]], Iterator[list[tuple[Receipt, bool]]]]


def local_runner(factory: Callable[[], ShardWorker], workers: int | None, pool: LocalPool | None = None) -> Runner:
    """Shards in a local process pool of ``workers`` (default: all cores), or in ``pool``."""

    def run(shards: list[int]) -> Iterator[list[tuple[Receipt, bool]]]:
        return run_shards(factory, shards, max(1, min(worker_count(workers), len(shards))), pool)

    return run


def complete(
    store: Store, record: BuildRecord, run: Runner, progress: bool | None,
    on_shard: Callable[[Receipt, bool], None] | None, t0: float, desc: str = "fgbg build",
) -> BuildResult:
    """With the lock held and ``build.json`` written: make every shard done (with ``run``),
    then commit the annotations index and, last, the manifest."""
    cfg = record.build_config
    plan = plan_for(cfg, record, fg_boxes(record.inputs), len(record.inputs.bg))
    receipts: list[Receipt] = []
    built = built_samples = 0
    bar = _progress_bar(plan.n_samples, progress, desc)
    # The index and the input statistics depend on the plan and inputs only: they are made in
    # a thread once the first shard is back (the workers busy, this process idle), not after.
    side = ThreadPoolExecutor(1, thread_name_prefix="fgbg-index")
    def make_index() -> str:  # streamed to the store, one chunk in memory: its sha256 comes back
        return store.write_atomic_chunks(record.index_file, index_chunks(plan, record))

    def make_stats() -> dict[str, PixelSums]:
        return input_statistics(load_inputs(store, record.inputs), cfg)

    index_job: Future[str] | None = None
    stats_job: Future[dict[str, PixelSums]] | None = None
    try:
        for results in run(list(range(plan.n_shards))):
            if index_job is None:
                index_job, stats_job = side.submit(make_index), side.submit(make_stats)
            new = any(n for _, n in results)
            receipts += [r for r, _ in results]
            built += new
            built_samples += results[0][0].count if new else 0
            bar.update(results[0][0].count)
            if on_shard is not None:
                on_shard(results[0][0], new)
    finally:
        bar.close()
        side.shutdown(wait=True)
    store.remove_stale_temps()  # every shard is done: a temp left now belongs to a dead worker
    index_sha256 = index_job.result() if index_job else make_index()
    stats = stats_job.result() if stats_job else make_stats()
    manifest = make_manifest(record, receipts, index_sha256, stats)
    write_card(store, manifest)
    store.write_atomic(MANIFEST, manifest_bytes(manifest))
    return BuildResult(store.url, plan.n_samples, plan.n_shards, built, plan.n_shards - built, built_samples,
                       time.monotonic() - t0, manifest)


def run_record(
    store: Store, record: BuildRecord, *, depth_options: dict[str, Any] | None, workers: int | None,
    progress: bool | None, t0: float, on_shard: Callable[[Receipt, bool], None] | None = None,
    desc: str = "fgbg build", executor: str = "local", ray_address: str | None = None, pool: LocalPool | None = None,
) -> BuildResult:
    """With the lock held and ``build.json`` written (by build or append): run the shards on
    ``executor`` and :func:`complete` the dataset."""
    depth_options = dict(depth_options or {})
    if executor == "ray":
        from .ray_executor import ray_runner

        run = ray_runner(store, record, depth_options, workers, ray_address)
    else:
        if record.config.depth in ("densedepth", "onnx"):  # share the cores between the workers' models
            depth_options.setdefault("threads", max(1, (os.cpu_count() or 1) // worker_count(workers)))
        run = local_runner(functools.partial(_shard_builder, store, record, depth_options), workers, pool)
    return complete(store, record, run, progress, on_shard, t0, desc)


def build(
    out: str | Path,
    cfg: BuildConfig | None,
    bg_dir: str | Path | None = None,
    fg_dir: str | Path | None = None,
    fg_mask_dir: str | Path | None = None,
    *,
    workers: int | None = None,
    formats: Sequence[str] = ("tar",),
    hdf5_layout: str = "encoded",
    skip_invalid: bool = False,
    progress: bool | None = None,
    on_shard: Callable[[Receipt, bool], None] | None = None,
    depth_options: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    index: str = "csv",
) -> BuildResult:
    """Build (or resume) the dataset at ``out``. Without bg/fg folders, resume from ``inputs/``.

    ``depth_options`` go to the depth backend (densedepth: ``weights``, ``batch``,
    ``device``); they identify nothing by themselves (the weights' hash is recorded).
    ``executor="ray"`` runs shards as Ray tasks (and DenseDepth in Ray actors) on the
    cluster at ``ray_address`` (default: a local Ray instance); the result is the same.
    """
    if executor not in ("local", "ray"):
        raise FgbgError(f"--executor must be local or ray, got {executor!r}")
    if executor == "ray":
        require("ray", "ray", "--executor ray")  # before anything is created: a missing extra costs nothing
    if index == "parquet":
        require("pyarrow.parquet", "parquet", "--index parquet")
    t0 = time.monotonic()
    if hdf5_layout not in HDF5_LAYOUTS:
        raise FgbgError(f"--hdf5-layout must be one of {', '.join(HDF5_LAYOUTS)}, got {hdf5_layout!r}")
    store = open_store(out, storage_options)
    check_output(store)  # before reading any input: a bad output is reported first and costs nothing
    with contextlib.ExitStack() as stack:
        pool = None
        if executor == "local" and worker_count(workers) > 1:  # start now: they import while inputs are read
            pool = LocalPool(worker_count(workers))
            stack.callback(pool.close)
        sources = None
        if bg_dir is not None or fg_dir is not None:
            if bg_dir is None or fg_dir is None or cfg is None:
                raise FgbgError("a new build needs both --bg and --fg")
            mapper: Mapper = pool.map if pool is not None else map
            sources = (load_backgrounds(bg_dir, cfg, skip_invalid, storage_options, mapper),
                       load_foregrounds(fg_dir, cfg, fg_mask_dir, skip_invalid, storage_options, mapper))
        fresh = not store.existing()
        store.create()
        started = False
        try:
            with store.lock():
                depth_options = dict(depth_options or {})
                record, files, _spool = _prepare_record(store, cfg, sources, list(formats), hdf5_layout,
                                                        depth_options, index, workers, progress)
                store.remove_stale_temps()
                write_inputs(store, files)
                store.write_atomic(BUILD_RECORD, record.to_bytes())
                started = True  # from here on a failure leaves a resumable dataset
                return run_record(store, record, depth_options=depth_options, workers=workers, progress=progress,
                                  on_shard=on_shard, t0=t0, executor=executor, ray_address=ray_address,
                                  pool=pool)
        except LockedError:
            raise  # another builder's dataset: not ours to undo
        except BaseException:
            if fresh and not started:
                store.discard_new()  # a failed start on a new dataset leaves no folder
            raise


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool | None, desc: str) -> Any:
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", unit_scale=total >= 100_000, smoothing=0.05, desc=desc)
