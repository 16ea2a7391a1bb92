"""Hostile shards: the readers reject or skip them with a message; nothing is written or executed."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
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


# -- samples whose members are not exactly the dataset's: every read path refuses them whole ----------------------

def _forge(ds: Path, rel: str, edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], list[tuple[tarfile.TarInfo,
                                                                                                 bytes]]]) -> None:
    """Shard ``rel`` rewritten with ``edit`` applied to its members, and its receipt (offsets,
    size, sha256) and manifest entry (and totals) made to agree: a consistent lie, so every
    read path -- the fast windows included -- meets the edited members at the recorded offsets."""
    path = ds / rel
    zst = rel.endswith(".zst")
    plain = path.read_bytes()
    if zst:
        plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(plain), read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(plain)) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
    buf = io.BytesIO()
    starts = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for info, payload in edit(members):
            if info.name.endswith(".jpg"):  # every sample starts with its image
                starts.append(buf.tell())
            info.size = len(payload)
            out.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    if zst:
        frames = [zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data[a:b])
                  for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]
        starts = [sum(map(len, frames[:i])) for i in range(len(frames))]
        data = b"".join(frames)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    receipt = json.loads((ds / (rel + ".json")).read_bytes())
    receipt.update(bytes=len(data), sha256=digest, offsets=starts)
    (ds / (rel + ".json")).write_text(json.dumps(receipt))
    manifest = json.loads((ds / "manifest.json").read_bytes())
    fmt = "tarzst" if zst else "tar"
    for entry in manifest["shards"][fmt]:
        if entry["name"] == rel:
            manifest["totals"]["bytes"][fmt] += len(data) - entry["bytes"]
            entry.update(bytes=len(data), sha256=digest)
    (ds / "manifest.json").write_text(json.dumps(manifest))


def _renamed(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    for info, _ in members:
        if info.name.startswith("00000001."):
            info.name = "00000000." + info.name.split(".", 1)[1]
    return members


def _repeated(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    at = next(i for i, (m, _) in enumerate(members) if m.name == "00000001.json")
    twin = tarfile.TarInfo("00000001.json")
    return [*members[:at + 1], (twin, b'{"index":1}'), *members[at + 1:]]


def _missing(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(m, d) for m, d in members if m.name != "00000001.depth.png"]


def _foreign(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    for info, _ in members:
        if info.name == "00000001.mask.png":
            info.name = "00000001.mask.npy.zst"  # a field's other member, not this dataset's
    return members


@pytest.mark.parametrize("fmt", ["tar", "tarzst"])
@pytest.mark.parametrize(("edit", "read_before", "message"), [
    (_renamed, [], r"sample 00000000: member '00000000\.jpg' appears twice"),
    (_repeated, ["00000000"], r"sample 00000001: member '00000001\.json' appears twice"),
    (_missing, ["00000000"], r"sample 00000001 has no depth\.png member"),
    (_foreign, ["00000000"], r"member '00000001\.mask\.npy\.zst' is not one of this dataset's members"),
])
def test_members_not_the_datasets_are_refused_whole(tmp_path: Path, demo_inputs: tuple[Path, Path], fmt: str,
                                                     edit: Any, read_before: list[str], message: str) -> None:
    """Renamed, repeated, missing or foreign members: sequential reads (fast windows, then the
    general walker), ds[i], get_many and streams, decoded or not, hand out no part of the
    sample and raise a DatasetError naming shard and key; the samples around it read exactly."""
    ds = tmp_path / "ds"
    build(ds, BuildConfig(placements=1, shard_size=18), *demo_inputs, formats=(fmt,), progress=False, workers=1)
    want = {s["key"]: s["image"].tobytes() for s in open_dataset(ds)}
    rel = "shards/000000.tar" + (".zst" if fmt == "tarzst" else "")
    _forge(ds, rel, edit)
    for decode in (True, False):
        d = open_dataset(ds, decode=decode)
        got = []
        with pytest.raises(DatasetError, match=message) as caught:
            for s in d:
                got.append(s["key"])
        assert got == read_before and f"{rel}: " in str(caught.value)
        with pytest.raises(DatasetError, match=r"sample 00000001"):
            d[1]
        with pytest.raises(DatasetError, match=r"sample 00000001"):
            d.get_many([2, 1])
        with pytest.raises(DatasetError):
            list(d.stream(shuffle=True, seed=2))
    d = open_dataset(ds)
    assert d[0]["image"].tobytes() == want["00000000"] and d[2]["image"].tobytes() == want["00000002"]
    assert [s["image"].tobytes() for s in d.get_many([3, 0, 17])] == [want[k] for k in ("00000003", "00000000",
                                                                                           "00000017")]
