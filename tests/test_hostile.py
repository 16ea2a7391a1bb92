"""Hostile shards: the readers reject or skip them with a message; nothing is written or executed."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.encode import encode_png
from fgbg.readers import DatasetError, open_dataset


class _Boom:
    """Unpickling this would create a file: proof that nothing unpickles members."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


@pytest.fixture()
def ds(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path / "ds"
    build(out, BuildConfig(placements=1, shard_size=18), *demo_inputs, progress=False)
    return out


def _rewrite(ds: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], replace: dict[str, bytes] | None = None,
             position: int = 4) -> None:
    """Rewrite shard 0 with hostile members inserted after the first sample (manifest kept)."""
    path = ds / "shards" / "000000.tar"
    with tarfile.open(path) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        for i, (m, data) in enumerate(members):
            if i == position:
                for info, payload in extra:
                    out.addfile(info, io.BytesIO(payload) if payload is not None else None)
            data = (replace or {}).get(m.name, data)
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
            link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data if kind == tarfile.REGTYPE else None


def test_traversal_links_pickles_are_skipped(ds: Path, tmp_path: Path) -> None:
    witness = tmp_path / "pwned"
    before = sorted(p.name for p in tmp_path.iterdir())
    _rewrite(ds, [
        _member("../evil.jpg", b"x"), _member("/abs.jpg", b"x"),
        _member("00000000.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        _member("00000000.pickle", pickle.dumps(_Boom(str(witness)))),
        _member("00000000.pyd", b"MZ\x90\x00"),
    ])
    with pytest.warns(UserWarning) as caught:
        samples = list(open_dataset(ds))
    text = " | ".join(str(w.message) for w in caught)
    assert "'../evil.jpg': unsafe member name" in text and "'/abs.jpg': unsafe member name" in text
    assert "not a regular file" in text and "'00000000.pickle' (not an fgbg field)" in text
    assert "'00000000.pyd' (not an fgbg field)" in text
    assert len(samples) == 18 and samples[0]["image"].shape == (224, 224, 3)
    assert not witness.exists() and sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("/evil.jpg").exists() and not (ds.parent / "evil.jpg").exists()


def test_non_utf8_name_skipped(ds: Path) -> None:
    info = tarfile.TarInfo("x")
    info.name = "caf\udce9.jpg"  # a raw 0xE9 byte once encoded with surrogateescape
    info.size = 1
    _rewrite(ds, [(info, b"y")])
    with pytest.warns(UserWarning, match="non-UTF-8"):
        assert len(list(open_dataset(ds))) == 18


def test_decompression_bomb_refused(ds: Path) -> None:
    png = bytearray(encode_png(np.zeros((8, 8), np.uint8)))
    png[16:24] = (50000).to_bytes(4, "big") + (50000).to_bytes(4, "big")
    _rewrite(ds, [], replace={"00000002.mask.png": bytes(png)})
    before = snapshot(ds)
    with pytest.raises(DatasetError, match=r"sample 00000002 mask: image declares 50000x50000 pixels"):
        list(open_dataset(ds))
    assert open_dataset(ds)[1]["key"] == "00000001"  # the other samples stay readable
    assert snapshot(ds) == before  # reading wrote nothing
