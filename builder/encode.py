"""Encoding (and decoding back) of sample images with OpenCV's libjpeg-turbo / libpng.

OpenCV is the fastest correct encoder available here (see NOTES.md): JPEG at 4:2:0 with the
given quality; PNG with default parameters (any explicit compression level is 3-5x slower).
Arrays are RGB in fgbg; the BGR swap happens only at this edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from fgbg.readers.decode import check_pixels

__all__ = [
    "MASK_PNG", "decode_jpeg", "decode_png", "decode_png_color", "encode_jpeg", "encode_jpeg_bgr", "encode_mask_png",
    "encode_npy_zst", "encode_png", "encode_png_color", "encoder_versions",
]


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return encode_jpeg_bgr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)


def encode_jpeg_bgr(bgr: np.ndarray, quality: int) -> bytes:
    """:func:`encode_jpeg` of an image already in OpenCV's BGR order (no conversion)."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(gray: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", gray)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


# Row filter of mask PNGs, recorded in the build record (``tool.mask_png``) so resume and repair
# re-encode exactly as the dataset was first built. "sub" is OpenCV's default (datasets that
# predate the field); "none" with RLE deflate is ~1.4x faster to encode and ~45% smaller on
# masks -- mostly all-zero rows, which the SUB filter does not make any more compressible.
MASK_PNG = "none"
_MASK_PNG_PARAMS = {
    "sub": [],
    "none": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE, cv2.IMWRITE_PNG_COMPRESSION, 1,
             cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE],
}


def encode_mask_png(mask: np.ndarray, row_filter: str = MASK_PNG) -> bytes:
    """A mask (or any 8-bit gray image) as PNG with the given row filter ("sub" or "none")."""
    try:
        params = _MASK_PNG_PARAMS[row_filter]
    except KeyError:
        raise ValueError(f"unknown mask PNG filter {row_filter!r} (known: {', '.join(_MASK_PNG_PARAMS)})") from None
    ok, buf = cv2.imencode(".png", mask, params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


NPY_ZST_LEVEL = 3


def encode_npy_zst(gray: np.ndarray) -> bytes:
    """A 2-D uint8 array as a zstd-compressed ``.npy`` (format 1.0 header, C order; the frame
    declares its size): ``--members zstd``. 0.6x the bytes of the PNG here and several times
    faster to encode and decode (README, "formats")."""
    import io

    import zstandard

    f = io.BytesIO()
    np.lib.format.write_array(f, np.ascontiguousarray(gray, np.uint8), version=(1, 0), allow_pickle=False)
    return zstandard.ZstdCompressor(level=NPY_ZST_LEVEL, write_content_size=True).compress(f.getvalue())


def encode_png_color(pixels: np.ndarray) -> bytes:
    """Lossless PNG of an RGB or RGBA image (used for the stored inputs)."""
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return encode_png(cv2.cvtColor(pixels, code))


def decode_png_color(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_png_color`."""
    arr = decode_png(data)
    code = cv2.COLOR_BGRA2RGBA if arr.ndim == 3 and arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(arr, code)


def decode_jpeg(data: bytes) -> np.ndarray:
    check_pixels(data)  # a dataset's own files are untrusted too: the readers' pixel bound
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("not a decodable JPEG")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def decode_png(data: bytes) -> np.ndarray:
    check_pixels(data)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("not a decodable PNG")
    return arr


def encoder_versions() -> dict[str, str]:
    """Encoder identity for the manifest: byte identity holds for equal versions only."""
    return {"opencv": cv2.__version__, "numpy": np.__version__, "mask_png": MASK_PNG}
