"""``fgbg convert``: the same samples in another shard format, without re-compositing.

Encoded members (JPEG/PNG/JSON bytes) are copied as they are between tar and the HDF5
``encoded`` layout, so a tar -> HDF5 -> tar round trip gives back byte-identical shards.
Only the HDF5 ``raw`` layout needs pixels, and gets them by decoding (the JPEG decoded
back, as every reader sees it). Going from ``raw`` back to encoded bytes would mean a
second, lossy JPEG encoding, so it is refused. A conversion is a build like any other:
locked, resumable shard by shard, committed with receipts and a manifest (statistics are
carried over from the source receipts; the inputs are copied and re-checked).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from fgbg.readers.dataset import open_dataset
from fgbg.readers.decode import decode_member
from fgbg.readers.formats.base import MEMBER_OF_FIELD
from fgbg.readers.schema import Manifest

from ..build import BuildResult, check_output, complete, local_runner, record_differences
from ..errors import ConfigMismatchError, FgbgError
from ..manifest import (
    BUILD_RECORD,
    MANIFEST,
    make_record,
    member_names,
    read_manifest,
    read_record,
    record_from_manifest,
)
from ..receipts import Receipt, check_shard, load_receipt
from ..record import BuildRecord
from ..shard import commit_shard, shard_meta
from ..shards import HDF5_LAYOUTS, EncodedSample, shard_name, writer_class
from ..stats import PixelSums
from ..storage import LocalStore, ObjectStore, Store, open_store

__all__ = ["convert"]



class ConvertWorker:
    """Converts whole shards of one source dataset (runs in a worker process)."""

    def __init__(self, src: Store, src_format: str, dst: Store, record: BuildRecord):
        options = src.storage_options if isinstance(src, ObjectStore) else None
        self.src = open_dataset(src.url, format=src_format, storage_options=options)
        self.src_store = src
        self.store = dst
        self.record = record
        self.fmt = record.formats[0]
        self.names = member_names(record.config)  # field -> member suffix, as the source stores them

    def flush(self) -> None:
        """Nothing to wait for: shards are committed inline."""

    def close(self) -> None:
        self.src.close()

    def ensure(self, shard: int) -> list[tuple[Receipt, bool]]:
        rel = shard_name(shard, self.fmt)
        done = check_shard(self.store, rel, self.record.fingerprint)
        if done is not None:
            return [(done, False)]
        entry = self.src.shards[shard]
        source = load_receipt(self.src_store, entry.name)
        if source is None:
            raise FgbgError(f"{self.src_store.url}/{entry.name}: source shard has no receipt; verify it first")
        meta = shard_meta(self.record, shard, entry.first, entry.count)
        pixels = writer_class(self.fmt).needs_pixels(meta)
        samples = (self._sample(key, members, pixels) for key, members in self.src.iter_members(shard))
        stats = {name: PixelSums.from_record(sums) for name, sums in source.stats.items()}
        return [(r, True) for r in commit_shard(self.store, self.record, meta, [self.fmt], samples, stats)]

    def _sample(self, key: str, members: dict[str, Any], pixels: bool) -> EncodedSample:
        # members in the order builds write them (image, mask, depth, instances, meta): identical shards
        files = {self.names[f]: members[f] for f in MEMBER_OF_FIELD if isinstance(members.get(f), bytes)}
        arrays = {}
        if pixels:
            arrays = {f: v if not isinstance(v, bytes) else decode_member(f, v)
                      for f, v in members.items() if f != "meta"}
        return EncodedSample(key, files, arrays.get("image"), arrays.get("mask"), arrays.get("depth"),
                             arrays.get("instances"))


def _source_format(manifest: Manifest, to: str, layout: str, wanted: str | None) -> str:
    """Which copy of the source to read: one whose members can be copied as they are."""
    have: list[str] = list(manifest.shards)
    raw_src = [f for f in have if f == "hdf5" and manifest.hdf5_layout == "raw"]
    encoded_src = [f for f in have if f not in raw_src]
    needs_bytes = not (to == "hdf5" and layout == "raw")
    if wanted is not None:
        if wanted not in have:
            raise FgbgError(f"source has no {wanted} shards (it has {', '.join(have)})")
        if needs_bytes and wanted in raw_src:
            raise FgbgError("the source's HDF5 copy holds raw pixels; converting them to encoded bytes would "
                            "re-encode the JPEG (lossy); convert from its tar or encoded copy instead")
        return wanted
    if needs_bytes and not encoded_src:
        raise FgbgError("the source holds only raw-pixel HDF5 shards; converting them to encoded bytes would "
                        "re-encode the JPEG (lossy), so fgbg refuses; rebuild with --format instead")
    return (encoded_src or raw_src)[0]


def convert(
    src: str | Path, out: str | Path, to: str, *, hdf5_layout: str = "encoded", source_format: str | None = None,
    workers: int | None = None, progress: bool | None = None, storage_options: dict[str, Any] | None = None,
) -> BuildResult:
    """Write the samples of dataset ``src`` as a new dataset ``out`` in format ``to``."""
    t0 = time.monotonic()
    writer_class(to)
    if hdf5_layout not in HDF5_LAYOUTS:
        raise FgbgError(f"--hdf5-layout must be one of {', '.join(HDF5_LAYOUTS)}, got {hdf5_layout!r}")
    src_store = open_store(src, storage_options)
    manifest = read_manifest(src_store)  # shard and input names checked before any is opened
    source = record_from_manifest(manifest, f"{src_store.url}/{MANIFEST}")
    fmt = _source_format(manifest, to, hdf5_layout, source_format)
    store = open_store(out, storage_options)
    same = (isinstance(store, LocalStore) and isinstance(src_store, LocalStore)
            and store.root.resolve() == src_store.root.resolve()) or store.url == src_store.url
    if same:
        raise FgbgError(f"{out}: convert writes a new dataset; choose an --out other than the source")
    check_output(store)
    record = make_record(source.build_config, source.inputs, source.depth, [to], hdf5_layout,
                         manifest.totals.samples, source.index)
    store.create()
    with store.lock():
        if store.exists(BUILD_RECORD):
            existing = read_record(store)
            if existing.fingerprint != record.fingerprint:
                diffs = record_differences(existing, record) or ["fingerprint"]
                raise ConfigMismatchError(f"{out}: already holds another dataset ({'; '.join(diffs)})")
        store.remove_stale_temps()
        for entry in record.inputs.bg + record.inputs.fg:
            for rel in (entry.file, entry.mask_file, entry.depth_file):
                if rel is not None:
                    store.write_atomic(rel, src_store.read_bytes(rel))
        store.write_atomic(BUILD_RECORD, record.to_bytes())
        factory = functools.partial(ConvertWorker, src_store, fmt, store, record)
        return complete(store, record, local_runner(factory, workers), progress, None, t0,
                        desc=f"fgbg convert {fmt}->{to}")

