"""tar and HDF5 copies hold the same samples; convert copies bytes and is resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.convert import convert
from fgbg.builder.errors import FgbgError
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=3, shard_size=20)  # 54 samples, 3 shards


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("both") / "ds"
    build(out, CFG, *demo_inputs, formats=("tar", "hdf5"), progress=False, workers=1)
    return out


def test_one_pass_writes_identical_samples(both: Path) -> None:
    tar = open_dataset(both, format="tar")
    h5 = open_dataset(both, format="hdf5")
    assert len(tar) == len(h5) == 54 and tar.format == "tar" and h5.format == "hdf5"
    for s in range(len(tar.shards)):
        for (k1, m1), (k2, m2) in zip(tar.iter_members(s), h5.iter_members(s), strict=True):
            assert k1 == k2 and m1 == m2  # encoded bytes equal, member for member
    for a, b in zip(tar, h5, strict=True):
        assert a["meta"] == b["meta"] and np.array_equal(a["image"], b["image"])
        assert np.array_equal(a["mask"], b["mask"]) and np.array_equal(a["depth"], b["depth"])


def test_raw_layout_equals_decoded_tar(tmp_path: Path, both: Path) -> None:
    convert(both, tmp_path / "raw", "hdf5", hdf5_layout="raw", progress=False, workers=1)
    raw = open_dataset(tmp_path / "raw")
    assert raw.metadata.hdf5_layout == "raw"
    assert raw.statistics == open_dataset(both).statistics
    for a, b in zip(open_dataset(both), raw, strict=True):
        assert a["key"] == b["key"] and a["meta"] == b["meta"]
        for field in ("image", "mask", "depth"):
            assert b[field].dtype == np.uint8 and np.array_equal(a[field], b[field]), field
    with pytest.raises(FgbgError, match="re-encode the JPEG"):
        convert(tmp_path / "raw", tmp_path / "back", "tar", progress=False)


def test_round_trip_byte_identical(tmp_path: Path, both: Path, demo_inputs: tuple[Path, Path]) -> None:
    convert(both, tmp_path / "h5", "hdf5", source_format="tar", progress=False)
    convert(tmp_path / "h5", tmp_path / "tar", "tar", progress=False)
    orig = snapshot(both)
    back = snapshot(tmp_path / "tar")
    assert {k: v for k, v in back.items() if k.endswith(".tar")} == {
        k: v for k, v in orig.items() if k.endswith(".tar")}
    direct = tmp_path / "direct"
    build(direct, CFG, *demo_inputs, formats=("hdf5",), progress=False)
    assert snapshot(direct) == snapshot(tmp_path / "h5")  # a conversion is the build it replaces
    assert (tmp_path / "tar" / "annotations.csv").read_bytes() == (both / "annotations.csv").read_bytes()


def test_convert_resumes(tmp_path: Path, both: Path) -> None:
    out = tmp_path / "c"
    convert(both, out, "hdf5", progress=False)
    before = snapshot(out)
    (out / "shards" / "000001.h5").unlink()
    (out / "shards" / "000002.h5").write_bytes(b"partial")
    (out / "manifest.json").unlink()
    r = convert(both, out, "hdf5", progress=False)
    assert (r.built, r.reused) == (2, 1)
    assert snapshot(out) == before
    with pytest.raises(FgbgError, match="already holds another dataset"):
        convert(both, out, "hdf5", hdf5_layout="raw", progress=False)
    with pytest.raises(FgbgError, match="choose an --out other than the source"):
        convert(both, both, "hdf5", progress=False)


def test_random_access_both_formats(both: Path, tmp_path: Path) -> None:
    convert(both, tmp_path / "raw", "hdf5", hdf5_layout="raw", progress=False)
    for ds in (open_dataset(both, format="tar"), open_dataset(both, format="hdf5"), open_dataset(tmp_path / "raw")):
        seq = list(ds)
        for i in np.random.default_rng(1).integers(0, 54, 15).tolist() + [0, 53]:
            got = ds[i]
            assert got["key"] == seq[i]["key"] == f"{i:08d}" and got["meta"] == seq[i]["meta"]
            assert np.array_equal(got["image"], seq[i]["image"]) and np.array_equal(got["mask"], seq[i]["mask"])


def test_source_manifest_cannot_name_files_outside(tmp_path: Path, both: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """convert copies the source's stored inputs by the names its manifest gives: a name that
    leaves the dataset is refused before anything is read or written."""
    import json
    import shutil

    from fgbg.builder.cli import main

    src = tmp_path / "src"
    shutil.copytree(both, src)
    (tmp_path / "secret.png").write_bytes((src / "inputs" / "bg" / "0000.png").read_bytes())
    manifest = json.loads((src / "manifest.json").read_bytes())
    manifest["inputs"]["bg"][0]["file"] = "../secret.png"
    (src / "manifest.json").write_text(json.dumps(manifest))
    assert main(["convert", str(src), "--to", "hdf5", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: ") and err.count("\n") == 1 and "at `$.inputs[...][0].file`" in err, err
    assert not (tmp_path / "out").exists()
