"""Reading user images robustly: one place that turns any common file into 8-bit arrays.

Pillow does the decoding because it handles the cases users actually have: EXIF
orientation, CMYK JPEGs, 16-bit PNG/TIFF, palette images with transparency, grayscale.
Every failure becomes an :class:`InputError` that names the file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "InputFile", "list_images", "read_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Inputs larger than this many pixels are refused (decompression-bomb guard, ~16k x 16k).
MAX_PIXELS = 268_435_456


@dataclass(frozen=True)
class InputFile:
    """An input image: a local path or an fsspec URL (``s3://bucket/bg/room.jpg``)."""

    location: str
    storage_options: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name[1:] else self.name

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[1] if "." in self.name[1:] else ""

    def read_bytes(self) -> bytes:
        if "://" not in self.location:
            return Path(self.location).read_bytes()
        import fsspec

        with fsspec.open(self.location, "rb", **(self.storage_options or {})) as f:
            data: bytes = f.read()
        return data

    def __str__(self) -> str:
        return self.location


def _entries(folder: str, what: str, storage_options: dict[str, Any] | None) -> list[tuple[str, bool]]:
    """(location, is_file) of the entries of a local folder or an fsspec URL."""
    if "://" not in folder:
        root = Path(folder)
        if not root.exists():
            raise InputError(f"{what} folder {folder} does not exist")
        if not root.is_dir():
            raise InputError(f"{what} folder {folder} is not a directory")
        return [(str(p), p.is_file()) for p in root.iterdir()]
    import fsspec

    fs, path = fsspec.core.url_to_fs(folder, **(storage_options or {}))
    protocol = folder.split("://", 1)[0]
    try:
        listing = fs.ls(path, detail=True, refresh=True)
    except FileNotFoundError:
        raise InputError(f"{what} folder {folder} does not exist") from None
    except OSError as e:
        raise InputError(f"{what} folder {folder} cannot be listed ({e})") from None
    return [(f"{protocol}://{e['name']}", e["type"] == "file") for e in listing]


def list_images(folder: str | Path, what: str, skip_invalid: bool = False,
                storage_options: dict[str, Any] | None = None) -> list[InputFile]:
    """Image files of a folder (local or fsspec URL), sorted by name; hidden files are ignored.

    Files with other extensions are an error naming the file (or skipped with
    ``skip_invalid``), so a stray file never silently changes the dataset.
    """
    folder = str(folder)
    images = []
    for location, is_file in sorted(_entries(folder, what, storage_options)):
        f = InputFile(location, storage_options)
        if f.name.startswith("."):
            continue
        problem = None
        try:
            f.name.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogates
            raw = f.name.encode("utf-8", "surrogateescape")
            problem = f"{folder}/{raw!r}: file name is not valid UTF-8 (rename it)"
        if problem is None and not is_file:
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                continue  # sub-folders are no inputs
            problem = f"{f}: named like an image but not a readable file (a folder, or a broken link)"
        if problem is not None:
            if not skip_invalid:
                raise InputError(problem + " (or pass --skip-invalid)")
            warnings.warn(f"skipped {problem}", stacklevel=2)
            continue
        if f.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(f)
        elif not skip_invalid:
            raise InputError(
                f"{f}: not an image file (extension {f.suffix or 'none'!r}); {what} folder may "
                f"only hold {', '.join(IMAGE_EXTENSIONS)} (or pass --skip-invalid)"
            )
    if not images:
        raise InputError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(images, key=lambda f: f.name)


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


def read_image(path: InputFile | str | Path, what: str) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3) or RGBA (H, W, 4) when it has alpha.

    Orientation from EXIF is applied; grayscale becomes RGB; CMYK is converted.
    """
    file = path if isinstance(path, InputFile) else InputFile(str(path))
    try:
        data = file.read_bytes()
    except OSError as e:
        raise InputError(f"{file}: {what} file cannot be read ({e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise InputError(
                        f"{file}: {what} image is {img.width}x{img.height}, larger than the "
                        f"{MAX_PIXELS} pixel limit"
                    )
                frames = int(getattr(img, "n_frames", 1))
                if frames > 1:  # which frame a user meant is a guess fgbg does not make
                    raise InputError(f"{file}: {what} image is animated ({frames} frames); "
                                     "save the frame to use as a still image")
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
        raise InputError(f"{file}: {what} file is not a readable image ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{file}: {what} image is corrupt or truncated ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{file}: {what} image is empty ({arr.shape[1]}x{arr.shape[0]})")
    return arr
