"""WebDataset tar shards, written with direct USTAR headers.

Why not ``tarfile`` or ``webdataset.ShardWriter``: both build a header object per member
(webdataset adds a PAX header to each, +15% bytes) and are 2x slower (NOTES.md). A USTAR
header for a short regular file is 512 bytes we can lay out exactly, with fixed mtime,
owner and mode, so shards are byte-identical across runs. Member names are
``KEY.suffix`` (no directories), which stock webdataset groups by key and GNU tar lists.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .base import EncodedSample, ShardFile, ShardMeta, ShardWriter
from .writeback import Writeback

__all__ = ["BLOCK", "FLUSH_BYTES", "RECORD", "TarShardWriter", "member_bytes", "ustar_header"]

BLOCK = 512
RECORD = 20 * BLOCK  # tar's traditional record size; the archive is padded to it
MTIME = 0  # fixed: byte-identical output
_MAX_SIZE = 8**11 - 1  # largest size in the 11-digit octal field


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode("ascii") + b"\0"


def _template() -> tuple[bytes, int]:
    """Every field but name, size and checksum is the same for all members: lay it out once."""
    header = bytearray(BLOCK)
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)  # uid
    header[116:124] = _octal(0, 8)  # gid
    header[136:148] = _octal(MTIME, 12)
    header[148:156] = b" " * 8  # checksum is computed with this field as spaces
    header[156:157] = b"0"  # regular file
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[265:269] = b"fgbg"  # uname
    header[297:301] = b"fgbg"  # gname
    header[329:337] = _octal(0, 8)  # devmajor
    header[337:345] = _octal(0, 8)  # devminor
    return bytes(header), sum(header)


_TEMPLATE, _TEMPLATE_SUM = _template()
_ZEROS = bytes(BLOCK)
# the template's fixed stretches between name, size and checksum, sliced once
_MODE_TO_GID, _MTIME_FIELD, _TYPE_TO_END = _TEMPLATE[100:124], _TEMPLATE[136:148], _TEMPLATE[156:]
FLUSH_BYTES = 256 << 10  # bytes gathered before one write + hash update (see TarShardWriter)


def ustar_header(name: str, size: int) -> bytes:
    """A 512-byte POSIX ustar header for a regular file ``name`` of ``size`` bytes."""
    raw = name.encode("ascii")
    if len(raw) > 100 or "/" in name or not name:
        raise ValueError(f"tar member name {name!r} must be 1..100 ASCII chars without '/'")
    if not 0 <= size <= _MAX_SIZE:
        raise ValueError(f"tar member {name!r} is too large ({size} bytes)")
    size_field = b"%011o\0" % size
    # the template's sum counts the checksum field as 8 spaces and the name and size as zeros
    checksum = b"%06o\0 " % (_TEMPLATE_SUM + sum(raw) + sum(size_field))
    return b"".join((raw, _ZEROS[len(raw) : 100], _MODE_TO_GID, size_field, _MTIME_FIELD, checksum, _TYPE_TO_END))


def member_bytes(sample: EncodedSample) -> list[bytes]:
    """A sample as tar bytes: each member's header, data and padding to the next block."""
    parts: list[bytes] = []
    for suffix, data in sample.files.items():
        parts += (ustar_header(f"{sample.key}.{suffix}", len(data)), data, _ZEROS[: -len(data) % BLOCK])
    return parts


class TarShardWriter(ShardWriter):
    """Writes samples as consecutive tar members ``KEY.jpg``, ``KEY.mask.png``, ... .

    Members are gathered into stretches of about ``FLUSH_BYTES`` and each stretch is written
    and hashed at once: a write system call per sample cost as much as the hashing of its
    bytes (ext4 page-cache bookkeeping per call), while a stretch this size still sits in
    the core's cache between the join, the write and the hash.
    """

    extension = ".tar"
    flush_bytes = FLUSH_BYTES
    append_only = True  # stretches appended with unbuffered writes

    def __init__(self, path: Path, meta: ShardMeta):
        super().__init__(path, meta)
        self._f = open(self.path, "wb", buffering=0)  # whole stretches only: no buffer to copy through
        self._writeback = Writeback(self._f.fileno())
        self._hash = hashlib.sha256()
        self._pos = 0  # bytes written to the file
        self._pending: list[bytes] = []  # the next stretch, not written yet
        self._pending_bytes = 0
        self._offsets: list[int] = []

    def _flush(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        view = memoryview(data)
        while view:  # an unbuffered write may be partial
            view = view[self._f.write(view) or 0 :]
        self._hash.update(data)
        self._pos += len(data)
        self._writeback.written(self._pos)

    def add(self, sample: EncodedSample) -> None:
        self._offsets.append(self._pos + self._pending_bytes)
        for suffix, data in sample.files.items():
            padding = _ZEROS[: -len(data) % BLOCK]
            self._pending += (ustar_header(f"{sample.key}.{suffix}", len(data)), data, padding)
            self._pending_bytes += BLOCK + len(data) + len(padding)
        if self._pending_bytes >= FLUSH_BYTES:
            self._flush()

    def close(self) -> ShardFile:
        end = self._pos + self._pending_bytes + 2 * BLOCK
        self._pending.append(b"\0" * (2 * BLOCK + (-end % RECORD)))
        return self._finish()

    def _finish(self) -> ShardFile:
        self._flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return ShardFile(self._pos, self._hash.hexdigest(), self._offsets)

    def abort(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)
