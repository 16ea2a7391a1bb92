import json
import shutil
import subprocess
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from fgbg.builder.shards import EncodedSample, ShardMeta
from fgbg.builder.shards.hdf5 import Hdf5ShardWriter


def _samples(n: int) -> list[EncodedSample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        meta = {"index": 10 + i, "bg": {"index": 1, "name": "b"}, "fg": {"index": 2, "name": "f"}, "flip": i % 2,
                "placement": 3, "x": 4, "y": 5, "w": 6, "h": 7, "scale": 1.0}
        out.append(EncodedSample(
            f"{10 + i:08d}",
            {"jpg": bytes([i]) * (50 + i), "mask.png": b"M" * 7, "depth.png": b"D" * (3 + i),
             "json": json.dumps(meta).encode()},
            rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), rng.integers(0, 256, (16, 16), dtype=np.uint8),
            rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    return out


def _write(path: Path, layout: str, n: int = 4) -> list[EncodedSample]:
    meta = ShardMeta(shard=1, first=10, count=n, key_width=8, size=16, depth_size=(8, 8), layout=layout)
    samples = _samples(n)
    with Hdf5ShardWriter(path, meta) as w:
        for s in samples:
            w.add(s)
        info = w.close()
    assert info.bytes == path.stat().st_size
    return samples


def test_encoded_layout_in_plain_h5py(tmp_path: Path) -> None:
    samples = _write(tmp_path / "s.h5", "encoded")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f.attrs["format"] == "fgbg" and f.attrs["layout"] == "encoded" and f.attrs["first"] == 10
        assert list(f.attrs["fields"]) == ["image", "mask", "depth", "meta"]
        assert [k.decode() for k in f["keys"][:]] == [s.key for s in samples]
        off = f["image/offsets"][:]
        assert [bytes(f["image/bytes"][off[i]:off[i + 1]]) for i in range(4)] == [s.files["jpg"] for s in samples]
        assert f["image"].attrs["encoding"] == "jpeg"
        table = f["annotations"][:]
        assert table["index"].tolist() == [10, 11, 12, 13] and table["flip"].tolist() == [0, 1, 0, 1]


def test_raw_layout_pixels_zstd_checksummed(tmp_path: Path) -> None:
    samples = _write(tmp_path / "r.h5", "raw")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f["image"].shape == (4, 16, 16, 3) and f["image"].chunks == (1, 16, 16, 3)
        assert f["image"].fletcher32 and "32015" in f["image"]._filters  # Zstd filter id
        assert np.array_equal(f["image"][2], samples[2].image) and np.array_equal(f["depth"][3], samples[3].depth)
        assert "image/bytes" not in f and "meta/bytes" in f


def test_byte_identical(tmp_path: Path) -> None:
    for layout in ("encoded", "raw"):
        _write(tmp_path / "a.h5", layout)
        _write(tmp_path / "b.h5", layout)
        assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_wrong_count_and_abort(tmp_path: Path) -> None:
    meta = ShardMeta(shard=0, first=0, count=5, key_width=8, size=16, depth_size=(8, 8))
    with pytest.raises(ValueError, match="4 samples written, 5 expected"), Hdf5ShardWriter(tmp_path / "x", meta) as w:
        for s in _samples(4):
            w.add(s)
        w.close()
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(shutil.which("h5ls") is None, reason="needs hdf5-tools (.ci/run installs it)")
def test_hdf5_command_line_tools(tmp_path: Path) -> None:
    _write(tmp_path / "e.h5", "encoded")
    _write(tmp_path / "r.h5", "raw")
    ls = subprocess.run(["h5ls", "-r", str(tmp_path / "e.h5")], capture_output=True, text=True, check=True).stdout
    assert "/image/bytes" in ls and "/annotations             Dataset {4}" in ls
    dump = subprocess.run(["h5dump", "-H", str(tmp_path / "r.h5")], capture_output=True, text=True, check=True)
    assert 'DATASET "image"' in dump.stdout and "( 4, 16, 16, 3 )" in dump.stdout and dump.stderr == ""
