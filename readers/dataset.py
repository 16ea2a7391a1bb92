"""Opening a dataset from its manifest and reading samples back as NumPy arrays.

Every sample is a dict: ``key`` (str), ``image`` (H, W, 3 uint8 RGB), ``mask`` (H, W
uint8), ``depth`` (h, w uint8; absent for depth ``none``) and ``meta`` (the annotation,
``meta["index"]`` = key as int). ``iter(ds)`` reads shards sequentially in key order;
``ds[i]`` reads only sample ``i`` (tar: a seek to the offset recorded at build time;
HDF5: one slice). The same dict comes back from either format.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np

from .backgrounds import BACKGROUND, Backgrounds
from .decode import MAX_PIXELS, REDUCTIONS, DecodeError, decode_member
from .errors import DatasetError, MetadataError, ShardReadError
from .foregrounds import FOREGROUND, Foregrounds
from .formats import Member, ShardReader, reader_class
from .formats.tar import MAX_SPAN, TarShardReader
from .fs import CONNECTIONS, Location
from .readahead import BUDGET, ReadAhead
from .schema import Manifest, ShardEntry, members_digest, parse_manifest
from .stored import StoredInputs, annotation
from .stream import Stream, StreamSpec, worker_context
from .transform import SampleTransform

__all__ = ["Dataset", "DatasetError", "MetadataError", "ShardReadError", "open_dataset"]

MANIFEST = "manifest.json"
#: the fields made from the stored inputs (``inputs/``) rather than read from a shard member
_INPUT_FIELDS: dict[str, type[Backgrounds] | type[Foregrounds]] = {BACKGROUND: Backgrounds, FOREGROUND: Foregrounds}
# What reading a damaged or lying file can raise below the readers' own checks (h5py, zlib,
# OS errors on flaky storage...): always turned into a DatasetError naming shard and sample.
_READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError)


class Dataset:
    """A finished fgbg dataset (local folder), read through one of its formats."""

    def __init__(self, location: Location, manifest: Manifest, format: str | None = None,
                 fields: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS, check: bool = False,
                 decode: bool = True, reduce: int = 1, read_ahead: int = BUDGET):
        """``manifest``: the checked ``manifest.json`` (:func:`read_manifest`, or the one a
        builder is about to commit). ``check``: prove every sample read against its receipt's
        digest; ``decode``: False hands back members undecoded; ``reduce``: pixel fields at
        1/2, 1/4 or 1/8 of their size; ``read_ahead``: bytes a sequential remote read fetches
        ahead (see :func:`open_dataset`)."""
        if read_ahead < 0:
            raise DatasetError(f"read_ahead must be a number of bytes >= 0, got {read_ahead}")
        self.read_ahead = read_ahead
        if reduce not in REDUCTIONS:
            raise DatasetError(f"reduce must be one of {', '.join(map(str, REDUCTIONS))}, got {reduce!r}")
        if reduce != 1 and not decode:
            raise DatasetError("reduce applies when decoding; this dataset is opened with decode=False")
        self.decode = decode
        self.reduce = reduce
        self.location = location
        self.root = location.url
        self.metadata = manifest
        formats = list(self.metadata.shards)
        self.format = format or formats[0]
        if self.format not in formats:
            raise DatasetError(f"{self.root}: no {self.format} shards; this dataset has {', '.join(formats)}")
        available = tuple(self.metadata.fields)
        self.fields = tuple(fields) if fields is not None else available
        unknown = [f for f in self.fields if f not in (*available, *_INPUT_FIELDS)]
        if unknown:
            raise DatasetError(f"{self.root}: no field(s) {', '.join(unknown)}; this dataset has "
                               f"{', '.join(available)} (and {BACKGROUND}, {FOREGROUND}: the stored inputs as used)")
        self.max_pixels = max_pixels
        self.check = check
        # ``background``, ``foreground`` are no members: the annotation names them (``meta`` is
        # read for them), inputs/ holds them
        self.stored_fields: dict[str, StoredInputs] = {f: _INPUT_FIELDS[f](location, manifest, max_pixels)
                                                for f in self.fields if f in _INPUT_FIELDS}
        self.backgrounds = cast(Backgrounds | None, self.stored_fields.get(BACKGROUND))
        self.foregrounds = cast(Foregrounds | None, self.stored_fields.get(FOREGROUND))
        members = tuple(f for f in self.fields if f not in _INPUT_FIELDS)
        if self.stored_fields and "meta" not in members:
            members += ("meta",)
        # a checked read needs every member (the digest covers them all); only ``fields`` are decoded
        self.read_fields = available if check else members
        self._member_names: dict[str, str] = {f: spec.member for f, spec in self.metadata.fields.items()}
        self.shards: list[ShardEntry] = self.metadata.shards[self.format]
        self._firsts = [s.first for s in self.shards]
        self.key_width = self.metadata.key_width
        reader = reader_class(self.format)
        self._readers: list[ShardReader] = [reader(location, s, self.key_width, self._member_names)
                                            for s in self.shards]
        for r in self._readers:
            r.views = not decode

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as plain JSON (for display and export; code reads :attr:`metadata`)."""
        plain: dict[str, Any] = msgspec.to_builtins(self.metadata)
        return plain

    @property
    def statistics(self) -> dict[str, dict[str, list[float]]]:
        """Per field: ``mean`` and ``std`` per channel on the [0, 1] scale (exact, from the build)."""
        return {name: {"mean": list(s.mean), "std": list(s.std)} for name, s in self.metadata.statistics.items()}

    def __len__(self) -> int:
        return self.metadata.totals.samples

    def __repr__(self) -> str:
        return f"Dataset({self.root!r}, format={self.format!r}, samples={len(self)}, shards={len(self.shards)})"

    def close(self) -> None:
        """Close the shard files this dataset holds open (reads reopen them on demand)."""
        for r in self._readers:
            r.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- decoding -----------------------------------------------------------------------
    def _prove(self, reader: ShardReader, key: str, members: dict[str, Member]) -> None:
        """``check`` mode: the members' digest must be the one the receipt recorded at build time."""
        digest = members_digest(members, self._member_names)
        if digest is None:
            return  # raw HDF5 pixels: every chunk carries a Fletcher-32 checksum that HDF5 checks
        digests = reader.receipt().digests
        if not digests:
            raise ShardReadError(f"{reader.path}: its receipt has no per-sample digests (written by an older fgbg); "
                                 "read it without check=True and prove it whole with fgbg verify")
        if digest != digests[int(key) - reader.entry.first]:
            raise ShardReadError(f"{reader.path}: sample {key}: bytes differ from the receipt's digest "
                                 "(damaged since it was built; fgbg repair rebuilds it)")

    def _decode(self, reader: ShardReader, key: str, members: dict[str, Member]) -> dict[str, Any]:
        if self.check:
            self._prove(reader, key, members)
        elif not self.decode and not self.stored_fields and len(members) == len(self.fields):
            raw = cast(dict[str, Any], members)  # the reader kept exactly these: its fresh dict becomes the sample
            raw["key"] = key
            return raw
        sample: dict[str, Any] = {"key": key}
        annotated: dict[str, Any] | None = None
        for field in self.fields:
            stored = self.stored_fields.get(field)
            if stored is not None:
                where = f"{reader.path}: sample {key}"
                if annotated is None:  # one parse of the annotation for every input field
                    annotated = annotation(members.get("meta"), key, where)
                sample[field] = stored.value(annotated, self.decode, self.reduce, where)
                continue
            if field not in members:
                raise DatasetError(f"{reader.path}: sample {key} has no {field} member")
            value = members[field]
            if self.decode and isinstance(value, bytes):
                try:
                    value = decode_member(field, value, self.max_pixels, self.reduce)
                except DecodeError as e:
                    raise DatasetError(f"{reader.path}: sample {key} {field}: {e}") from None
            sample[field] = value
        meta = sample.get("meta")
        if isinstance(meta, dict) and meta.get("index") != int(key):  # a decoded annotation names its sample
            raise DatasetError(f"{reader.path}: sample {key}: its annotation is sample {meta.get('index')!r}'s "
                               "(members of another sample under this key)")
        return sample

    # -- sequential ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        ahead = self.read_ahead_for((s, 0, shard.count) for s, shard in enumerate(self.shards))
        try:
            for s in range(len(self.shards)):
                yield from self.iter_shard(s, ahead)
        finally:
            if ahead is not None:
                ahead.close()

    def read_ahead_for(self, runs: Iterator[tuple[int, int, int]]) -> ReadAhead | None:
        """Read-ahead over ``runs`` -- (shard position, first local sample, stop) in the order
        they will be read -- for a remote dataset whose format is read by windows; None
        where there is nothing to gain (local files, HDF5, ``read_ahead=0`` without a cache)."""
        loc = self.location
        if not loc.remote or not isinstance(self._readers[0] if self._readers else None, TarShardReader):
            return None
        if self.read_ahead == 0 and loc.cache is None:
            return None
        readers = self._readers
        return ReadAhead(loc, ((cast(TarShardReader, readers[s]), lo, hi) for s, lo, hi in runs), self.read_ahead)

    def iter_shard(self, s: int, ahead: ReadAhead | None = None) -> Iterator[dict[str, Any]]:
        """Decoded samples of shard ``s`` (its position in the manifest) in key order."""
        reader = self._readers[s]
        for key, members in self.iter_members(s, ahead=ahead):
            yield self._decode(reader, key, members)

    def iter_members(self, s: int, start: int = 0, stop: int | None = None,
                     ahead: ReadAhead | None = None) -> Iterator[tuple[str, dict[str, Member]]]:
        """Undecoded members of samples ``start..stop-1`` of shard ``s`` (bytes, or arrays for
        the raw HDF5 layout); ``ahead``: the read-ahead these reads were planned in."""
        reader = self._readers[s]
        last = None
        if ahead is not None:
            ahead.advance()
        try:
            for key, members in reader.iter_members(self.read_fields, start, stop, ahead):
                last = key
                yield key, members
        except DatasetError:
            raise
        except _READ_ERRORS as e:
            after = f" after sample {last}" if last else ""
            raise ShardReadError(f"{reader.path}: unreadable{after} ({type(e).__name__}: {e})") from None

    # -- training streams ---------------------------------------------------------------
    def stream(self, shuffle: bool = False, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
               buffer: int = 2000, partial: str = "pad", worker: int | None = None, workers: int | None = None,
               resume: dict[str, Any] | None = None, normalize: bool = False,
               resize: tuple[int, int] | None = None) -> Stream:
        """This consumer's samples for one epoch (see :mod:`readers.stream`).

        Inside a PyTorch DataLoader worker, ``worker``/``workers`` are detected; give them
        explicitly elsewhere. ``resume`` is a ``state_dict()`` of an interrupted stream.
        """
        if worker is None or workers is None:
            worker, workers = worker_context()
        spec = StreamSpec(shuffle, seed, epoch, rank, world, worker, workers, buffer, partial)
        if (normalize or resize) and not self.decode:
            raise DatasetError("normalize/resize need decoded samples; this dataset was opened with decode=False")
        transform = SampleTransform(self.statistics, normalize, resize) if normalize or resize else None
        return Stream(self, spec, resume, transform)

    def tf_dataset(self, batch_size: int, **kwargs: Any) -> Any:
        """A batched ``tf.data.Dataset`` (see :func:`readers.adapters.tf_dataset`)."""
        from .adapters import tf_dataset

        return tf_dataset(self, batch_size, **kwargs)

    def torch_dataset(self, **kwargs: Any) -> Any:
        """A ``torch.utils.data.IterableDataset`` (see :func:`readers.adapters.torch_dataset`)."""
        from .adapters import torch_dataset

        return torch_dataset(self, **kwargs)

    # -- random access ------------------------------------------------------------------
    def _position(self, index: int) -> int:
        n = self.metadata.totals.samples
        if type(index) is not int:
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise TypeError(f"sample index must be an int, got {type(index).__name__}")
            index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample {index} out of range (dataset has {n})")
        return index

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = self._position(index)
        s = bisect.bisect_right(self._firsts, g) - 1
        reader = self._readers[s]
        try:
            key, members = reader.read_members(g - self._firsts[s], self.read_fields)
        except DatasetError:
            raise
        except _READ_ERRORS as e:
            raise ShardReadError(f"{reader.path}: sample {reader.key(g - self._firsts[s])} unreadable "
                                 f"({type(e).__name__}: {e})") from None
        return self._decode(reader, key, members)

    def _fetch_many(self, by_shard: dict[int, list[int]]) -> dict[int, list[bytes]]:
        """On object storage, every read a batch needs across all its shards, fetched at once
        (concurrent ranged GETs: one round trip for the batch, not one per range); locally
        nothing (each shard reads its ranges itself, from the page cache)."""
        if not self.location.remote:
            return {}
        try:
            unread = [s for s in by_shard
                      if isinstance(self._readers[s], TarShardReader) and self._readers[s]._receipt is None]
            if len(unread) > 1:  # the receipts the plans need: read together, not a round trip each
                with ThreadPoolExecutor(min(len(unread), self.location.connections)) as ex:
                    for _ in ex.map(lambda s: self._readers[s].receipt(), unread):
                        pass
            plans = {s: runs for s, gs in by_shard.items()
                     if (runs := self._readers[s].plan_many([g - self._firsts[s] for g in gs]))}
            ranges = [(self._readers[s].rel, lo, hi) for s, runs in plans.items() for _, lo, hi in runs
                      if hi - lo <= MAX_SPAN]
            if not ranges:
                return {}
            data = iter(self.location.read_ranges(ranges))
        except DatasetError:
            raise
        except _READ_ERRORS as e:
            raise ShardReadError(f"{self.root}: batch of {sum(map(len, by_shard.values()))} samples unreadable "
                                 f"({type(e).__name__}: {e})") from None
        return {s: [next(data) if hi - lo <= MAX_SPAN else b"" for _, lo, hi in runs] for s, runs in plans.items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """:meth:`get_many` under the name PyTorch's DataLoader (2.1+) calls on a map-style
        dataset for each batch its sampler draws: a DataLoader over ``ds`` itself fetches a
        batch with one concurrent request per coalesced range, not one request per sample.
        Undecoded members come as bytes, not memoryviews: DataLoader workers pickle them."""
        return [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in s.items()} for s in self.get_many(indices)]

    def get_many(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Samples ``indices`` (any order, repeats allowed), in that order. Reads are grouped
        by shard, sorted and coalesced: neighbouring samples come in one read (one ranged
        request on object storage), which is what a shuffled batch sampler wants."""
        wanted = [self._position(i) for i in indices]
        by_shard: dict[int, list[int]] = {}
        for g in sorted(set(wanted)):
            by_shard.setdefault(bisect.bisect_right(self._firsts, g) - 1, []).append(g)
        got: dict[int, dict[str, Any]] = {}
        fetched = self._fetch_many(by_shard)
        for s, gs in by_shard.items():
            reader, first = self._readers[s], self._firsts[s]
            try:
                read = reader.read_many([g - first for g in gs], self.read_fields, fetched.get(s))
            except DatasetError:
                raise
            except _READ_ERRORS as e:
                keys = ", ".join(reader.key(g - first) for g in gs[:3]) + (", ..." if len(gs) > 3 else "")
                raise ShardReadError(f"{reader.path}: sample(s) {keys} unreadable ({type(e).__name__}: {e})") from None
            for g, (key, members) in zip(gs, read, strict=True):
                got[g] = self._decode(reader, key, members)
        out, seen = [], set()
        for g in wanted:  # a repeated index gets its own dict (the arrays are shared)
            out.append(dict(got[g]) if g in seen else got[g])
            seen.add(g)
        return out


def read_manifest(location: Location) -> Manifest:
    """``manifest.json`` of the dataset at ``location``, parsed and checked."""
    path = location.path(MANIFEST)
    try:
        data = location.read_bytes(MANIFEST)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no manifest; not a finished fgbg dataset") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read ({e})") from None
    return parse_manifest(data, path)


def open_dataset(url: str | Path, format: str | None = None, fields: Sequence[str] | None = None,
                 max_pixels: int = MAX_PIXELS, storage_options: dict[str, Any] | None = None,
                 cache_dir: str | Path | None = None, check: bool = False, decode: bool = True,
                 reduce: int = 1, cache_limit: int | None = None, read_ahead: int = BUDGET,
                 connections: int = CONNECTIONS) -> Dataset:
    """Open the dataset at ``url``: a folder or an fsspec URL holding ``manifest.json``.

    ``format`` picks ``"tar"`` or ``"hdf5"`` when the dataset holds both (default: the
    first format it was built with). ``storage_options`` go to fsspec (endpoint,
    credentials); with ``cache_dir`` remote shards are cached on local disk on first read.
    ``check=True`` proves every sample as it is read against the digest its shard's receipt
    recorded at build time, so damage on flaky storage is a ``DatasetError`` naming the
    sample instead of silently wrong data (cost: one sha256 of each sample's bytes, and
    every member is read even when ``fields`` asks for fewer).

    ``decode=False`` hands back each field's stored bytes (``image`` JPEG, ``mask``/``depth``/
    ``instances`` PNG, or ``.npy.zst`` with ``--members zstd``, ``meta`` JSON; the raw HDF5
    layout's arrays as they are) for decoders of your own -- GPU decoding, a different
    library -- in every access path: iteration, ``ds[i]``, :meth:`Dataset.get_many` and
    streams (``normalize``/``resize`` need decoded samples).

    ``fields`` may also name ``background``: the stored background each composite was made
    from (``inputs/bg/NNNN.png``, named by the annotation), and ``foreground``: the person as
    pasted, on a transparent RGBA layer the size of the composite -- (H, W, 4); with
    ``--people`` (MAX, H, W, 4), one layer per person of ``meta.people`` (see
    :mod:`readers.foregrounds`). Their files are proven against the manifest's sha256 before
    their first use in each process and cached decoded (bounded).

    ``reduce=2`` (or 4, 8) decodes every pixel field at that fraction of its stored size: the
    JPEG composite in the DCT domain (libjpeg's scaled decoding: a fraction of the work, not
    a full decode then a resize), the mask by nearest neighbour, depth by area. These pixels
    differ from a full decode resized afterwards; ``reduce=1`` (default) is the stored size.
    """
    location = Location(url, storage_options, cache_dir, cache_limit, connections)
    return Dataset(location, read_manifest(location), format, fields, max_pixels, check, decode, reduce, read_ahead)
