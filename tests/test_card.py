"""The dataset card (README.md + preview.png): written at every commit, a pure function of the
manifest, and what Hugging Face ``datasets`` reads when given the dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.card import CARD, PREVIEW, dataset_card, front_matter
from fgbg.builder.cli import main
from fgbg.builder.commands.verify import verify
from fgbg.builder.encode import decode_png_color
from fgbg.readers import open_dataset
from fgbg.readers.schema import parse_manifest

CFG = BuildConfig(placements=2, shard_size=10)  # 3 bg x 3 fg x 2 flips x 2 = 36 samples, 4 shards


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("card") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return out


def test_card_is_the_manifests_and_survives_a_resume(ds: Path, tmp_path: Path,
                                                     demo_inputs: tuple[Path, Path]) -> None:
    manifest = parse_manifest((ds / "manifest.json").read_bytes())
    card = (ds / CARD).read_bytes()
    assert card == dataset_card(manifest, has_preview=True)
    manifest = json.loads((ds / "manifest.json").read_bytes())
    text = card.decode()
    assert text.startswith("---\n") and "# fgbg dataset: 36 samples" in text
    assert "| image | `KEY.jpg` | `jpg` | 224×224×3 |" in text and "![rows:" in text
    for entry in manifest["inputs"]["bg"] + manifest["inputs"]["fg"]:  # provenance: every input and its hash
        assert f"| {entry['name']} | `{entry['sha256']}` |" in text
    assert "image            0.%" not in text and f"{manifest['statistics']['image']['mean'][0]:.4f}" in text
    picture = decode_png_color((ds / PREVIEW).read_bytes())
    assert picture.ndim == 3 and picture.shape[0] > 128 and picture.std() > 10  # a real collage, not blank
    # a rerun of the finished build writes card and collage byte for byte again
    before = snapshot(ds)
    (ds / CARD).unlink()
    build(ds, None, progress=False, workers=1)
    assert snapshot(ds) == before


def test_front_matter_is_yaml_with_the_shards_as_config(ds: Path) -> None:
    manifest = parse_manifest((ds / "manifest.json").read_bytes())
    meta = yaml.safe_load(front_matter(manifest).strip().strip("-"))
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "shards/*.tar"}]}]
    assert meta["size_categories"] == ["n<1K"] and "depth-estimation" in meta["task_categories"]


def test_load_dataset_reads_the_samples(ds: Path, tmp_path: Path) -> None:
    """The real ``datasets`` library on the folder: samples, not the stored input images."""
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset(str(ds), split="train", cache_dir=str(tmp_path / "hf"))
    ours = open_dataset(str(ds))
    assert hf.num_rows == len(ours) == 36
    assert set(hf.column_names) == {"__key__", "__url__", "jpg", "mask.png", "depth.png", "json"}
    for i in (0, 17, 35):
        row, sample = hf[i], ours[i]
        assert row["__key__"] == sample["key"] == f"{i:08d}"
        assert np.array_equal(np.asarray(row["mask.png"]), sample["mask"])
        assert np.array_equal(np.asarray(row["depth.png"]), sample["depth"])
        assert row["json"] == sample["meta"]
        image = np.asarray(row["jpg"].convert("RGB"))
        assert image.shape == sample["image"].shape
        # the same JPEG bytes decoded by PIL and by OpenCV (both libjpeg-turbo, islow IDCT)
        assert np.abs(image.astype(int) - sample["image"]).max() <= 1


def test_hdf5_only_dataset_loads_its_index_not_its_inputs(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    datasets = pytest.importorskip("datasets")
    build(tmp_path / "h", BuildConfig(placements=1, shard_size=10), *demo_inputs, formats=("hdf5",),
          progress=False, workers=1)
    assert "fgbg convert . --to tar" in (tmp_path / "h" / CARD).read_text()
    index = datasets.load_dataset(str(tmp_path / "h"), split="train", cache_dir=str(tmp_path / "hf"))
    assert index.num_rows == 18 and index.column_names == ["key", "shard", "bg", "fg", "flip", "placement",
                                                           "x", "y", "w", "h", "scale"]
    assert index[5]["key"] == 5 and index[5]["shard"] == 0  # the CSV reader types keys as the index they are


def test_verify_names_an_edited_card_and_repair_rewrites_it(ds: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    (copy / CARD).write_text((copy / CARD).read_text().replace("36 samples", "40000 samples"))
    (copy / PREVIEW).unlink()
    problems = {(p.where, p.what) for p in verify(str(copy)).problems}
    assert problems == {(CARD, "dataset card differs from the one the manifest makes (fgbg repair rewrites it)"),
                        (PREVIEW, "preview collage missing (fgbg repair writes it)")}
    assert main(["repair", str(copy), "--no-progress"]) == 0
    assert "dataset verifies clean" in capsys.readouterr().out
    assert snapshot(copy) == snapshot(ds)
