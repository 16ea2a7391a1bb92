"""The ``background`` reader field: the stored background each composite was made from, in
every access path, proven against the manifest's sha256, decoded once per process, bounded."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from input_fields import counted_reads, every_access_path, loader_batches

from fgbg.builder import BuildConfig, build
from fgbg.builder.encode import encode_png
from fgbg.readers import DatasetError, open_dataset
from fgbg.readers.backgrounds import Backgrounds
from fgbg.readers.fs import Location

CFG = BuildConfig(placements=2, shard_size=10)  # 3 bg x 3 fg x 2 flips x 2 = 36 samples


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("bgfield") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return out


def _stored(ds: Path, index: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ds / "inputs" / "bg" / f"{index:04d}.png")), cv2.COLOR_BGR2RGB)


def test_each_sample_gets_the_background_it_was_made_from(dataset: Path) -> None:
    """Exactly the stored background its annotation names; and the composite, outside the
    person's box, is that background (up to JPEG) and not another one."""
    full = open_dataset(dataset, fields=("image", "meta", "background"))
    stored = {i: _stored(dataset, i) for i in range(3)}
    for s in full:
        meta, bg = s["meta"], s["background"]
        assert bg.dtype == np.uint8 and np.array_equal(bg, stored[meta["bg"]["index"]])
        outside = np.ones(bg.shape[:2], bool)
        outside[meta["y"]:meta["y"] + meta["h"], meta["x"]:meta["x"] + meta["w"]] = False
        diff = np.abs(s["image"].astype(int) - bg.astype(int))[outside].mean()
        other = stored[(meta["bg"]["index"] + 1) % 3]
        assert diff < 3 < np.abs(s["image"].astype(int) - other.astype(int))[outside].mean()


def test_every_access_path(dataset: Path) -> None:
    want = every_access_path(dataset, "background")
    raw = open_dataset(dataset, fields=("background",), decode=False)
    meta = open_dataset(dataset, fields=("meta",))[7]["meta"]
    assert raw[7]["background"] == (dataset / "inputs" / "bg" / f"{meta['bg']['index']:04d}.png").read_bytes()
    half = open_dataset(dataset, fields=("background",), reduce=2)[7]["background"]
    assert half.shape == (112, 112, 3)
    assert np.array_equal(half, cv2.resize(want["00000007"], (112, 112), interpolation=cv2.INTER_AREA))


def test_normalized_with_the_backgrounds_statistics(dataset: Path) -> None:
    """``normalize`` standardises the background with the manifest's ``inputs_bg`` statistics:
    over the stored backgrounds, mean 0 and std 1 per channel."""
    d = open_dataset(dataset, fields=("background", "meta"))
    seen = {}
    for s in d.stream(normalize=True):
        seen[s["meta"]["bg"]["index"]] = s["background"]
    pixels = np.concatenate([x.reshape(-1, 3) for x in seen.values()])
    assert len(seen) == 3 and np.abs(pixels.mean(0)).max() < 1e-3 and np.abs(pixels.std(0) - 1).max() < 1e-3


def test_torch_dataloader_workers(dataset: Path) -> None:
    assert loader_batches(dataset, "background", (224, 224, 3)) == 36


def test_a_changed_background_is_refused_naming_it(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    (copy / "inputs" / "bg" / "0001.png").write_bytes(encode_png(np.zeros((224, 224, 3), np.uint8)))
    d = open_dataset(copy, fields=("background", "meta"))
    uses = [i for i in range(36) if open_dataset(copy, fields=("meta",))[i]["meta"]["bg"]["index"] == 1]
    with pytest.raises(DatasetError, match=r"inputs/bg/0001\.png: sha256 differs from the manifest's"):
        d[uses[0]]
    others = [i for i in range(36) if i not in uses]
    assert all(d[i]["background"].any() for i in others)  # the other backgrounds still read
    with pytest.raises(DatasetError, match="no field"):
        open_dataset(copy, fields=("backdrop",))


def test_read_once_per_process_and_bounded(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each background is read and hashed once while the cache holds it; the cache never holds
    more than its byte budget (one decoded background here), whatever the dataset's count."""
    reads = counted_reads(monkeypatch)
    d = open_dataset(dataset, fields=("background",))
    for _ in d:
        pass
    assert sorted(r for r in reads if r.startswith("inputs/")) == [f"inputs/bg/{i:04d}.png" for i in range(3)]
    assert d.backgrounds is not None and d.backgrounds._held <= 3 * 224 * 224 * 3
    manifest = d.metadata
    small = Backgrounds(Location(dataset), manifest, d.max_pixels, budget=224 * 224 * 3)
    for i in (0, 1, 2, 0):
        small.get(i, True, 1, "test")
    assert len(small._cache) == 1 and small._held == 224 * 224 * 3
    assert hashlib.sha256(small.get(2, False, 1, "test")).hexdigest() == manifest.inputs["bg"][2].file_sha256


def test_object_storage(dataset: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    for p in dataset.rglob("*"):
        if p.is_file():
            mem.pipe(f"/fgbgbg/{p.relative_to(dataset).as_posix()}", p.read_bytes())
    local = open_dataset(dataset, fields=("background",))
    remote = open_dataset("memory://fgbgbg", fields=("background",))
    assert all(np.array_equal(a["background"], b["background"]) for a, b in zip(local, remote, strict=True))
