import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from fgbg.builder.shards import EncodedSample, ShardFile, ShardMeta, TarShardWriter
from fgbg.builder.shards.tar import RECORD, ustar_header

META = ShardMeta(shard=0, first=0, count=3, key_width=8, size=224, depth_size=None)


def _write(path: Path, n: int = 3) -> tuple[bytes, list[int], str]:
    with TarShardWriter(path, META) as w:
        for i in range(n):
            w.add(EncodedSample(f"{i:08d}", {"jpg": b"J" * (700 + i), "mask.png": b"M" * 5, "json": b"{}"}))
        info = w.close()
    data = path.read_bytes()
    return data, info.offsets, info.sha256


def test_tar_readable_by_tarfile_and_gnu_tar(tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    data, offsets, sha = _write(path)
    assert len(data) % RECORD == 0 and sha == hashlib.sha256(data).hexdigest()
    with tarfile.open(path) as t:
        members = t.getmembers()
        assert [m.name for m in members][:3] == ["00000000.jpg", "00000000.mask.png", "00000000.json"]
        assert all(m.isfile() and m.mtime == 0 and m.mode == 0o644 for m in members)
        assert t.extractfile(members[3]).read() == b"J" * 701  # type: ignore[union-attr]
    listing = subprocess.run(["tar", "-tvf", str(path)], capture_output=True, text=True, check=True)
    assert listing.stderr == "" and len(listing.stdout.splitlines()) == 9
    assert [data[o : o + 12] for o in offsets] == [b"00000000.jpg", b"00000001.jpg", b"00000002.jpg"]


def _write_big(path: Path, n: int, writes: list[int] | None = None) -> ShardFile:
    """``n`` samples of ~20 KB, recording the size of every write to the file in ``writes``."""
    w = TarShardWriter(path, META)
    with w:
        if writes is not None:
            real_write = w._f.write

            def counted(view: memoryview) -> int | None:
                writes.append(len(view))
                return real_write(view)

            w._f.write = counted  # type: ignore[method-assign]
        for i in range(n):
            w.add(EncodedSample(f"{i:08d}", {"jpg": bytes([i]) * (20_000 + 37 * i), "json": b"{}"}))
        return w.close()


def test_members_span_several_write_stretches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples are gathered into stretches of FLUSH_BYTES and written at once: offsets, bytes
    and hash must not depend on where a stretch ends, and the file is written a stretch at a time."""
    import fgbg.builder.shards.tar as tar_module

    path, n, writes = tmp_path / "s.tar", 40, list[int]()
    info = _write_big(path, n, writes)
    data = path.read_bytes()
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.bytes == len(data)
    with tarfile.open(path) as t:
        jpgs = [m for m in t.getmembers() if m.name.endswith(".jpg")]
        assert [m.offset for m in jpgs] == info.offsets  # each sample starts where the writer said
        assert all(t.extractfile(m).read() == bytes([i]) * (20_000 + 37 * i)  # type: ignore[union-attr]
                   for i, m in enumerate(jpgs))
    assert sum(writes) == len(data) and 1 < len(writes) < n  # several stretches, fewer writes than samples
    assert all(size >= tar_module.FLUSH_BYTES for size in writes[:-1])
    monkeypatch.setattr(tar_module, "FLUSH_BYTES", 1)  # a write per sample: the same file
    assert _write_big(tmp_path / "one.tar", n).sha256 == info.sha256


def test_tar_byte_identical(tmp_path: Path) -> None:
    assert _write(tmp_path / "a.tar")[0] == _write(tmp_path / "b.tar")[0]


def test_abort_removes_partial(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.tmp-1"
    with pytest.raises(RuntimeError), TarShardWriter(path, META) as w:
        w.add(EncodedSample("00000000", {"jpg": b"x"}))
        raise RuntimeError("boom")
    assert not path.exists()


def test_header_checks() -> None:
    assert len(ustar_header("a.jpg", 3)) == 512
    with pytest.raises(ValueError):
        ustar_header("dir/a.jpg", 3)
    with pytest.raises(ValueError):
        ustar_header("x" * 101, 3)


def test_format_registry_extensions_match_the_writers() -> None:
    from fgbg.builder.errors import FgbgError
    from fgbg.builder.shards import FORMATS, shard_name, writer_class

    for fmt, extension in FORMATS.items():
        assert writer_class(fmt).extension == extension
        assert shard_name(7, fmt) == f"shards/000007{extension}"
    with pytest.raises(FgbgError, match="unknown shard format 'zip'; choose one of tar, hdf5"):
        shard_name(0, "zip")
