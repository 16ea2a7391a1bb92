"""``.tar.zst`` shards: the very bytes of a ``.tar`` shard, as one zstd frame per sample.

Why per sample: a sample's four 512-byte headers and its padding (~3 kB of ~15 kB, nearly
all zeros) compress to a few bytes, while random access survives -- the receipt records where
each sample's *frame* starts, so ``ds[i]`` is still one ranged read (then one frame
decompressed). The frames concatenated decompress to exactly the ``.tar`` shard the same
samples make (the last frame also carries the end-of-archive blocks and record padding), so
``zstd -dc 000000.tar.zst`` is that tar byte for byte and every stock tool that reads a
zstd-compressed tar reads it: ``tar --zstd -xf``, ``zstd -dc ... | tar t``, webdataset
through ``pipe:zstd -dc ...``. Frames carry their content size (the readers' bound before
decompressing) and no checksum of their own (the receipt's sha256 and per-sample digests
cover the bytes). Level 3, the zstd default; the output depends on libzstd's version, which
the build record keeps in ``tool.zstd``.
"""

from __future__ import annotations

from pathlib import Path

import zstandard

from .base import EncodedSample, ShardFile, ShardMeta
from .tar import BLOCK, RECORD, TarShardWriter, member_bytes

__all__ = ["LEVEL", "TarZstShardWriter", "zstd_version"]

LEVEL = 3


def zstd_version() -> str:
    """The libzstd version the frames are made with (recorded: byte identity holds per version)."""
    return ".".join(str(v) for v in zstandard.ZSTD_VERSION)


class TarZstShardWriter(TarShardWriter):
    """A tar shard written as one zstd frame per sample (see the module's docstring)."""

    extension = ".tar.zst"

    def __init__(self, path: Path, meta: ShardMeta):
        super().__init__(path, meta)
        self._zstd = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True, write_checksum=False)
        self._held: list[bytes] = []  # the last sample's tar bytes: its frame also ends the archive
        self._plain = 0  # bytes of the plain tar stream so far (for its record padding)

    def _emit(self, parts: list[bytes]) -> None:
        frame = self._zstd.compress(b"".join(parts))
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._pending_bytes >= self.flush_bytes:
            self._flush()

    def add(self, sample: EncodedSample) -> None:
        if self._held:
            self._emit(self._held)
        self._offsets.append(self._pos + self._pending_bytes)
        self._held = member_bytes(sample)
        self._plain += sum(len(p) for p in self._held)

    def close(self) -> ShardFile:
        end = self._plain + 2 * BLOCK
        self._emit([*self._held, b"\0" * (2 * BLOCK + (-end % RECORD))])  # as the tar writer ends it
        self._held = []
        return self._finish()
