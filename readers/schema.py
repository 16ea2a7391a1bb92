"""The dataset's metadata as typed, validated records: the one place untrusted JSON becomes data.

A dataset's own files (manifest, receipts, HDF5 attributes) are input like any image: a
hand edit, a bad copy or a hostile file must fail here, once, with one message naming the
file -- never later as an ``IndexError`` deep in a reader, and never by allocating what a
number in a file asks for. So every file is *parsed* into frozen records (msgspec: typed
decoding with constraints, ~25 ms to import against pydantic's ~110 ms, which matters for
every DataLoader worker), then checked across fields (counts add up, ``first`` values are
contiguous, a shard is named ``shards/NNNNNN.<ext>`` and nothing else), and finally against
facts -- a tar shard of B bytes cannot hold more than B / 2048 samples, since every sample
has at least a JPEG and a JSON member of one header block and one data block each.

Readers own this module because they are the consumers of untrusted files; the builder
validates what it reads back (receipts, manifests) through the same records. The JSON Schemas
published in ``docs/schema/`` are generated from these records (a test keeps them equal).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from .errors import MetadataError

__all__ = [
    "EXTENSIONS",
    "INDEX_FILES",
    "MAX_KEY_WIDTH",
    "MEMBERS",
    "MEMBER_CHOICES",
    "MIN_TAR_SAMPLE_BYTES",
    "SUFFIX_FIELD",
    "ZSTD_MEMBERS",
    "BuildRecordSchema",
    "DecoderShape",
    "DepthSource",
    "FieldSpec",
    "Hdf5Attributes",
    "InputEntry",
    "Manifest",
    "MetadataError",
    "PixelSumsRecord",
    "ReceiptRecord",
    "ShardEntry",
    "Statistic",
    "check_offsets",
    "decode_manifest",
    "format_of",
    "format_version_of",
    "index_file",
    "json_schemas",
    "manifest_problems",
    "max_samples",
    "members_digest",
    "parse_build_record",
    "parse_hdf5_attributes",
    "parse_manifest",
    "parse_receipt",
    "sample_digest",
    "shard_position",
]

MAX_KEY_WIDTH = 18  # 10**18 samples: more than any dataset; keys stay short strings
MIN_TAR_SAMPLE_BYTES = 2048  # a sample's JPEG and JSON members: a header block and a data block each
MIN_TARZST_SAMPLE_BYTES = 64  # a sample's zstd frame: its JPEG alone (incompressible) is hundreds of bytes
MIN_HDF5_SAMPLE_BYTES = 8  # a sample's key in /keys is at least 8 bytes (key width >= 8 when built)
_MAX_COUNT = 10**12  # a syntactic ceiling only; the real bound comes from the shard's size
_MAX_DIM = 1 << 15

Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
NonNegative = Annotated[int, Meta(ge=0, le=_MAX_COUNT)]
# totals that grow with samples times bytes or pixels: a 100M-sample dataset holds 1.5e12
# bytes and 5e12 composite pixels, past the count ceiling (found by the metadata-scale check)
Total = Annotated[int, Meta(ge=0, le=2**62)]
Dim = Annotated[int, Meta(ge=1, le=_MAX_DIM)]
FormatName = Literal["tar", "hdf5", "tarzst"]
FieldName = Literal["image", "mask", "depth", "instances", "meta"]
EXTENSIONS = {"tar": ".tar", "hdf5": ".h5", "tarzst": ".tar.zst"}
MEMBERS = {"image": "jpg", "mask": "mask.png", "depth": "depth.png", "instances": "instances.png", "meta": "json"}
#: 1: every dataset fgbg writes without the options below; 2: with --people (an ``instances``
#: member); 3: with --index parquet (``annotations.parquet``); 4: with --members zstd (grey fields
#: as zstd-compressed .npy). A dataset is the version of its newest feature (format_version_of).
FormatVersion = Literal[1, 2, 3, 4]
IndexKind = Literal["parquet"]  # absent: annotations.csv
INDEX_FILES = {None: "annotations.csv", "parquet": "annotations.parquet"}


def index_file(kind: str | None) -> str:
    """The annotations index's file name for a record's or manifest's ``index``."""
    return INDEX_FILES["parquet" if kind == "parquet" else None]
#: ``--members zstd``: the grey fields as zstd-compressed ``.npy`` instead of PNG (format 4)
ZSTD_MEMBERS = {"mask": "mask.npy.zst", "depth": "depth.npy.zst", "instances": "instances.npy.zst"}
#: the suffixes a field may be stored under, PNG (or the only one) first
MEMBER_CHOICES = {f: (s, *([ZSTD_MEMBERS[f]] if f in ZSTD_MEMBERS else [])) for f, s in MEMBERS.items()}
SUFFIX_FIELD = {s: f for f, choices in MEMBER_CHOICES.items() for s in choices}
_SUFFIX_ORDER = tuple(s for choices in MEMBER_CHOICES.values() for s in choices)
_SUFFIX_LABELS = tuple((s, s.encode() + b"\0") for s in _SUFFIX_ORDER)  # what a digest hashes before each member


def format_version_of(instances: bool, parquet: bool, zstd_members: bool) -> int:
    """The format version a dataset's features make: the newest feature's (1 with none)."""
    return max(1, 2 if instances else 1, 3 if parquet else 1, 4 if zstd_members else 1)
_SHARD_NAME = re.compile(r"shards/([0-9]{6,12})(\.tar|\.h5|\.tar\.zst)")


def shard_position(rel: str) -> tuple[str, int] | None:
    """(format, number) of a shard file named ``shards/NNNNNN.<ext>``; None for any other name."""
    m = _SHARD_NAME.fullmatch(rel)
    return (format_of(rel), int(m[1])) if m else None


class ShardEntry(Struct, frozen=True, forbid_unknown_fields=True):
    """One shard of one format as the manifest lists it."""

    name: Annotated[str, Meta(pattern=r"^shards/[0-9]{6,12}\.(tar|h5|tar\.zst)$")]
    first: NonNegative
    count: NonNegative
    bytes: NonNegative
    sha256: Sha256


class FieldSpec(Struct, frozen=True, omit_defaults=True):
    member: str
    shape: Annotated[list[Dim], Meta(min_length=2, max_length=3)] | None = None


class Totals(Struct, frozen=True):
    samples: NonNegative
    shards: NonNegative
    bytes: dict[FormatName, Total]


class Statistic(Struct, frozen=True):
    mean: Annotated[list[float], Meta(min_length=1, max_length=4)]
    std: Annotated[list[float], Meta(min_length=1, max_length=4)]
    pixels: Total | None = None


class AnnotationsInfo(Struct, frozen=True):
    file: Literal["annotations.csv", "annotations.parquet"]
    columns: list[str]
    sha256: Sha256


class InputEntry(Struct, frozen=True, omit_defaults=True):
    """One stored input as the build record lists it (imported datasets may lack files)."""

    index: NonNegative
    name: str
    sha256: Sha256 | None = None
    file: Annotated[str, Meta(pattern=r"^inputs/(bg|fg)/[0-9]{4,}\.png$")] | None = None
    file_sha256: Sha256 | None = None
    mask_file: Annotated[str, Meta(pattern=r"^inputs/fg_mask/[0-9]{4,}\.png$")] | None = None
    base_size: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    stored_size: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    #: --depth-layers: the model's prediction for this background (float32 .npy) and its sha256
    depth_file: Annotated[str, Meta(pattern=r"^inputs/bg_depth/[0-9]{4,}\.npy$")] | None = None
    depth_sha256: Sha256 | None = None


class DecoderShape(Struct, frozen=True, forbid_unknown_fields=True):
    """The decoder variant a DenseDepth weights file implies (read from the file, see its loader)."""

    conv2: Annotated[int, Meta(ge=1, le=1 << 16)]
    up: Annotated[list[Annotated[int, Meta(ge=1, le=1 << 16)]], Meta(max_length=16)]
    leaky_after_a: bool
    leaky_after_b: bool
    alpha: float


class DepthSource(Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What made the depth maps (``depth`` in the build record and manifest): the backend and,
    for a learned model, what identifies its weights and how it was run. Two builds are the
    same dataset only if these are equal, so a record of the run is compared whole."""

    backend: Literal["none", "plane", "densedepth", "onnx", "imported"]
    size: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    weights_file: str | None = None
    weights_sha256: Sha256 | None = None
    keras_version: str | None = None
    parameters: NonNegative | None = None
    decoder: DecoderShape | None = None
    input: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    dtype: Literal["float32", "float16", "bfloat16", "int8"] | None = None
    runtime: Literal["onnxruntime", "openvino"] | None = None  # absent: TensorFlow (the reference)
    preset: str | None = None  # onnx: the model convention it was fed by


Segment = Annotated[list[Annotated[list[NonNegative], Meta(min_length=2, max_length=2)]],
                    Meta(min_length=2, max_length=2)]


class Manifest(Struct, frozen=True):
    """``manifest.json``: the commit point. Build settings (``config``, ``inputs``, ``depth``,
    ``tool``) are kept as JSON objects here: the builder owns their meaning; readers only need
    the shards, fields, totals and statistics, which are typed and checked."""

    format_version: FormatVersion
    key_width: Annotated[int, Meta(ge=1, le=MAX_KEY_WIDTH)]
    fields: dict[FieldName, FieldSpec]
    shards: Annotated[dict[FormatName, list[ShardEntry]], Meta(min_length=1)]
    totals: Totals
    statistics: dict[str, Statistic]
    annotations: AnnotationsInfo
    config: dict[str, Any]
    inputs: dict[Literal["bg", "fg"], list[InputEntry]]  # file names checked: they are opened
    tool: dict[str, str]
    fingerprint: Sha256
    depth: DepthSource
    formats: Annotated[list[FormatName], Meta(min_length=1, max_length=3)]
    hdf5_layout: Literal["encoded", "raw"] = "encoded"
    segments: list[Segment] | None = None
    lineage: list[Sha256] | None = None
    left_out: list[str] | None = None
    index: IndexKind | None = None


class BuildRecordSchema(Struct, frozen=True, forbid_unknown_fields=True):
    """``build.json``: what determines every byte (docs/FORMAT.md §3). The builder owns the
    meaning of ``config`` and ``depth`` (checked by its ``BuildConfig``); the rest is typed here."""

    format_version: FormatVersion
    config: dict[str, Any]
    fingerprint: Sha256
    formats: Annotated[list[FormatName], Meta(min_length=1, max_length=3)]
    inputs: dict[Literal["bg", "fg"], list[InputEntry]]
    key_width: Annotated[int, Meta(ge=1, le=MAX_KEY_WIDTH)]
    tool: dict[str, str]
    depth: DepthSource
    hdf5_layout: Literal["encoded", "raw"] = "encoded"
    segments: list[Segment] | None = None
    lineage: list[Sha256] | None = None
    left_out: list[str] | None = None
    index: IndexKind | None = None


def parse_build_record(data: bytes, where: str = "build.json") -> BuildRecordSchema:
    """``build.json`` bytes -> a checked record (types, ranges, input file names inside the dataset)."""
    r: BuildRecordSchema = _decode(data, BuildRecordSchema, where)
    problems = _input_problems(r.inputs)
    if problems:
        raise MetadataError(f"{where}: " + "; ".join(problems[:5]))
    return r


def _input_problems(inputs: dict[Any, list[InputEntry]]) -> list[str]:
    """Stored inputs are numbered by position (``inputs/bg/0007.png`` is input 7)."""
    return [f"inputs.{kind}[{i}] has index {e.index}"
            for kind, entries in inputs.items() for i, e in enumerate(entries) if e.index != i]


class PixelSumsRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """Exact integer sums of one field's pixels in one shard (statistics are merged from them)."""

    channels: Annotated[int, Meta(ge=1, le=4)]
    count: NonNegative
    sum: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(min_length=1, max_length=4)]
    sumsq: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(min_length=1, max_length=4)]

    def __post_init__(self) -> None:
        if len(self.sum) != self.channels or len(self.sumsq) != self.channels:
            raise ValueError(f"{self.channels} channels but {len(self.sum)} sums and {len(self.sumsq)} sums of squares")


DIGEST_HEX = 32  # 128 bits of sha256: integrity, not secrecy


def sample_digest(members: dict[str, bytes]) -> str:
    """The per-sample digest a receipt records: sha256 over the sample's encoded members in
    field order (image, mask, depth, instances, meta), each as ``suffix NUL length data``, cut to 128 bits.
    ``members`` maps tar member suffixes (``jpg``, ``mask.png``...) to their bytes; the same
    bytes sit in a tar shard and in an encoded HDF5 shard, so the digest is format-independent."""
    return _digest((label, members[suffix]) for suffix, label in _SUFFIX_LABELS if suffix in members)


def members_digest(members: dict[str, Any], names: Mapping[str, str] = MEMBERS) -> str | None:
    """:func:`sample_digest` of a sample as readers return it (field -> member; ``names``: the
    dataset's member suffix per field); None when a member is decoded pixels (raw-layout HDF5:
    its chunks carry Fletcher-32 checksums instead)."""
    labelled = [(label, members[field]) for field, label in _field_labels(tuple(names.items())) if field in members]
    if len(labelled) != len(members):
        raise KeyError(f"members {sorted(set(members) - set(names))} have no suffix")
    if not all(isinstance(data, (bytes, memoryview)) for _, data in labelled):
        return None
    return _digest(labelled)


def _digest(parts: Iterable[tuple[bytes, Any]]) -> str:
    """The digest formula, once: each member as ``label length(8 bytes, big-endian) data``."""
    h = hashlib.sha256()
    for label, data in parts:
        h.update(label + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:DIGEST_HEX]


@functools.lru_cache(maxsize=64)
def _field_labels(names: tuple[tuple[str, str], ...]) -> tuple[tuple[str, bytes], ...]:
    """(field, the label sample_digest hashes before its member) in digest order, for a
    dataset's field -> suffix ``names``."""
    field_of = {suffix: field for field, suffix in names}
    return tuple((field_of[suffix], label) for suffix, label in _SUFFIX_LABELS if suffix in field_of)


class ReceiptRecord(Struct, frozen=True):
    """``shards/NNNNNN.<ext>.json``: the proof a shard is complete (see docs/FORMAT.md §5)."""

    shard: NonNegative
    name: Annotated[str, Meta(pattern=r"^shards/[0-9]{6,12}\.(tar|h5|tar\.zst)$")]
    first: NonNegative
    count: NonNegative
    bytes: NonNegative
    sha256: Sha256
    fingerprint: Sha256
    stats: dict[str, PixelSumsRecord]
    offsets: list[NonNegative] = []
    format_version: Literal[1] = 1
    digests: list[Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]] = []  # one per sample (absent: older receipts)


class Hdf5Attributes(Struct, frozen=True):
    """The root attributes of an ``.h5`` shard (docs/FORMAT.md §8)."""

    format: Literal["fgbg"]
    format_version: FormatVersion
    layout: Literal["encoded", "raw"]
    shard: NonNegative
    first: NonNegative
    count: NonNegative
    key_width: Annotated[int, Meta(ge=1, le=MAX_KEY_WIDTH)]
    fields: list[FieldName]
    image_size: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    depth_size: Annotated[list[Dim], Meta(min_length=2, max_length=2)] | None = None
    compression: str = "none"


def parse_hdf5_attributes(attrs: Any, where: str) -> Hdf5Attributes:
    """h5py's root attributes (NumPy scalars and arrays) -> checked :class:`Hdf5Attributes`."""
    plain: dict[str, Any] = {}
    for name in Hdf5Attributes.__struct_fields__:
        if name in attrs:
            value = attrs[name]
            if hasattr(value, "tolist"):
                value = value.tolist()
            plain[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    try:
        return msgspec.convert(plain, Hdf5Attributes)
    except msgspec.ValidationError as e:
        raise MetadataError(f"{where}: HDF5 attributes: {e}") from None


def _decode(data: bytes, kind: type[Any], where: str) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as e:
        raise MetadataError(f"{where}: {e}") from None
    except msgspec.DecodeError as e:
        raise MetadataError(f"{where}: not valid JSON ({e})") from None


def format_of(name: str) -> str:
    """The shard format of a (pattern-checked) shard file name: by its extension."""
    return "tarzst" if name.endswith(".tar.zst") else "tar" if name.endswith(".tar") else "hdf5"


def max_samples(fmt: str, size: int) -> int:
    """The most samples a shard file of ``size`` bytes can hold: the bound every count in a
    file is held to (counts are claims; sizes are facts)."""
    least = {"tar": MIN_TAR_SAMPLE_BYTES, "tarzst": MIN_TARZST_SAMPLE_BYTES}.get(fmt, MIN_HDF5_SAMPLE_BYTES)
    return size // least


def manifest_problems(m: Manifest) -> list[str]:
    """What is wrong across a decoded manifest's fields (counts that do not add up, shards
    misnamed or out of place, totals that are not the sums...): empty when it is sound.
    ``verify`` reports these and goes on checking the shards; readers refuse the manifest."""
    problems: list[str] = []
    layout: list[tuple[int, int]] | None = None
    for fmt, entries in m.shards.items():
        expected_first = 0
        for i, e in enumerate(entries):
            number, ext = _SHARD_NAME.fullmatch(e.name).groups()  # type: ignore[union-attr]  # pattern checked
            if ext != EXTENSIONS[fmt]:
                problems.append(f"shards.{fmt}[{i}]: {e.name} is not a {fmt} shard")
            if int(number) != i:
                problems.append(f"shards.{fmt}[{i}]: named {e.name}, expected number {i:06d}")
            if e.first != expected_first:
                problems.append(f"shards.{fmt}[{i}]: first is {e.first}, the shards before it end at {expected_first}")
            if e.count > max_samples(fmt, e.bytes):
                problems.append(f"shards.{fmt}[{i}]: {e.count} samples cannot fit in {e.bytes} bytes")
            expected_first = e.first + e.count
        if expected_first != m.totals.samples:
            problems.append(f"shards.{fmt}: hold {expected_first} samples, totals say {m.totals.samples}")
        if len(entries) != m.totals.shards:
            problems.append(f"shards.{fmt}: {len(entries)} shards, totals say {m.totals.shards}")
        if m.totals.bytes.get(fmt) != sum(e.bytes for e in entries):
            problems.append(f"totals.bytes.{fmt} is not the sum of its shards' bytes")
        ranges = [(e.first, e.count) for e in entries]
        if layout is not None and ranges != layout:
            problems.append(f"shards.{fmt}: the formats' shards do not hold the same samples")
        layout = ranges
    if m.totals.samples and len(str(m.totals.samples - 1)) > m.key_width:
        problems.append(f"key_width {m.key_width} is too small for {m.totals.samples} samples")
    for name, spec in m.fields.items():
        if spec.member not in MEMBER_CHOICES[name]:
            problems.append(f"fields.{name}: member {spec.member!r}, expected "
                            f"{' or '.join(map(repr, MEMBER_CHOICES[name]))}")
    if "image" not in m.fields or "meta" not in m.fields:
        problems.append("fields: image and meta are required")
    zstd = any(spec.member.endswith(".npy.zst") for spec in m.fields.values())
    made = format_version_of("instances" in m.fields, m.index == "parquet", zstd)
    if m.format_version != made:
        problems.append(f"format_version is {m.format_version}, its features make {made} "
                        f"(instances: 2, parquet index: 3, zstd members: 4)")
    if m.annotations.file != index_file(m.index):
        problems.append(f"annotations.file is {m.annotations.file!r}, the index is {index_file(m.index)!r}")
    problems += _input_problems(m.inputs)
    return problems


def decode_manifest(data: bytes, where: str = "manifest.json") -> Manifest:
    """``manifest.json`` bytes -> a :class:`Manifest` whose types and ranges are checked (names
    are safe to open), its cross-field rules not yet (:func:`manifest_problems`)."""
    m: Manifest = _decode(data, Manifest, where)
    return m


def parse_manifest(data: bytes, where: str = "manifest.json") -> Manifest:
    """``manifest.json`` bytes -> a checked :class:`Manifest`, or :class:`MetadataError`."""
    m = decode_manifest(data, where)
    problems = manifest_problems(m)
    if problems:
        raise MetadataError(f"{where}: " + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    return m


def check_offsets(offsets: list[int], count: int, size: int, where: str, fmt: str = "tar") -> None:
    """A tar receipt's sample offsets: one per sample, the first at 0, strictly increasing by
    at least a sample's minimum size, on 512-byte blocks (``.tar.zst``: frame starts, on any
    byte), and inside the file."""
    if len(offsets) != count:
        raise MetadataError(f"{where}: {len(offsets)} offsets for {count} samples")
    if offsets and offsets[0] != 0:
        raise MetadataError(f"{where}: the first sample must start at byte 0, not {offsets[0]}")
    least, block = (MIN_TAR_SAMPLE_BYTES, 512) if fmt == "tar" else (MIN_TARZST_SAMPLE_BYTES, 1)
    previous = -least
    for i, offset in enumerate(offsets):
        if offset % block or offset - previous < least or offset + least > size:
            raise MetadataError(f"{where}: offset {i} ({offset}) is not a sample start inside the "
                                f"{size}-byte shard")
        previous = offset


def parse_receipt(data: bytes, where: str, *, size: int | None = None, fmt: str | None = None) -> ReceiptRecord:
    """A receipt's bytes -> a checked :class:`ReceiptRecord`: its count and offsets are held to
    what its shard's bytes can hold -- the shard's real ``size`` (a fact) when given, which must
    then be the size the receipt describes."""
    r: ReceiptRecord = _decode(data, ReceiptRecord, where)
    if not where.endswith(r.name + ".json"):
        raise MetadataError(f"{where}: describes {r.name}, not this shard")
    fmt = fmt or format_of(r.name)
    if size is not None and r.bytes != size:
        raise MetadataError(f"{where}: describes a {r.bytes}-byte shard, the file has {size} bytes")
    if r.count > max_samples(fmt, r.bytes):
        raise MetadataError(f"{where}: {r.count} samples cannot fit in a {r.bytes}-byte shard")
    if fmt in ("tar", "tarzst"):
        check_offsets(r.offsets, r.count, r.bytes, where, fmt)
    if r.digests and len(r.digests) != r.count:
        raise MetadataError(f"{where}: {len(r.digests)} sample digests for {r.count} samples")
    return r


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of ``manifest.json`` and of a receipt, as published in docs/schema/."""
    return {"manifest": msgspec.json.schema(Manifest), "receipt": msgspec.json.schema(ReceiptRecord),
            "build-record": msgspec.json.schema(BuildRecordSchema)}
