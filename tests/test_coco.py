"""``fgbg export --coco``: read back with pycocotools' own COCO API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.readers import open_dataset

pytest.importorskip("pycocotools")


def test_coco_round_trip(tmp_path: Path, demo_inputs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from pycocotools.coco import COCO

    ds_path = tmp_path / "ds"
    build(ds_path, BuildConfig(placements=1, shard_size=5, fg_scale=(0.6, 1.0)), *demo_inputs, progress=False,
          workers=1)
    out = tmp_path / "coco"
    assert main(["export", str(ds_path), "--coco", str(out)]) == 0
    assert "18 images with COCO annotations" in capsys.readouterr().out
    coco = COCO(str(out / "annotations.json"))
    ds, raw = open_dataset(ds_path), open_dataset(ds_path, decode=False)
    assert sorted(coco.getImgIds()) == list(range(len(ds))) and coco.loadCats(1)[0]["name"] == "person"
    for i, s in enumerate(ds):
        image = coco.loadImgs(i)[0]
        assert (out / image["file_name"]).read_bytes() == bytes(raw[i]["image"])  # the stored JPEG
        anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
        assert len(anns) == 1 and anns[0]["iscrowd"] == 0
        mask = coco.annToMask(anns[0])
        assert np.array_equal(mask, (s["mask"] >= 128).astype(np.uint8))  # the stored mask, pixel for pixel
        ys, xs = np.nonzero(mask)
        assert anns[0]["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert anns[0]["area"] == mask.sum()
        meta = s["meta"]  # the tight box lies inside the placement box
        assert meta["x"] <= xs.min() and xs.max() < meta["x"] + meta["w"] and meta["y"] <= ys.min()
    assert main(["export", str(ds_path), "--coco", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
