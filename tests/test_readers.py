from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import DatasetError, open_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("r") / "ds"
    build(out, BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    return out


def test_iterate_in_key_order(dataset: Path) -> None:
    ds = open_dataset(dataset)
    samples = list(ds)
    assert len(ds) == len(samples) == 54
    assert [s["meta"]["index"] for s in samples] == list(range(54))
    s = samples[0]
    assert s["image"].shape == (224, 224, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (224, 224) and s["depth"].shape == (112, 112)


def test_random_access_equals_iteration(dataset: Path) -> None:
    ds = open_dataset(dataset)
    seq = list(ds)
    for i in np.random.default_rng(0).permutation(54)[:20].tolist() + [0, 53, -1]:
        got = ds[i]
        want = seq[i]
        assert got["key"] == want["key"] and got["meta"] == want["meta"]
        assert np.array_equal(got["image"], want["image"]) and np.array_equal(got["depth"], want["depth"])
    with pytest.raises(IndexError):
        ds[54]


def test_field_selection(dataset: Path) -> None:
    ds = open_dataset(dataset, fields=("mask", "meta"))
    s = next(iter(ds))
    assert set(s) == {"key", "mask", "meta"}
    with pytest.raises(DatasetError, match="no field"):
        open_dataset(dataset, fields=("normals",))


def test_missing_and_corrupt(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest"):
        open_dataset(tmp_path)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    (copy / "shards" / "000001.tar").unlink()
    with pytest.raises(DatasetError, match=r"000001\.tar: shard listed in the manifest is missing"):
        list(open_dataset(copy))


def test_checked_reads_prove_every_sample(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """open_dataset(check=True): a flipped bit inside a JPEG decodes to wrong pixels without a
    word; the checked reader names the sample, in every read path (iteration, random access,
    stream), and clean samples still read."""
    import json

    out = tmp_path / "ds"
    build(out, BuildConfig(placements=1, shard_size=10), *demo_inputs, formats=("tar", "hdf5"), progress=False,
          workers=1)
    for fmt in ("tar", "hdf5"):
        assert len(list(open_dataset(out, format=fmt, check=True, fields=("image",)))) == 18
    receipt = json.loads((out / "shards" / "000000.tar.json").read_bytes())
    assert len(receipt["digests"]) == 10 and receipt["digests"] == json.loads(
        (out / "shards" / "000000.h5.json").read_bytes())["digests"]  # format-independent
    shard = out / "shards" / "000000.tar"
    data = bytearray(shard.read_bytes())
    data[receipt["offsets"][4] + 512 + 600] ^= 0x10  # inside sample 4's JPEG data
    shard.write_bytes(bytes(data))
    assert len(list(open_dataset(out, format="tar"))) == 18  # unchecked: silently different pixels
    checked = open_dataset(out, format="tar", check=True)
    message = r"000000.tar: sample 00000004: bytes differ from the receipt's digest"
    with pytest.raises(DatasetError, match=message):
        list(checked)
    with pytest.raises(DatasetError, match=message):
        checked[4]
    assert checked[3]["key"] == "00000003" and checked[5]["key"] == "00000005"
    with pytest.raises(DatasetError, match=message):
        list(checked.stream(shuffle=True, seed=0))
    for p in (out / "shards").glob("*.json"):  # a receipt from before digests existed
        r = json.loads(p.read_bytes())
        r.pop("digests")
        p.write_text(json.dumps(r))
    with pytest.raises(DatasetError, match="has no per-sample digests"):
        open_dataset(out, format="tar", check=True)[0]
