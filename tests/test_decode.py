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


def _smooth(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """An image with edges and gradients, like composites (noise would defeat PNG filters)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 255 // max(1, w - 1) + (y * 3) % 64).astype(np.uint8)
    img = np.stack([base, base[::-1], (base // 2 + 60)] if channels == 3 else [base], axis=-1)
    img[h // 3: h // 2, w // 4: w // 2] = rng.integers(0, 256, 3 if channels == 3 else 1, dtype=np.uint8)
    return img if channels == 3 else img[..., 0]


def _cv2_rgb(data: bytes) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("sampling", ["444", "420", "gray"])
@pytest.mark.parametrize("quality", [50, 90, 100])
def test_jpeg_pixels_are_opencvs(sampling: str, quality: int) -> None:
    """The simplejpeg path decodes exactly what cv2.imdecode decodes (libjpeg-turbo both)."""
    import cv2

    img = _smooth(61, 97)  # odd sizes: partial MCUs
    if sampling == "gray":
        data = cv2.imencode(".jpg", img[..., 0], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    else:
        sub = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if sampling == "444" else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
        data = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality,
                                                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sub])[1].tobytes()
    got = decode_member("image", data)
    assert got.dtype == np.uint8 and got.flags.writeable and np.array_equal(got, _cv2_rgb(data))
    half = decode_member("image", data, reduce=2)
    assert half.shape == (31, 49, 3)  # rounded up, as libjpeg scales
    assert np.median(np.abs(half.astype(int) - cv2.resize(got, (49, 31), interpolation=cv2.INTER_AREA))) <= 3


def _png(gray: np.ndarray, filt: int) -> bytes:
    import cv2

    flag = {0: cv2.IMWRITE_PNG_FILTER_NONE, 1: cv2.IMWRITE_PNG_FILTER_SUB, 2: cv2.IMWRITE_PNG_FILTER_UP,
            4: cv2.IMWRITE_PNG_FILTER_PAETH}[filt]
    return cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_FILTER, flag])[1].tobytes()


def test_grey_png_fast_path_is_opencvs() -> None:
    """None and Sub rows (fgbg's masks and depth maps) by the zlib path; anything else by OpenCV;
    the pixels are OpenCV's either way, and damage is still an error."""
    import cv2

    from fgbg.readers.decode import png_gray8

    gray = _smooth(37, 53, channels=1)
    for data, fast in ((_png(gray, 0), True), (_png(gray, 1), True), (encode_png(gray), None),
                       (_png(gray, 2), False), (_png(gray, 4), False),
                       (cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes(), False),
                       (cv2.imencode(".png", np.dstack([gray] * 3))[1].tobytes(), False)):
        direct = png_gray8(data)
        if fast is not None:
            assert (direct is not None) == fast
        want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        got = decode_member("mask", data)
        assert got.flags.c_contiguous and got.flags.writeable and np.array_equal(got, want)
    data = bytearray(_png(gray, 1))
    data[45] ^= 0x10  # inside the compressed pixels: the chunk's CRC no longer matches
    assert png_gray8(bytes(data)) is None
    with pytest.raises(DecodeError, match="corrupt image"):
        decode_member("depth", bytes(data[:60]))  # truncated: OpenCV refuses it too


def test_json_as_the_standard_library_reads_it() -> None:
    import json

    for text in (b'{"index": 3, "box": [1, 2, 3, 4], "bg": "room.jpg", "s": 0.5}', b'{"big": 123456789012345678901234}',
                 b'{"u": "caf\\u00e9", "n": null, "t": true}'):
        assert decode_member("meta", text) == json.loads(text)


def _npy_zst(arr: np.ndarray, content_size: bool = True) -> bytes:
    import io

    import zstandard

    f = io.BytesIO()
    np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=arr.dtype == object)
    return zstandard.ZstdCompressor(write_content_size=content_size).compress(f.getvalue())


def test_npy_zst_members() -> None:
    """--members zstd: grey fields as zstd-compressed .npy, found by their magic, bounded
    before anything is allocated, refused when they are anything but a uint8 (H, W) array."""
    from fgbg.builder.encode import encode_npy_zst
    from fgbg.readers.decode import npy_zst

    rng = np.random.default_rng(3)
    for shape in ((1, 1), (7, 13), (224, 224), (112, 96)):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        data = encode_npy_zst(arr)
        for field in ("mask", "depth", "instances"):
            out = decode_member(field, data)
            assert out.dtype == np.uint8 and out.flags.writeable and np.array_equal(out, arr)
        if shape == (224, 224):
            assert np.array_equal(decode_member("mask", data, reduce=2), decode_member("mask", encode_png(arr),
                                                                                     reduce=2))
    big = _npy_zst(np.zeros((300, 300), np.uint8))
    with pytest.raises(DecodeError, match="over the 10000 pixel bound"):
        npy_zst(big, max_pixels=10_000)  # the frame's declared size, before decompressing
    lies = [
        (_npy_zst(np.zeros((4, 4), np.uint8), content_size=False), "declares no bytes"),
        (_npy_zst(np.zeros((4, 4), np.int16)), "holds a int16 array"),
        (_npy_zst(np.zeros((2, 4, 4), np.uint8)), "of shape \\(2, 4, 4\\)"),
        (_npy_zst(np.asfortranarray(np.zeros((4, 5), np.uint8))), "not uint8 \\(H, W\\)"),
        (_npy_zst(np.array([{"a": 1}], dtype=object)), "holds a object array"),
        (encode_npy_zst(np.zeros((4, 4), np.uint8))[:-3], "corrupt zstd frame"),
    ]
    import zstandard

    lies.append((zstandard.ZstdCompressor().compress(b"not an npy at all"), "not an .npy array"))
    for data, what in lies:
        with pytest.raises(DecodeError, match=what):
            decode_member("mask", data)
