"""Reading user images robustly: one place that turns any common file into 8-bit arrays.

Pillow does the decoding because it handles the cases users actually have: EXIF
orientation, CMYK JPEGs, 16-bit PNG/TIFF, palette images with transparency, grayscale.
Every failure becomes an :class:`InputError` that names the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "list_images", "read_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Inputs larger than this many pixels are refused (decompression-bomb guard, ~16k x 16k).
MAX_PIXELS = 268_435_456


def list_images(folder: Path, what: str, skip_invalid: bool = False) -> list[Path]:
    """Image files of a folder, sorted by name; hidden files are ignored.

    Files with other extensions are an error naming the file (or skipped with
    ``skip_invalid``), so a stray file never silently changes the dataset.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{what} folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} is not a directory")
    images = []
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(p)
        elif not skip_invalid:
            raise InputError(
                f"{p}: not an image file (extension {p.suffix or 'none'!r}); {what} folder may "
                f"only hold {', '.join(IMAGE_EXTENSIONS)} (or pass --skip-invalid)"
            )
    if not images:
        raise InputError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def _to_8bit(img: Image.Image) -> Image.Image:
    """Reduce high-bit-depth single-channel modes to 8-bit 'L' by scaling, not clipping."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F":
            top = max(1.0, float(arr.max(initial=1.0)))
        arr = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L")
    return img


def read_image(path: Path, what: str) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3) or RGBA (H, W, 4) when it has alpha.

    Orientation from EXIF is applied; grayscale becomes RGB; CMYK is converted.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise InputError(
                        f"{path}: {what} image is {img.width}x{img.height}, larger than the "
                        f"{MAX_PIXELS} pixel limit"
                    )
                img.load()
                upright: Image.Image = ImageOps.exif_transpose(img) or img
                has_alpha = upright.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                    upright.mode == "P" and "transparency" in upright.info
                )
                out = _to_8bit(upright).convert("RGBA" if has_alpha else "RGB")
                arr = np.asarray(out, dtype=np.uint8)
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{path}: {what} file is not a readable image ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: {what} image is corrupt or truncated ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{path}: {what} image is empty ({arr.shape[1]}x{arr.shape[0]})")
    return arr
