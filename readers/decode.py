"""Decoding sample members into arrays, with the size of every image checked first.

An image header can declare any size; decoding a 60000x60000 PNG would allocate gigabytes
(a decompression bomb). So the declared width/height is read from the header (PNG IHDR,
JPEG SOF) and checked against a bound *before* the decoder runs. Members are decoded by
their suffix only; nothing is ever unpickled or executed.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any

import cv2
import msgspec
import numpy as np

try:
    import simplejpeg
except ImportError:  # pragma: no cover - a dependency; OpenCV decodes the same pixels, slower
    simplejpeg = None

__all__ = ["MAX_PIXELS", "REDUCTIONS", "ZSTD_MAGIC", "DecodeError", "check_pixels", "decode_member", "decode_rgba",
           "image_size", "npy_zst", "png_gray8", "zstd_decompressor"]

MAX_PIXELS = 4096 * 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CV2_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                      8: cv2.IMREAD_REDUCED_COLOR_8}


class DecodeError(ValueError):
    """A member could not be decoded (corrupt, wrong type, or too large)."""


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a PNG or JPEG header, without decoding pixels."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + length
    raise DecodeError("not a PNG or JPEG image")


def check_pixels(data: bytes, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` (or zero) pixels, before
    any decoding: a 900 KB PNG can declare 30000x30000 (15 GB once decoded)."""
    w, h = image_size(data)
    if w * h > max_pixels or w == 0 or h == 0:
        raise DecodeError(f"image declares {w}x{h} pixels, over the {max_pixels} pixel bound")


def _jpeg_rgb(data: bytes, reduce: int) -> np.ndarray:
    """libjpeg-turbo through simplejpeg, straight to RGB (no BGR pass): the same pixels as
    OpenCV's decoder (both libjpeg-turbo with the accurate integer IDCT and fancy upsampling;
    tests compare them), a sixth faster on 224x224. ``reduce`` 2/4/8 scales in the DCT domain
    (a 112-px training loop never decodes 224 px)."""
    if simplejpeg is not None:
        try:
            if reduce == 1:
                out: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB")
            else:
                w, h = image_size(data)
                out = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=-(-w // reduce),
                                             min_height=-(-h // reduce))
            return out
        except ValueError:
            pass  # what libjpeg-turbo refuses here, OpenCV may still read (or refuses in its turn)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), _CV2_REDUCED_COLOR[reduce])
    if arr is None:
        raise DecodeError("corrupt image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _decode_color(data: bytes, max_pixels: int, reduce: int = 1) -> np.ndarray:
    check_pixels(data, max_pixels)
    if data[:2] == b"\xff\xd8":
        return _jpeg_rgb(data, reduce)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise DecodeError("corrupt image")
    return _reduce(cv2.cvtColor(arr, cv2.COLOR_BGR2RGB), reduce, cv2.INTER_AREA)


def png_gray8(data: bytes) -> np.ndarray | None:
    """The pixels of an 8-bit grey, non-interlaced PNG whose rows use filter None or Sub -- how
    fgbg writes masks (None) and depth maps (libpng picks Sub) -- by one bounded ``zlib``
    inflate and whole-array NumPy work instead of libpng's per-row calls: twice as fast as
    ``cv2.imdecode`` on these small maps, same pixels (tests compare). Checked: signature,
    header, every chunk's CRC, no unknown critical chunk, the exact inflated size. Anything
    else (other row filters, palettes, 16 bits, interlacing) gives None and OpenCV decodes it."""
    if len(data) < 45 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    w, h, bits, colour, method, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (bits, colour, method, filtering, interlace) != (8, 0, 0, 0, 0) or not w or not h:
        return None
    pos, idat = 8, []
    while True:
        if pos + 12 > len(data):
            return None
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        end = pos + 12 + n
        kind = data[pos + 4:pos + 8]
        if end > len(data) or zlib.crc32(data[pos + 4:end - 4]) != struct.unpack(">I", data[end - 4:end])[0]:
            return None
        if kind == b"IDAT":
            idat.append(data[pos + 8:end - 4])
        elif kind == b"IEND":
            break
        elif kind != b"IHDR" and not kind[0] & 0x20:  # a critical chunk this path does not know
            return None
        pos = end
    size = h * (w + 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), size + 1)  # bounded: the header's size, plus one to see excess
    except zlib.error:
        return None
    if len(raw) != size or not inflate.eof:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(h, w + 1)
    kinds = rows[:, 0]
    pixels = np.ascontiguousarray(rows[:, 1:])  # writable and contiguous, like OpenCV's
    if kinds.any():
        if (kinds > 1).any():
            return None  # Up, Average, Paeth: they need the row above; OpenCV decodes those
        sub = kinds == 1  # Sub: each byte adds the one to its left, i.e. a running sum modulo 256
        rows_sub = pixels if sub.all() else pixels[sub]
        # summed down the columns of the transpose: NumPy adds whole rows at a time there
        summed = np.cumsum(np.ascontiguousarray(rows_sub.T), axis=0, dtype=np.uint8).T
        if sub.all():
            return np.ascontiguousarray(summed)
        pixels[sub] = summed
    return pixels


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NPY_HEADER = 4096  # bytes an .npy header may take here (NumPy writes 128 for a 2-D uint8 array)


_zstd_local = threading.local()  # one decompression context per thread (made once: ~40 us each)
_NPY_HEADERS: dict[bytes, tuple[int, int]] = {}  # header bytes -> (h, w) once checked (a few shapes a dataset)


def zstd_decompressor() -> Any:
    """This thread's zstd decompression context (made once: ~40 us each; a context serves one
    thread), for ``.npy.zst`` members and ``.tar.zst`` frames alike."""
    d = getattr(_zstd_local, "d", None)
    if d is None:
        import zstandard

        d = _zstd_local.d = zstandard.ZstdDecompressor()
    return d


def _npy_shape(raw: bytes) -> tuple[int, int, int]:
    """(h, w, data offset) of an .npy uint8 (H, W) C-order array; DecodeError otherwise."""
    if raw[:8] != b"\x93NUMPY\x01\x00" or len(raw) < 10:
        raise DecodeError("not an .npy array (format 1.0 expected)")
    end = 10 + int.from_bytes(raw[8:10], "little")
    header = raw[:end]
    shape = _NPY_HEADERS.get(header)
    if shape is None:
        f = io.BytesIO(raw)
        try:
            np.lib.format.read_magic(f)
            dims, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_HEADER)
        except ValueError as e:
            raise DecodeError(f"not an .npy array ({e})") from None
        if dtype != np.uint8 or fortran or len(dims) != 2:
            raise DecodeError(f"holds a {dtype} array of shape {dims}, not uint8 (H, W)")
        shape = (int(dims[0]), int(dims[1]))
        if len(_NPY_HEADERS) < 256:
            _NPY_HEADERS[bytes(header)] = shape
    return shape[0], shape[1], end


def npy_zst(data: bytes | memoryview, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A 2-D uint8 array stored as a zstd-compressed ``.npy`` (``--members zstd``), bounded
    before anything is allocated: the frame must declare its size, within ``max_pixels`` plus
    a header; the header (parsed by NumPy's own reader, no pickle; the few distinct headers
    of a dataset remembered by their bytes) must say uint8, C order, two dimensions within
    ``max_pixels``, and the data must be exactly that many bytes."""
    import zstandard

    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as e:
        raise DecodeError(f"not a zstd frame ({e})") from None
    if not 0 <= declared <= max_pixels + _NPY_HEADER:
        raise DecodeError(f"zstd frame declares {'no' if declared < 0 else declared} bytes, over the "
                          f"{max_pixels} pixel bound")
    try:
        raw = zstd_decompressor().decompress(data, max_output_size=declared)
    except zstandard.ZstdError as e:
        raise DecodeError(f"corrupt zstd frame ({e})") from None
    h, w, start = _npy_shape(raw)
    if not 0 < h * w <= max_pixels:
        raise DecodeError(f"holds a {h}x{w} array, over the {max_pixels} pixel bound")
    if len(raw) - start != h * w:
        raise DecodeError(f"holds {len(raw) - start} bytes for a {h}x{w} array")
    out: np.ndarray = np.frombuffer(raw, np.uint8, h * w, start).reshape(h, w).copy()  # writable, as PNGs decode
    return out


def _decode_gray(data: bytes, max_pixels: int) -> np.ndarray:
    if bytes(data[:4]) == ZSTD_MAGIC:  # --members zstd
        return npy_zst(data, max_pixels)
    check_pixels(data, max_pixels)
    arr = png_gray8(data)
    if arr is None:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise DecodeError("corrupt image")
    return arr


def _decode_json(data: bytes, max_pixels: int, reduce: int = 1) -> Any:
    try:
        return msgspec.json.decode(data)  # the objects json.loads makes, five times faster
    except msgspec.DecodeError:
        pass
    try:
        return json.loads(data)  # what msgspec refuses and json reads (integers past 64 bits)
    except ValueError as e:
        raise DecodeError(f"bad JSON ({e})") from None


def _reduce(arr: np.ndarray, reduce: int, interpolation: int) -> np.ndarray:
    """``arr`` at 1/``reduce`` of its size (rounded up, as libjpeg's DCT scaling does)."""
    if reduce == 1:
        return arr
    h, w = arr.shape[:2]
    return cv2.resize(arr, (-(-w // reduce), -(-h // reduce)), interpolation=interpolation)


def _decode_mask(data: bytes, max_pixels: int, reduce: int = 1) -> np.ndarray:
    return _reduce(_decode_gray(data, max_pixels), reduce, cv2.INTER_NEAREST)  # stays binary


def _decode_depth(data: bytes, max_pixels: int, reduce: int = 1) -> np.ndarray:
    return _reduce(_decode_gray(data, max_pixels), reduce, cv2.INTER_AREA)


def decode_rgba(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An 8-bit RGBA PNG -- a stored foreground -- as (h, w, 4) uint8 straight RGBA."""
    if data[:8] != _PNG_SIGNATURE:
        raise DecodeError("not a PNG image")
    check_pixels(data, max_pixels)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DecodeError("corrupt image")
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 4:
        raise DecodeError(f"not an 8-bit RGBA image ({arr.dtype}, shape {arr.shape})")
    out: np.ndarray = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return out


_DECODERS: dict[str, Callable[[bytes, int, int], Any]] = {
    "image": _decode_color, "mask": _decode_mask, "depth": _decode_depth, "instances": _decode_mask,
    "meta": _decode_json,
}
REDUCTIONS = (1, 2, 4, 8)


def decode_member(field: str, data: bytes, max_pixels: int = MAX_PIXELS, reduce: int = 1) -> Any:
    """Decode the bytes of one field (``image``, ``mask``, ``depth``, ``instances``, ``meta``);
    ``reduce`` 2, 4 or 8: pixel fields at that fraction of their stored size (the JPEG by DCT
    scaling, masks and instance ids by nearest neighbour, depth by area)."""
    return _DECODERS[field](data, max_pixels, reduce)
