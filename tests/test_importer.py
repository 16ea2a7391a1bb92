"""fgbg import of the seeds' layout: folders and per-background zips, JPEG masks, missing files."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.export import export
from fgbg.builder.commands.importer import import_seed, parse_name
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.builder.errors import FgbgError, InputError
from fgbg.readers import open_dataset


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("seed")
    build(d / "ds", BuildConfig(placements=2, shard_size=50), *demo_inputs, progress=False)
    export(str(d / "ds"), d / "Dataset")
    return d / "ds", d / "Dataset"


def _by_source(path: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["meta"]["source"]: s for s in open_dataset(path)}


def test_parse_name() -> None:
    assert parse_name("room_1__flip_person_a_12") == ("room_1", "person_a", 1, 11)
    assert parse_name("r__p_1") == ("r", "p", 0, 0)
    with pytest.raises(InputError, match="not a seed sample name"):
        parse_name("nonsense")


def test_import_folders_round_trip(seed: tuple[Path, Path], tmp_path: Path) -> None:
    original, layout = seed
    res, left_out = import_seed(layout.parent, tmp_path / "imp", shard_size=16)
    assert res.samples == 36 and left_out == [] and verify(str(tmp_path / "imp"), deep=True).ok
    orig = {s["key"]: s for s in open_dataset(original, fields=("meta", "mask", "depth"))}
    src_jpegs = {k: m["image"] for k, m in open_dataset(original).iter_members(0)}
    imported = open_dataset(tmp_path / "imp")
    new_jpegs = {m["meta"]: m["image"] for s in range(len(imported.shards)) for _, m in imported.iter_members(s)}
    by_name = {json.loads(meta)["source"]: jpg for meta, jpg in new_jpegs.items()}
    got = _by_source(tmp_path / "imp")
    for s in orig.values():
        m = s["meta"]
        name = f"{m['bg']['name'][:-4]}__{'flip_' if m['flip'] else ''}{m['fg']['name'][:-4]}_{m['placement'] + 1}"
        g = got[name]
        assert (g["meta"]["x"], g["meta"]["y"], g["meta"]["w"], g["meta"]["h"]) == (m["x"], m["y"], m["w"], m["h"])
        assert np.array_equal(g["mask"], s["mask"]) and np.array_equal(g["depth"], s["depth"])
        assert g["meta"]["flip"] == m["flip"] and g["meta"]["placement"] == m["placement"]
        assert by_name[name] == src_jpegs[s["key"]]  # composites keep their JPEG bytes
    with pytest.raises(FgbgError, match="imported dataset has no plan"):
        repair(str(tmp_path / "imp"), progress=False)


def test_import_zips_with_jpeg_masks_and_missing(seed: tuple[Path, Path], tmp_path: Path) -> None:
    _, layout = seed
    comp = tmp_path / "Compressed_Dataset"
    for tree in ("fg_bg", "fg_bg_masks", "depth_maps"):
        (comp / tree).mkdir(parents=True)
        for bg_dir in sorted((layout / tree).iterdir()):
            with zipfile.ZipFile(comp / tree / f"{bg_dir.name}.zip", "w") as z:
                for f in sorted(bg_dir.iterdir()):
                    data = f.read_bytes()
                    if tree == "fg_bg_masks":  # the seeds saved masks as lossy JPEG
                        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
                        data = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()
                        name = f.stem + ".jpg"
                    else:
                        name = f.name
                    if not (tree == "depth_maps" and f.stem == "room_001__person_001_2"):
                        z.writestr(name, data)
    shutil.copytree(layout / "inp_bg", tmp_path / "Compressed_Dataset" / "inp_bg")
    opened: list[str] = []
    real_zip = zipfile.ZipFile

    def counted(file: str | Path, *args: object, **kwargs: object) -> zipfile.ZipFile:
        opened.append(str(file))
        return real_zip(file, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zipfile, "ZipFile", counted)
        res, left_out = import_seed(tmp_path, tmp_path / "imp", shard_size=16)
    archives = [str(p) for p in comp.rglob("*.zip")]
    assert sorted(set(opened)) == sorted(archives) and len(opened) == 2 * len(archives)  # listed once, read once
    assert res.samples == 35 and left_out == ["room_001/room_001__person_001_2: missing depth_maps"]
    got = _by_source(tmp_path / "imp")
    import_seed(layout.parent, tmp_path / "ref", shard_size=16)
    want = _by_source(tmp_path / "ref")
    for name, s in got.items():
        assert set(np.unique(s["mask"]).tolist()) <= {0, 255}
        assert (np.abs(s["mask"].astype(int) - want[name]["mask"]).sum() / 255) < 0.01 * s["mask"].size
        assert abs(s["meta"]["x"] - want[name]["meta"]["x"]) <= 1 and abs(s["meta"]["w"] - want[name]["meta"]["w"]) <= 2
    assert (tmp_path / "imp" / "inputs" / "bg" / "0000.png").is_file()


def test_rerun_resumes_without_rereading_done_shards(seed: tuple[Path, Path], tmp_path: Path) -> None:
    """A rerun keeps committed shards: it reads only the masks (their boxes make the index rows)."""
    from helpers import snapshot

    from fgbg.builder.commands.importer import _Source

    _, layout = seed
    first, _ = import_seed(layout.parent, tmp_path / "imp", shard_size=16)
    (tmp_path / "imp" / "shards" / "000001.tar").unlink()
    (tmp_path / "imp" / "manifest.json").unlink()
    reads: list[str] = []
    real_read = _Source.read

    def recorded(self: _Source, location: str) -> bytes:
        reads.append(location)
        return real_read(self, location)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_Source, "read", recorded)
        again, _ = import_seed(layout.parent, tmp_path / "imp", shard_size=16)
    assert (again.built, again.reused) == (1, first.shards - 1)
    composites = [r for r in reads if "/fg_bg/" in r]
    assert len(composites) == 16 + 1  # shard 1's composites, and the first one (its size)
    import_seed(layout.parent, tmp_path / "fresh", shard_size=16)
    assert snapshot(tmp_path / "imp") == snapshot(tmp_path / "fresh")


def test_a_mask_declaring_a_huge_image_is_refused_from_its_header(seed: tuple[Path, Path], tmp_path: Path) -> None:
    """An 875 KB PNG can declare 30000x30000 pixels (15 GB decoded): import applies the readers'
    pixel bound to the header and refuses it, naming the file, before decoding anything."""
    _, layout = seed
    copy = tmp_path / "Dataset"
    shutil.copytree(layout, copy)
    mask = sorted((copy / "fg_bg_masks").rglob("*.*"))[0]
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    png[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
    mask.write_bytes(bytes(png))
    with pytest.raises(InputError, match=rf"{mask.name}: image declares 30000x30000 pixels, over the 16777216"):
        import_seed(tmp_path, tmp_path / "imp", shard_size=16)
