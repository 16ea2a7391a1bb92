import io
import tarfile

import pytest

from fgbg.readers.tarwalk import TarFormatError, member_name_ok, walk_tar


def _tar(entries: list[tuple[str, bytes, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def test_walk_yields_regular_files_only() -> None:
    data = _tar([
        ("0001.jpg", b"abc", tarfile.REGTYPE),
        ("../evil.jpg", b"x", tarfile.REGTYPE),
        ("/abs.jpg", b"x", tarfile.REGTYPE),
        ("link.jpg", b"", tarfile.SYMTYPE),
        ("dir", b"", tarfile.DIRTYPE),
        ("a/" * 60 + "long.jpg", b"x", tarfile.REGTYPE),  # GNU longname extension
        ("0002.json", b"{}", tarfile.REGTYPE),
    ])
    with pytest.warns(UserWarning) as record:
        out = list(walk_tar(io.BytesIO(data), "t.tar"))
    assert out == [("0001.jpg", b"abc"), ("0002.json", b"{}")]
    text = " ".join(str(w.message) for w in record)
    assert "unsafe member name" in text and "not a regular file" in text and "t.tar" in text


def test_non_utf8_name_skipped() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin-1") as t:
        info = tarfile.TarInfo("caf\u00e9.jpg")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.warns(UserWarning, match="non-UTF-8"):
        assert list(walk_tar(io.BytesIO(buf.getvalue()))) == []


def test_corruption_detected() -> None:
    data = bytearray(_tar([("0001.jpg", b"abc" * 400, tarfile.REGTYPE)]))
    with pytest.raises(TarFormatError, match="truncated"):
        list(walk_tar(io.BytesIO(bytes(data[:700])), "s.tar"))
    data[10] ^= 0xFF
    with pytest.raises(TarFormatError, match="checksum"):
        list(walk_tar(io.BytesIO(bytes(data)), "s.tar"))


def test_member_name_ok() -> None:
    assert member_name_ok("00000001.mask.png")
    assert not member_name_ok("a/b.jpg") and not member_name_ok("..x.jpg") and not member_name_ok("")


# -- the readers' fast paths: parse_span (one sample) and parse_window (many at once) -------------
import numpy as np  # noqa: E402

from fgbg.builder.shards.tar import ustar_header  # noqa: E402
from fgbg.readers.tarwalk import BLOCK, _row_sums, header_sum, parse_span, parse_window  # noqa: E402

SUFFIXES = {b"jpg": "image", b"mask.png": "mask", b"json": "meta"}
ORDER = (b"jpg", b"mask.png", b"json")


def _sample(key: str, sizes: tuple[int, ...] = (700, 30, 5)) -> bytes:
    """One sample as fgbg's shard writer lays it out: header, data, zero padding per member."""
    out = b""
    for suffix, size in zip(ORDER, sizes, strict=True):
        data = bytes((i * 7 + len(key)) % 256 for i in range(size))
        out += ustar_header(f"{key}.{suffix.decode()}", size) + data + bytes(-size % BLOCK)
    return out


def _shard(n: int) -> tuple[bytes, list[int]]:
    parts = [_sample(f"{k:08d}", (600 + 37 * k, 20 + k, 3)) for k in range(n)]
    offsets = [sum(map(len, parts[:k])) for k in range(n + 1)]
    return b"".join(parts) + bytes(2 * BLOCK), offsets


def _keys(first: int, n: int) -> np.ndarray:
    return np.frombuffer("".join(f"{k:08d}" for k in range(first, first + n)).encode(), np.uint8).reshape(n, 8)


def test_checksums_are_exact() -> None:
    """The Adler-32 pieces and the 64-bit lanes give the exact byte sums (all-0xFF included)."""
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 256, (300, BLOCK), dtype=np.uint8)
    rows[0] = 255
    assert np.array_equal(_row_sums(rows), rows.sum(axis=1, dtype=np.int64))
    for row in rows[:20]:
        buf = row.tobytes()
        assert header_sum(buf, 0) == int(row[:148].sum()) + int(row[156:].sum()) + 8 * 32
    header = ustar_header("00000001.jpg", 12345)
    assert header_sum(header, 0) == int(header[148:154], 8)
    tar = _tar([("00000001.jpg", b"x" * 99, tarfile.REGTYPE)])  # the standard library's header
    assert header_sum(tar, 0) == int(tar[148:154], 8)


def test_span_reads_the_plain_case_and_refuses_the_rest() -> None:
    buf, offsets = _shard(3)
    spans = [parse_span(buf, offsets[k], offsets[k + 1], f"{k:08d}".encode(), SUFFIXES, False) for k in range(3)]
    assert all(s is not None for s in spans)
    assert [buf[a:b] for _, a, b in spans[1] or []] == [
        bytes((i * 7 + 8) % 256 for i in range(n)) for n in (637, 21, 3)]
    last = parse_span(buf, offsets[2], len(buf), b"00000002", SUFFIXES, True)  # end-of-archive zeros allowed
    assert last == spans[2]
    assert parse_span(buf, offsets[2], len(buf), b"00000002", SUFFIXES, False) is None  # ...only at the end
    assert parse_span(buf, offsets[0], offsets[1], b"00000001", SUFFIXES, False) is None  # another key

    def damaged(at: int, value: bytes, fix_sum: bool = True) -> bytes:
        b = bytearray(buf[offsets[0]:offsets[1]])
        b[at:at + len(value)] = value
        if fix_sum:  # a header edited consistently: only the fields' meaning can refuse it
            b[148:156] = b"%06o\0 " % (sum(b[:148]) + sum(b[156:BLOCK]) + 256)
        return bytes(b)

    for case in (damaged(9, b"txt\0"),  # 00000000.txt: not an fgbg member
                 damaged(156, b"2"),  # a symbolic link
                 damaged(124, b"\x80"),  # a base-256 size
                 damaged(345, b"dir"),  # a long-name prefix
                 damaged(124, b"77777777777"),  # larger than the span
                 damaged(10, b"z", fix_sum=False)):  # a changed byte, checksum not updated
        assert parse_span(case, 0, len(case), b"00000000", SUFFIXES, False) is None
    twice = _sample("00000000")[:BLOCK + 1024] * 2  # the same member twice
    assert parse_span(twice, 0, len(twice), b"00000000", SUFFIXES, False) is None


def test_window_agrees_with_span_and_refuses_any_damage() -> None:
    buf, offsets = _shard(20)
    starts, stops = np.array(offsets[:-1]), np.array(offsets[1:])
    stops[-1] = len(buf)
    found = parse_window(buf, starts, stops, _keys(0, 20), ORDER, True)
    assert found is not None
    for k in range(20):
        span = parse_span(buf, offsets[k], int(stops[k]), f"{k:08d}".encode(), SUFFIXES, k == 19)
        assert span is not None and found[k].tolist() == [[a, b] for _, a, b in span]
    assert parse_window(buf, starts[3:9], stops[3:9], _keys(3, 6), ORDER, False) is not None  # any run
    assert parse_window(buf, starts, stops, _keys(1, 20), ORDER, True) is None  # keys one off
    assert parse_window(buf, starts, stops, _keys(0, 20), (b"jpg", b"json", b"mask.png"), True) is None
    rng = np.random.default_rng(0)
    headers = [int(start) - BLOCK for start in found[:, :, 0].ravel()]
    for h in rng.choice(headers, 12, replace=False).tolist():
        for at in (0, 9, 124, 130, 150, 156, 200, 345, 511):  # any byte of any header
            bad = bytearray(buf)
            bad[h + at] ^= 0x41
            assert parse_window(bytes(bad), starts, stops, _keys(0, 20), ORDER, True) is None, (h, at)
    tail = bytearray(buf)
    tail[-3] = 1  # not zeros after the last sample
    assert parse_window(bytes(tail), starts, stops, _keys(0, 20), ORDER, True) is None
