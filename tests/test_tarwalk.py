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
