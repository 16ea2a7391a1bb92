"""Decoding sample members into arrays, with the size of every image checked first.

An image header can declare any size; decoding a 60000x60000 PNG would allocate gigabytes
(a decompression bomb). So the declared width/height is read from the header (PNG IHDR,
JPEG SOF) and checked against a bound *before* the decoder runs. Members are decoded by
their suffix only; nothing is ever unpickled or executed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

__all__ = ["MAX_PIXELS", "DecodeError", "check_pixels", "decode_member", "image_size"]

MAX_PIXELS = 4096 * 4096


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


def _decode_color(data: bytes, max_pixels: int) -> np.ndarray:
    check_pixels(data, max_pixels)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise DecodeError("corrupt image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _decode_gray(data: bytes, max_pixels: int) -> np.ndarray:
    check_pixels(data, max_pixels)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise DecodeError("corrupt image")
    return arr


def _decode_json(data: bytes, max_pixels: int) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise DecodeError(f"bad JSON ({e})") from None


_DECODERS: dict[str, Callable[[bytes, int], Any]] = {
    "image": _decode_color, "mask": _decode_gray, "depth": _decode_gray, "meta": _decode_json,
}


def decode_member(field: str, data: bytes, max_pixels: int = MAX_PIXELS) -> Any:
    """Decode the bytes of one field (``image``, ``mask``, ``depth``, ``meta``)."""
    return _DECODERS[field](data, max_pixels)
