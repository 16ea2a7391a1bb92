from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgbg.builder.config import BuildConfig
from fgbg.builder.errors import InputError
from fgbg.builder.sources import load_backgrounds, load_foregrounds


def _rgba(path: Path, w: int = 30, h: int = 50) -> None:
    arr = np.zeros((h, w, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 255
    Image.fromarray(arr).save(path)


def test_backgrounds_resized_and_alpha_dropped(tmp_path: Path) -> None:
    Image.new("RGBA", (300, 100), (10, 20, 30, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (50, 400), (1, 2, 3)).save(tmp_path / "b.bmp")
    bgs = load_backgrounds(tmp_path, BuildConfig())
    assert [b.name for b in bgs] == ["a.png", "b.bmp"]
    assert bgs[0].pixels.shape == (224, 224, 3) and bgs[0].pixels[0, 0].tolist() == [10, 20, 30]
    assert len(bgs[0].source_sha256) == 64


def test_foreground_needs_alpha_or_mask(tmp_path: Path) -> None:
    fg, masks = tmp_path / "fg", tmp_path / "masks"
    fg.mkdir()
    masks.mkdir()
    Image.new("RGB", (30, 50), (200, 0, 0)).save(fg / "p1.jpg")
    with pytest.raises(InputError, match=r"p1\.jpg: foreground has no alpha channel.*--fg-masks"):
        load_foregrounds(fg, BuildConfig())
    m = np.zeros((50, 30), np.uint8)
    m[10:40, 5:25] = 255
    Image.fromarray(m).save(masks / "p1.png")
    out = load_foregrounds(fg, BuildConfig(), masks)
    assert out[0].pixels.shape == (70, 100, 4)
    assert out[0].pixels[..., 3].max() == 255 and out[0].pixels[0, 0, 3] == 0


def test_mask_problems_named(tmp_path: Path) -> None:
    fg, masks = tmp_path / "fg", tmp_path / "masks"
    fg.mkdir()
    masks.mkdir()
    Image.new("RGB", (30, 50)).save(fg / "p1.jpg")
    with pytest.raises(InputError, match=r"masks.*holds no images"):
        load_foregrounds(fg, BuildConfig(), masks)
    Image.new("L", (31, 50), 255).save(masks / "p1.png")
    with pytest.raises(InputError, match=r"p1\.png: mask is 31x50 but foreground p1\.jpg is 30x50"):
        load_foregrounds(fg, BuildConfig(), masks)
    Image.new("L", (30, 50), 255).save(masks / "p1.png")
    Image.new("RGB", (30, 50)).save(fg / "p2.jpg")
    with pytest.raises(InputError, match=r"p2\.jpg: no mask with stem 'p2'"):
        load_foregrounds(fg, BuildConfig(), masks)
    Image.new("RGB", (30, 50)).save(fg / "p2.png")
    with pytest.raises(InputError, match=r"stem 'p2' also used"):
        load_foregrounds(fg, BuildConfig(), masks)


def test_transparent_foreground_refused(tmp_path: Path) -> None:
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "ghost.png")
    with pytest.raises(InputError, match=r"ghost\.png: foreground is fully transparent"):
        load_foregrounds(tmp_path, BuildConfig())


def test_keep_aspect_and_scale_storage(tmp_path: Path) -> None:
    _rgba(tmp_path / "tall.png", w=30, h=60)
    out = load_foregrounds(tmp_path, BuildConfig(keep_aspect=True))
    assert out[0].base_size == (35, 70) and out[0].pixels.shape == (70, 35, 4)
    out = load_foregrounds(tmp_path, BuildConfig(fg_scale=(0.5, 1.5)))
    assert out[0].base_size == (100, 70) and out[0].pixels.shape == (105, 150, 4)


def test_prepared_in_worker_processes_as_in_this_one(tmp_path: Path) -> None:
    """A build prepares its inputs in its worker pool: same files, same order, and a bad file
    is still the error naming it (the first bad one in order, whichever worker read it)."""
    from fgbg.builder.processes import spawn_executor

    bg, fg = tmp_path / "bg", tmp_path / "fg"
    bg.mkdir()
    fg.mkdir()
    for i in range(12):
        Image.new("RGB", (40 + i, 30), (i, 2 * i, 3 * i)).save(bg / f"room{i:02d}.png")
        _rgba(fg / f"p{i:02d}.png", 20 + i, 30)
    cfg = BuildConfig(size=64, fg_size=(20, 30))
    pool = spawn_executor(2)
    try:
        for load in (lambda m: load_backgrounds(bg, cfg, mapper=m), lambda m: load_foregrounds(fg, cfg, mapper=m)):
            here, there = load(map), load(lambda f, items: pool.map(f, items, chunksize=3))
            assert [(p.name, p.source_sha256, p.png_sha256, p.shape, p.base_size) for p in here] == \
                [(p.name, p.source_sha256, p.png_sha256, p.shape, p.base_size) for p in there]
            assert [p.png.read_bytes() for p in here] == [p.png.read_bytes() for p in there]
        (bg / "room05.png").write_bytes(b"not an image")
        (bg / "room09.png").write_bytes(b"not one either")
        with pytest.raises(InputError, match=r"room05\.png"):
            load_backgrounds(bg, cfg, mapper=lambda f, items: pool.map(f, items, chunksize=1))
    finally:
        pool.shutdown()
