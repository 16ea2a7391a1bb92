import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgbg.builder.errors import InputError
from fgbg.builder.imageio import list_images, read_image


def _save(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)
    return path


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = _save(img, tmp_path / "r.jpg", exif=exif, quality=95)
    out = read_image(p, "background")
    assert out.shape == (40, 20, 3)  # portrait after rotation
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half is now on top


def test_sixteen_bit_grayscale_scaled(tmp_path: Path) -> None:
    arr = np.full((4, 4), 65535, np.uint16)
    arr[0, 0] = 0
    arr[0, 1] = 32896  # ~128 in 8 bit
    p = _save(Image.fromarray(arr), tmp_path / "g16.png")
    out = read_image(p, "background")
    assert out.shape == (4, 4, 3) and out[1, 1].tolist() == [255, 255, 255]
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 128


def test_cmyk_and_gray_and_palette_alpha(tmp_path: Path) -> None:
    cmyk = _save(Image.new("CMYK", (5, 5), (0, 255, 255, 0)), tmp_path / "c.jpg")
    assert read_image(cmyk, "background")[2, 2].tolist()[0] > 200  # red
    gray = _save(Image.new("L", (5, 5), 77), tmp_path / "l.png")
    assert read_image(gray, "background")[0, 0].tolist() == [77, 77, 77]
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    p = _save(pal, tmp_path / "p.png", transparency=0)
    out = read_image(p, "foreground")
    assert out.shape == (4, 4, 4) and out[0, 0, 3] == 0 and out[1, 1].tolist() == [0, 255, 0, 255]


def test_truncated_and_non_images(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: background image is corrupt or truncated"):
        read_image(bad, "background")
    txt = tmp_path / "fake.png"
    txt.write_text("hello")
    with pytest.raises(InputError, match=r"fake\.png: foreground file is not a readable image"):
        read_image(txt, "foreground")


def test_list_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list_images(tmp_path / "nope", "background")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path, "background")] == ["a.JPG", "b.png"]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt: not an image file"):
        list_images(tmp_path, "background")
    assert len(list_images(tmp_path, "background", skip_invalid=True)) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no images"):
        list_images(empty, "foreground")


def test_animated_images_are_refused(tmp_path: Path) -> None:
    """An animated GIF/WebP/PNG has no single picture: refused with a message, never frame 0
    silently (the frame used would be a guess)."""
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for ext in ("webp", "png"):
        path = tmp_path / f"moving.{ext}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
        with pytest.raises(InputError, match=rf"moving\.{ext}: background image is animated \(3 frames\); "
                                             "save the frame to use as a still image"):
            read_image(path, "background")
    still = tmp_path / "still.webp"
    frames[0].save(still)
    assert read_image(still, "background").shape == (30, 40, 3)
