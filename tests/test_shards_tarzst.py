"""``.tar.zst`` shards: the very bytes of the ``.tar`` shard as one zstd frame per sample --
read sequentially, by offset and in batches exactly like the tar, by stock tools through
zstd, verified, repaired and converted byte-identically, and refused when a frame lies."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import zstandard
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.convert import convert
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.readers import open_dataset
from fgbg.readers.errors import DatasetError, ShardReadError
from fgbg.readers.formats.tar import MAX_SPAN

CFG = BuildConfig(placements=3, shard_size=20, quality=90)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("zst") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1, formats=("tar", "tarzst"))
    return out


def _plain(path: Path) -> bytes:
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True) as r:
        return r.read()


def test_frames_decompress_to_the_tar(both: Path) -> None:
    ds = open_dataset(both, format="tarzst")
    record = json.loads((both / "build.json").read_bytes())
    assert record["tool"]["zstd"] == ".".join(map(str, zstandard.ZSTD_VERSION))
    assert record["formats"] == ["tar", "tarzst"]
    for entry in ds.shards:
        zst = both / entry.name
        tar = both / entry.name.removesuffix(".zst")
        assert _plain(zst) == tar.read_bytes()  # zstd -dc gives the tar, byte for byte
        receipt = json.loads((both / (entry.name + ".json")).read_bytes())
        offsets = [*receipt["offsets"], zst.stat().st_size]
        data = zst.read_bytes()
        for k, (a, b) in enumerate(itertools.pairwise(offsets)):  # one frame per sample
            frame = data[a:b]
            assert zstandard.frame_content_size(frame) > 0
            members = tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().decompress(frame)))
            assert members.getnames()[0] == f"{entry.first + k:08d}.jpg"
        assert zst.stat().st_size < 0.85 * tar.stat().st_size
    with tarfile.open(fileobj=io.BytesIO(_plain(both / ds.shards[0].name))) as t:  # a stock reader
        assert len(t.getnames()) == 4 * ds.shards[0].count


def test_reads_equal_the_tar(both: Path) -> None:
    a, b = open_dataset(both, format="tar"), open_dataset(both, format="tarzst")
    for s, t in zip(a, b, strict=True):
        assert s["key"] == t["key"] and s["meta"] == t["meta"]
        for f in ("image", "mask", "depth"):
            assert np.array_equal(s[f], t[f])
    picks = [0, 19, 20, 53, 7, 7, 40]
    assert [s["key"] for s in b.get_many(picks)] == [f"{i:08d}" for i in picks]
    raw_a = open_dataset(both, format="tar", decode=False, check=True)
    raw_b = open_dataset(both, format="tarzst", decode=False, check=True)  # digests hold: the same members
    for i in (0, 21, 53):
        x, y = raw_a[i], raw_b[i]
        assert all(bytes(x[f]) == bytes(y[f]) for f in ("image", "mask", "depth", "meta"))


def test_without_receipt_the_stream_is_walked(both: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(both, copy)
    ds = open_dataset(copy, format="tarzst")
    (copy / (ds.shards[1].name + ".json")).unlink()
    keys = [s["key"] for s in ds.iter_shard(1)]
    assert keys == [f"{i:08d}" for i in range(20, 40)]


def test_a_lying_frame_is_refused(both: Path) -> None:
    reader = open_dataset(both, format="tarzst")._readers[0]
    good = zstandard.ZstdCompressor().compress(b"x" * 100)
    for bad, what in ((zstandard.ZstdCompressor().compress(b"\0" * (MAX_SPAN + 1)), f"bound {MAX_SPAN}"),
                      (zstandard.ZstdCompressor(write_content_size=False).compress(b"abc"), "declares no content"),
                      (b"\x28\xb5\x2f\xfd" + b"junk" * 10, "")):
        buf = good + bad
        with pytest.raises(ShardReadError, match="sample 00000001"):
            reader._inflate(buf, 0, [0, 1], [0, len(good), len(buf)])
        if what:
            with pytest.raises(ShardReadError, match=what):
                reader._inflate(buf, 0, [0, 1], [0, len(good), len(buf)])


def test_damage_verify_repair(both: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(both, copy)
    before = snapshot(copy)
    name = open_dataset(copy, format="tarzst").shards[2].name
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x55
    (copy / name).write_bytes(bytes(data))
    problems = verify(str(copy)).problems
    assert problems and all(p.where == name for p in problems)
    with pytest.raises(DatasetError):
        list(open_dataset(copy, format="tarzst", check=True).iter_shard(2))
    _, result, after = repair(str(copy), workers=1, progress=False)
    assert after.ok and result.built == 1 and snapshot(copy) == before


def test_convert_both_ways(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    build(tmp_path / "tar", CFG, *demo_inputs, progress=False, workers=1)
    build(tmp_path / "direct", CFG, *demo_inputs, progress=False, workers=1, formats=("tarzst",))
    convert(tmp_path / "tar", tmp_path / "zst", "tarzst", progress=False, workers=1)
    assert snapshot(tmp_path / "zst") == snapshot(tmp_path / "direct")  # as if built so
    convert(tmp_path / "direct", tmp_path / "back", "tar", progress=False, workers=1)
    assert snapshot(tmp_path / "back") == snapshot(tmp_path / "tar")
    assert "zstd" not in json.loads((tmp_path / "tar" / "build.json").read_bytes())["tool"]  # only when used
