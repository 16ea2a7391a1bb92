"""A minimal, safe walker over the members of a tar stream.

Why not ``tarfile``: its per-member header objects cap reading near 3,000 samples/s
(NOTES.md), and its extraction helpers are the classic path-traversal hazard. This walker
only ever returns ``(name, bytes)`` pairs in memory: it never touches the filesystem,
yields regular files only, and skips (with a warning) anything else -- links, devices,
directories, absolute or ``..`` names, names that are not UTF-8, GNU/PAX extensions.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import IO

__all__ = ["BLOCK", "MAX_MEMBER_BYTES", "TarFormatError", "member_name_ok", "walk_headers", "walk_tar"]

BLOCK = 512
MAX_MEMBER_BYTES = 1 << 28  # 256 MiB: far above any sample member (images are bounded to 16 MP)
_REGULAR = (b"0", b"\0", b"7")
_SKIP_DATA = (b"x", b"g", b"L", b"K")  # PAX/GNU extended headers: data to skip


class TarFormatError(ValueError):
    """The stream is not a well-formed tar archive (bad checksum, truncated member)."""


def _field(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _number(raw: bytes, what: str) -> int:
    if raw[:1] in (b"\x80", b"\xff"):  # GNU base-256 for large values
        value = int.from_bytes(raw[1:], "big")
        return -value if raw[:1] == b"\xff" else value
    text = _field(raw).strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"bad {what} field {raw!r}") from None


def member_name_ok(name: str) -> bool:
    """A member name fgbg will read: relative, no directories, no parent references."""
    return bool(name) and not name.startswith("/") and "/" not in name and "\\" not in name and ".." not in name


def _parse_header(header: bytes, offset: int, source: str) -> tuple[int, bytes, bytes] | None:
    """(size, type flag, full name) of the header block at ``offset``; None at the end marker.
    Checked: a whole block, its checksum, a size from 0 to the member bound."""
    if not header or header == b"\0" * BLOCK:
        return None
    if len(header) < BLOCK:
        raise TarFormatError(f"{source}: truncated header at byte {offset}")
    stored = _number(header[148:156], "checksum")
    if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
        raise TarFormatError(f"{source}: bad header checksum at byte {offset}")
    size = _number(header[124:136], "size")
    if not 0 <= size <= MAX_MEMBER_BYTES:  # read() would allocate what the header asks for
        raise TarFormatError(f"{source}: member at byte {offset} declares {size} bytes "
                             f"(over the {MAX_MEMBER_BYTES}-byte bound)")
    raw_name = _field(header[0:100])
    prefix = _field(header[345:500]) if header[257:262] == b"ustar" else b""
    return size, header[156:157], prefix + b"/" + raw_name if prefix else raw_name


def walk_tar(f: IO[bytes], source: str = "tar") -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each safe regular file in tar stream ``f``."""
    offset = 0
    while True:
        parsed = _parse_header(f.read(BLOCK), offset, source)
        if parsed is None:
            return
        size, kind, raw_name = parsed
        padded = size + (-size % BLOCK)
        data = f.read(padded)
        if len(data) < padded:
            raise TarFormatError(f"{source}: member at byte {offset} is truncated")
        offset += BLOCK + padded
        if kind in _SKIP_DATA:
            continue
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            warnings.warn(f"{source}: skipped member with a non-UTF-8 name {raw_name!r}", stacklevel=2)
            continue
        if kind not in _REGULAR:
            warnings.warn(f"{source}: skipped {name!r}: not a regular file (type {kind!r})", stacklevel=2)
            continue
        if not member_name_ok(name):
            warnings.warn(f"{source}: skipped {name!r}: unsafe member name", stacklevel=2)
            continue
        yield name, data[:size]


def walk_headers(f: IO[bytes], source: str = "tar") -> Iterator[tuple[int, str]]:
    """Yield ``(offset, name)`` of every member header in ``f``, data blocks skipped by seeking:
    the layout of a shard without reading its contents. Names are reported as they are (a
    non-UTF-8 one escaped), extended headers included, so nothing hides from a layout check."""
    offset = 0
    while True:
        f.seek(offset)
        parsed = _parse_header(f.read(BLOCK), offset, source)
        if parsed is None:
            return
        size, _, raw_name = parsed
        yield offset, raw_name.decode("utf-8", "backslashreplace")
        offset += BLOCK + size + (-size % BLOCK)
