import numpy as np
import pytest

from fgbg.builder.encode import encode_jpeg, encode_png
from fgbg.readers.decode import DecodeError, decode_member, image_size


def test_image_size_from_headers() -> None:
    rgb = np.zeros((30, 50, 3), np.uint8)
    assert image_size(encode_jpeg(rgb, 90)) == (50, 30)
    assert image_size(encode_png(np.zeros((7, 9), np.uint8))) == (9, 7)
    with pytest.raises(DecodeError):
        image_size(b"GIF89a....")


def test_decode_roundtrip() -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert np.array_equal(decode_member("mask", encode_png(gray)), gray)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 250
    out = decode_member("image", encode_jpeg(rgb, 95))
    assert out.shape == (16, 16, 3) and out[..., 0].min() > 240 and out[..., 2].max() < 10
    assert decode_member("meta", b'{"index": 3}') == {"index": 3}


def test_decompression_bomb_rejected_before_decoding() -> None:
    png = bytearray(encode_png(np.zeros((8, 8), np.uint8)))
    png[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")  # IHDR claims 60000^2
    with pytest.raises(DecodeError, match="60000x60000"):
        decode_member("mask", bytes(png))
    with pytest.raises(DecodeError, match="over the 100 pixel bound"):
        decode_member("image", encode_jpeg(np.zeros((20, 20, 3), np.uint8), 90), max_pixels=100)
    with pytest.raises(DecodeError, match="bad JSON"):
        decode_member("meta", b"\x80\x04pickle")
