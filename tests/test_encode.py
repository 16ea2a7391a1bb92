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


def test_zstd_members_dataset(tmp_path, demo_inputs) -> None:  # type: ignore[no-untyped-def]
    """--members zstd (format 4): the same pixels as a PNG build in every grey field, in tar
    and HDF5, proven by the receipts' digests and verify --deep; the viewer and the seed-layout
    export still hand out PNGs of those pixels; the default build records no such key."""
    import json

    import cv2

    from fgbg.builder import BuildConfig, build
    from fgbg.builder.commands.export import export
    from fgbg.builder.commands.verify import verify
    from fgbg.builder.view import ViewData
    from fgbg.readers import open_dataset

    base = {"placements": 2, "shard_size": 9, "people": (1, 2), "max_occlusion": 0.5}
    build(tmp_path / "png", BuildConfig(**base), *demo_inputs, progress=False, workers=1)  # type: ignore[arg-type]
    build(tmp_path / "zst", BuildConfig(**base, members="zstd"), *demo_inputs, progress=False,  # type: ignore[arg-type]
          workers=1, formats=("tar", "hdf5"))
    a, b = open_dataset(tmp_path / "png"), open_dataset(tmp_path / "zst", check=True)
    assert b.metadata.format_version == 4 and a.metadata.format_version == 2
    assert {f: s.member for f, s in b.metadata.fields.items() if f in ("mask", "depth", "instances")} == {
        "mask": "mask.npy.zst", "depth": "depth.npy.zst", "instances": "instances.npy.zst"}
    assert "members" not in json.loads((tmp_path / "png" / "build.json").read_bytes())["config"]
    h5 = open_dataset(tmp_path / "zst", format="hdf5", check=True)
    for s, t, u in zip(a, b, h5, strict=True):
        for f in ("image", "mask", "depth", "instances"):
            assert np.array_equal(s[f], t[f]) and np.array_equal(t[f], u[f]), f
        assert s["meta"] == t["meta"]
    assert verify(str(tmp_path / "zst"), deep=True).ok
    view = ViewData(str(tmp_path / "zst"))
    png = view.served(3, "depth")
    assert png[:4] == b"\x89PNG" and np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8),
                                                                 cv2.IMREAD_UNCHANGED), a[3]["depth"])
    assert view.stored(3, "depth")[:4] == b"\x28\xb5\x2f\xfd"
    export(str(tmp_path / "zst"), tmp_path / "seed")
    exported = sorted((tmp_path / "seed" / "fg_bg_masks").rglob("*.png"))
    assert len(exported) == len(a) and all(p.read_bytes()[:4] == b"\x89PNG" for p in exported[:5])
