import numpy as np
import pytest

from fgbg.builder.encode import (
    decode_jpeg,
    decode_png,
    decode_png_color,
    encode_jpeg,
    encode_jpeg_bgr,
    encode_mask_png,
    encode_png,
    encode_png_color,
)


def _mask() -> np.ndarray:
    m = np.zeros((224, 224), np.uint8)
    m[60:130, 40:140] = 255
    m[80:90, 60:70] = 0
    return m


def test_mask_png_filters_decode_to_the_same_pixels() -> None:
    m = _mask()
    none, sub = encode_mask_png(m, "none"), encode_mask_png(m, "sub")
    assert sub == encode_png(m)  # "sub" is OpenCV's default, as datasets made before the field
    assert none != sub and len(none) < len(sub)
    for data in (none, sub):
        out = decode_png(data)
        assert out.dtype == np.uint8 and np.array_equal(out, m)
    soft = (np.arange(224 * 224) % 256).astype(np.uint8).reshape(224, 224)
    assert np.array_equal(decode_png(encode_mask_png(soft)), soft)


def test_unknown_mask_filter_is_named() -> None:
    with pytest.raises(ValueError, match="unknown mask PNG filter 'paeth'"):
        encode_mask_png(_mask(), "paeth")


def test_jpeg_rgb_and_bgr_entry_points_agree() -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0] = 220  # red stays red: the channel order survives the BGR edge
    rgb[..., 1] = np.arange(48, dtype=np.uint8)[None] * 4
    rgb[..., 2] = 20
    data = encode_jpeg(rgb, 90)
    assert data == encode_jpeg_bgr(np.ascontiguousarray(rgb[..., ::-1]), 90)
    back = decode_jpeg(data)
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).max() <= 8


def test_color_png_round_trip() -> None:
    rng = np.random.default_rng(1)
    for channels in (3, 4):
        px = rng.integers(0, 256, (9, 7, channels), dtype=np.uint8)
        assert np.array_equal(decode_png_color(encode_png_color(px)), px)
