"""Collusions: a shard damaged together with consistent lies in its receipt and manifest entry.

A forger (or a buggy copy tool) rewrites a damaged shard's ``bytes`` and ``sha256`` in its
receipt and its manifest entry; a more careful one fixes the manifest's totals too; the most
careful one also recomputes the per-sample digests. For each kind of damage and each level of
lie: the readers hand out only the original samples or raise ``DatasetError`` (never a sample
pieced together from two), verify names the damaged shard, repair restores every file's
original bytes, and a second verify is clean.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import sample_fingerprint, snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.readers import DatasetError, open_dataset
from fgbg.readers.schema import sample_digest

SHARD = 6  # samples per shard
LIES = ("receipt+entry", "totals", "digests")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("collusion") / "ds"
    build(out, BuildConfig(placements=1, shard_size=SHARD), *demo_inputs, formats=("tar", "hdf5"), progress=False,
          workers=1)
    return out


@pytest.fixture(scope="module")
def reference(pristine: Path) -> dict[str, list[tuple[str, str]]]:
    return {fmt: [sample_fingerprint(s) for s in open_dataset(pristine, format=fmt)] for fmt in ("tar", "hdf5")}


# -- damage to a tar shard: its members as (TarInfo, bytes), rewritten -----------------------------------------------

Members = list[tuple[tarfile.TarInfo, bytes]]


def _swap(members: Members) -> Members:
    """The members' contents of samples 1 and 2 exchanged, names kept."""
    out = list(members)
    for m in range(4):
        (a, da), (b, db) = out[4 + m], out[8 + m]
        out[4 + m], out[8 + m] = (a, db), (b, da)
    return out


def _rename(members: Members) -> Members:
    """Sample 1's members renamed to sample 0's key (the issue's case)."""
    out = []
    for info, data in members:
        if info.name.startswith("00000001."):
            info.name = "00000000." + info.name.split(".", 1)[1]
        out.append((info, data))
    return out


def _remove(members: Members) -> Members:
    """Sample 1's depth map removed."""
    return [(i, d) for i, d in members if i.name != "00000001.depth.png"]


def _append(members: Members) -> Members:
    """A whole sample appended after the last: the last one's members again, under the next key."""
    extra = []
    for info, data in members[-4:]:
        copy = tarfile.TarInfo(f"{SHARD:08d}." + info.name.split(".", 1)[1])
        copy.size = len(data)
        extra.append((copy, data))
    return members + extra


def _write_tar(path: Path, members: Members) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for info, data in members:
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def _huge_header(base256: bool) -> Callable[[Path], None]:
    """The first header's size field set to 64 GiB (12 octal digits: 64 GiB - 1; or base-256),
    its checksum fixed up so only the size lies."""
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[124:136] = b"\x80" + (64 << 30).to_bytes(11, "big") if base256 else b"777777777777"
        data[148:156] = b" " * 8
        data[148:156] = b"%06o\0 " % sum(data[:512])
        path.write_bytes(bytes(data))
    return damage


def _tar_damage(edit: Callable[[Members], Members]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with tarfile.open(path) as t:
            members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
        _write_tar(path, edit(members))
    return damage


TAR_DAMAGE = {"swap": _tar_damage(_swap), "rename": _tar_damage(_rename), "remove": _tar_damage(_remove),
              "append": _tar_damage(_append), "huge-octal": _huge_header(False), "huge-base256": _huge_header(True)}


def _tar_digests(path: Path, count: int) -> list[str] | None:
    """The per-sample digests a forger computes over the damaged shard: members grouped by key
    as a WebDataset loader groups them (None when the tar does not even open)."""
    try:
        with tarfile.open(path) as t:
            groups: list[tuple[str, dict[str, bytes]]] = []
            for m in t.getmembers():
                key, suffix = m.name.split(".", 1)
                if not groups or groups[-1][0] != key:
                    groups.append((key, {}))
                groups[-1][1][suffix] = t.extractfile(m).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError):
        return None
    return [sample_digest(members) for _, members in groups][:count]


# -- damage to an HDF5 shard --------------------------------------------------------------------------------------

def _h5_fields(f: h5py.File) -> list[str]:
    return [name for name in f if name not in ("keys", "annotations")]


def _h5_samples(f: h5py.File) -> list[dict[str, bytes]]:
    out: list[dict[str, bytes]] = [{} for _ in range(len(f["keys"]))]
    for field in _h5_fields(f):
        o, blob = f[field]["offsets"][:], f[field]["bytes"][:]
        for i in range(len(out)):
            out[i][field] = blob[o[i]:o[i + 1]].tobytes()
    return out


def _h5_rewrite(f: h5py.File, samples: list[dict[str, bytes]]) -> None:
    for field in _h5_fields(f):
        blobs = [s[field] for s in samples]
        offsets = np.cumsum([0, *map(len, blobs)]).astype(np.int64)
        attrs = dict(f[field].attrs)
        del f[field]
        g = f.create_group(field)
        g.attrs.update(attrs)
        g.create_dataset("bytes", data=np.frombuffer(b"".join(blobs), np.uint8))
        g.create_dataset("offsets", data=offsets)


def _h5_swap(path: Path) -> None:
    with h5py.File(path, "a") as f:
        samples = _h5_samples(f)
        samples[1], samples[2] = samples[2], samples[1]
        _h5_rewrite(f, samples)


def _h5_rename(path: Path) -> None:
    with h5py.File(path, "a") as f:
        f["keys"][1] = f["keys"][0]


def _h5_remove(path: Path) -> None:
    with h5py.File(path, "a") as f:
        del f["depth"]


def _h5_append(path: Path) -> None:
    with h5py.File(path, "a") as f:
        samples = _h5_samples(f)
        _h5_rewrite(f, [*samples, samples[-1]])
        keys = [*f["keys"][:], f"{SHARD:08d}".encode()]
        del f["keys"]
        f.create_dataset("keys", data=np.array(keys, dtype="S8"))
        f.attrs["count"] = SHARD + 1


def _h5_garbled(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0:8] = b"\x00" * 8  # the superblock's signature
    path.write_bytes(bytes(data))


H5_DAMAGE = {"swap": _h5_swap, "rename": _h5_rename, "remove": _h5_remove, "append": _h5_append,
             "garbled": _h5_garbled}


def _h5_digests(path: Path, count: int) -> list[str] | None:
    try:
        with h5py.File(path, "r") as f:
            names = {"image": "jpg", "mask": "mask.png", "depth": "depth.png", "meta": "json"}
            return [sample_digest({names[k]: v for k, v in s.items()}) for s in _h5_samples(f)][:count]
    except (OSError, KeyError, ValueError):
        return None


# -- the lies ----------------------------------------------------------------------------------------------------

def _lie(ds: Path, rel: str, level: str) -> None:
    """Make receipt and manifest entry agree with the damaged file; ``totals``: the manifest's
    totals too; ``digests``: the receipt's per-sample digests recomputed as well."""
    data = (ds / rel).read_bytes()
    fmt = "hdf5" if rel.endswith(".h5") else "tar"
    digest = hashlib.sha256(data).hexdigest()
    receipt = json.loads((ds / (rel + ".json")).read_bytes())
    receipt.update(bytes=len(data), sha256=digest)
    if level == "digests":
        forged = (_h5_digests if fmt == "hdf5" else _tar_digests)(ds / rel, receipt["count"])
        if forged is not None:
            receipt["digests"] = forged + receipt["digests"][len(forged):]
    (ds / (rel + ".json")).write_text(json.dumps(receipt))
    manifest = json.loads((ds / "manifest.json").read_bytes())
    for entry in manifest["shards"][fmt]:
        if entry["name"] == rel:
            old = entry["bytes"]
            entry.update(bytes=len(data), sha256=digest)
            if level != "receipt+entry":
                manifest["totals"]["bytes"][fmt] += len(data) - old
    (ds / "manifest.json").write_text(json.dumps(manifest))


def _readers_exact_or_error(ds: Path, reference: dict[str, list[tuple[str, str]]]) -> None:
    """Every read path hands out exactly the original samples until it raises DatasetError."""
    for fmt, want in reference.items():
        try:
            d = open_dataset(ds, format=fmt)
        except DatasetError:
            continue
        got = []
        with contextlib.suppress(DatasetError):  # every sample before the error is an original
            for s in d:
                got.append(sample_fingerprint(s))
        assert got == want[:len(got)], fmt
        for i in range(SHARD + 1):
            with contextlib.suppress(DatasetError):
                assert sample_fingerprint(d[i]) == want[i], (fmt, i)
        with contextlib.suppress(DatasetError):
            batch = d.get_many([2, 1, 0, 3])
            assert [sample_fingerprint(s) for s in batch] == [want[2], want[1], want[0], want[3]], fmt
        streamed = []
        with contextlib.suppress(DatasetError):
            for s in d.stream(shuffle=True, seed=3, partial="uneven"):
                streamed.append(sample_fingerprint(s))
        assert set(streamed) <= set(want), fmt


def _run(pristine: Path, reference: dict[str, list[tuple[str, str]]], tmp_path: Path, rel: str,
         damage: Callable[[Path], None], level: str) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(pristine, ds)
    damage(ds / rel)
    resized = (ds / rel).stat().st_size != (pristine / rel).stat().st_size
    _lie(ds, rel, level)
    _readers_exact_or_error(ds, reference)
    report = verify(str(ds), workers=1)
    assert any(p.where == rel for p in report.problems), report.text()  # the damaged shard is named...
    if level == "receipt+entry" and resized:  # ...beside the metadata finding that once stopped verify
        assert any(p.where == "manifest.json" and "is not the sum of its shards' bytes" in p.what
                   for p in report.problems), report.text()
    assert main(["verify", str(ds)]) == 1
    before, _, after = repair(str(ds), workers=1)
    assert rel in {p.where for p in before.problems}
    assert after.ok, after.text()
    assert snapshot(ds) == snapshot(pristine)
    assert verify(str(ds), workers=1).ok


@pytest.mark.parametrize("level", LIES)
@pytest.mark.parametrize("kind", list(TAR_DAMAGE))
def test_tar_collusion(pristine: Path, reference: dict[str, list[tuple[str, str]]], tmp_path: Path, kind: str,
                       level: str) -> None:
    _run(pristine, reference, tmp_path, "shards/000000.tar", TAR_DAMAGE[kind], level)


@pytest.mark.parametrize("level", LIES)
@pytest.mark.parametrize("kind", list(H5_DAMAGE))
def test_hdf5_collusion(pristine: Path, reference: dict[str, list[tuple[str, str]]], tmp_path: Path, kind: str,
                        level: str) -> None:
    _run(pristine, reference, tmp_path, "shards/000000.h5", H5_DAMAGE[kind], level)


def test_unparseable_manifest_still_checks_the_planned_shards(pristine: Path, tmp_path: Path) -> None:
    """The manifest is not even JSON: verify checks the shards the build record's plan implies
    (against their receipts) and names the damaged one; repair restores every file."""
    ds = tmp_path / "ds"
    shutil.copytree(pristine, ds)
    (ds / "manifest.json").write_bytes(b"{not json")
    data = bytearray((ds / "shards" / "000001.tar").read_bytes())
    data[3000] ^= 0x01
    (ds / "shards" / "000001.tar").write_bytes(bytes(data))
    (ds / "shards" / "000002.h5.json").unlink()
    report = verify(str(ds), workers=1)
    found = {(p.where, p.what.split(" (")[0]) for p in report.problems}
    assert ("shards/000001.tar", "sha256 differs from its receipt") in found, report.text()
    assert ("shards/000001.tar", "bytes differ from the receipt's digest") in found
    assert ("shards/000002.h5.json", "receipt missing") in found
    assert any(p.where == "manifest.json" and "not valid JSON" in p.what for p in report.problems)
    assert report.shards == 6 and report.samples_per_format == {"tar": 18, "hdf5": 18}
    _, _, after = repair(str(ds), workers=1)
    assert after.ok and snapshot(ds) == snapshot(pristine)


def test_receipts_without_digests_are_proven_by_a_fresh_build(pristine: Path, tmp_path: Path) -> None:
    """Receipts from before per-sample digests prove nothing about a shard's samples: repair
    rebuilds those shards from the plan (here: the same bytes), and their receipts regain digests."""
    ds = tmp_path / "ds"
    shutil.copytree(pristine, ds)
    for receipt in (ds / "shards").glob("*.json"):
        r = json.loads(receipt.read_bytes())
        r.pop("digests")
        receipt.write_text(json.dumps(r))
    shard = (ds / "shards" / "000002.tar").stat().st_mtime_ns
    assert verify(str(ds), workers=1).ok  # consistent, and decoded: nothing found
    _, result, after = repair(str(ds), workers=1)
    assert result.built == 3 and after.ok and snapshot(ds) == snapshot(pristine)
    assert (ds / "shards" / "000002.tar").stat().st_mtime_ns != shard


def test_a_forged_plan_of_any_size_costs_nothing(pristine: Path, tmp_path: Path) -> None:
    """A build record rewritten with its fingerprint recomputed to plan 2*10^9 shards: verify
    checks the shards against the manifest instead, within bounded memory, and says why."""
    import dataclasses
    import tracemalloc

    from fgbg.builder.manifest import read_record
    from fgbg.builder.storage import open_store

    ds = tmp_path / "ds"
    shutil.copytree(pristine, ds)
    record = read_record(open_store(ds))
    forged = dataclasses.replace(record, config=dataclasses.replace(record.config, shard_size=1,
                                                                    placements=10**8))
    (ds / "build.json").write_bytes(forged.to_bytes())
    tracemalloc.start()
    try:
        report = verify(str(ds), workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, peak
    assert any(p.where == "build.json" and "far more than this dataset's files hold" in p.what
               for p in report.problems), report.text()
    assert report.samples_per_format == {"tar": 18, "hdf5": 18}  # every shard still checked, by the manifest
