import csv
import io
from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.export import safe_stems, sample_name
from fgbg.builder.encode import decode_png, decode_png_color
from fgbg.readers import open_dataset
from fgbg.readers.schema import InputEntry


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("e") / "ds"
    build(out, BuildConfig(placements=2, shard_size=10), *demo_inputs, progress=False)
    return out


def test_export_seed_layout(ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(ds), "--out", str(out)]) == 0
    data = open_dataset(ds)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len([f for f in files if f.startswith("fg_bg/")]) == len(data) == 36
    assert len([f for f in files if f.startswith("fg_bg_masks/")]) == 36
    assert len([f for f in files if f.startswith("depth_maps/")]) == 36
    assert "inp_bg/room_000.png" in files and "inp_fg_masks/person_002.png" in files
    for s in data:
        m = s["meta"]
        name = sample_name(m["bg"]["name"][:-4], m["fg"]["name"][:-4], m["flip"], m["placement"])
        bg = m["bg"]["name"][:-4]
        assert (out / "fg_bg" / bg / f"{name}.jpg").is_file()
        assert np.array_equal(decode_png((out / "fg_bg_masks" / bg / f"{name}.png").read_bytes()), s["mask"])
    assert "room_001__flip_person_002_2.jpg" in {p.name for p in (out / "fg_bg" / "room_001").iterdir()}
    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text())))
    assert len(rows) == 36
    assert main(["export", str(ds), "--out", str(out)]) == 2


def test_safe_stems() -> None:
    entries = [InputEntry(index=i, name=n) for i, n in enumerate(["a/b.jpg", "x.png", "x.jpg", "..z.png"])]
    assert safe_stems(entries) == [
        "a_b", "x-1", "x-2", "z"]


def test_preview_collage(ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.png"
    assert main(["preview", str(ds), "--out", str(out), "--columns", "4"]) == 0
    img = decode_png_color(out.read_bytes())
    assert img.shape == (6 * 128 + 7 * 8, 150 + 4 * (128 + 8), 3)
    assert img[8 + 3 * 136 : 8 + 3 * 136 + 128, 150:].std() > 10  # composites row has content


def test_export_and_preview_of_an_imported_dataset(ds: Path, tmp_path: Path) -> None:
    """An imported dataset stores only the inputs its source had (here: foregrounds, no
    backgrounds, no foreground masks): export and preview show what is there."""
    import shutil

    from fgbg.builder.commands.export import export
    from fgbg.builder.commands.importer import import_seed

    first = tmp_path / "seed" / "Dataset"
    export(str(ds), first)
    shutil.rmtree(first / "inp_bg")
    import_seed(first.parent, tmp_path / "imp", shard_size=16)
    again = tmp_path / "again"
    assert main(["export", str(tmp_path / "imp"), "--out", str(again)]) == 0
    assert not (again / "inp_bg").exists() and not (again / "inp_fg_masks").exists()
    assert sorted(p.name for p in (again / "inp_fg").iterdir()) == sorted(p.name for p in (first / "inp_fg").iterdir())
    composites = sorted(p.relative_to(first) for p in (first / "fg_bg").rglob("*.jpg"))
    assert len(composites) == 36
    assert composites == sorted(p.relative_to(again) for p in (again / "fg_bg").rglob("*.jpg"))
    assert all((again / c).read_bytes() == (first / c).read_bytes() for c in composites)
    for c in composites:
        mask = Path("fg_bg_masks", *c.parts[1:]).with_suffix(".png")
        assert np.array_equal(decode_png((again / mask).read_bytes()), decode_png((first / mask).read_bytes()))
    out = tmp_path / "preview.png"
    assert main(["preview", str(tmp_path / "imp"), "--out", str(out), "--columns", "4"]) == 0
    img = decode_png_color(out.read_bytes())
    assert img.shape == (4 * 128 + 5 * 8, 150 + 4 * (128 + 8), 3)  # foregrounds, composites, masks, depth


def test_export_names_an_annotation_that_lies(ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Export names its files from each sample's annotation: one pointing at an input the
    dataset does not have is one error line naming shard and sample, not a traceback."""
    import json
    import shutil
    import tarfile

    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    shard = copy / "shards" / "000000.tar"
    with tarfile.open(shard) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as out:
        for m, data in members:
            if m.name == "00000001.json":
                meta = json.loads(data)
                meta["bg"]["index"] = 99
                data = json.dumps(meta).encode()
                m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    assert main(["export", str(copy), "--out", str(tmp_path / "seed")]) == 2
    err = capsys.readouterr().err
    assert err == ("fgbg: error: shards/000000.tar: sample 00000001: annotation does not name the stored inputs "
                   "(IndexError: list index out of range)\n"), err


def test_people_row_draws_only_boxes_that_hold() -> None:
    """The collage's people row reads the annotation, a file of the dataset: boxes that are not
    whole numbers, ids of any size and boxes far off the map neither crash it nor draw outside."""
    from fgbg.builder.collage import _people
    from fgbg.builder.view.data import PALETTE

    ids = np.zeros((40, 40), np.uint8)
    ids[5:15, 5:15] = 1
    good = {"instance": 1, "x": 5, "y": 5, "w": 10, "h": 10}
    hostile = [good, {"instance": "1", "x": 0, "y": 0, "w": 3, "h": 3}, {"instance": 2, "x": 1.5},
               {"instance": 10**30, "x": -10**20, "y": 10**20, "w": 5, "h": 5}, "not a person", None]
    out = _people({"instances": ids, "meta": {"people": hostile}})
    assert out.shape == (40, 40, 3) and (out[5, 5:15] == PALETTE[1]).all()  # the good box's edge
    for meta in ({"people": "x"}, [], {"people": [{"instance": True, "x": 1, "y": 1, "w": 1, "h": 1}]}):
        assert _people({"instances": ids, "meta": meta}).shape == (40, 40, 3)
