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
