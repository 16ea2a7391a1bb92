"""verify names exactly what is wrong; repair restores byte-identical shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.builder.errors import FgbgError

CFG = BuildConfig(placements=4, shard_size=10)  # 72 samples, 8 shards


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("v") / "ds"
    build(out, CFG, *demo_inputs, formats=("tar", "hdf5"), progress=False)
    return out


@pytest.fixture()
def ds(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ds"
    shutil.copytree(pristine, copy)
    return copy


def _problems(path: Path, deep: bool = False) -> set[tuple[str, str]]:
    return {(p.where, p.what.split(" (")[0]) for p in verify(str(path), deep=deep).problems}


def test_clean_dataset_verifies(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify(str(ds), deep=True)
    assert report.ok and report.shards == 16 and report.samples == 72  # tar + hdf5: each copy checked, counted once
    assert report.samples_per_format == {"hdf5": 72, "tar": 72}
    assert report.text().endswith(": 72 samples checked in each of hdf5 and tar (16 shards; bytes proven by digest: "
                                  "144, decoded: 0, masks repainted: 144) (deep): OK")
    assert main(["verify", str(ds), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["problems"] == [] and out["samples_checked"] == 72
    assert out["samples_checked_per_format"] == {"hdf5": 72, "tar": 72}
    assert out["proofs"] == {"digest": 144, "decoded": 0, "repainted": 0}


def test_decoding_runs_where_it_proves_more(ds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a sample whose bytes match its digest has only its annotation decoded;
    ``decode=True`` decodes every member; samples without digests are decoded whole."""
    from fgbg.builder.commands import shard_check

    decoded: list[str] = []
    real = shard_check.decode_member

    def counted(field: str, data: bytes, *args: object) -> object:
        decoded.append(field)
        return real(field, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(shard_check, "decode_member", counted)
    report = verify(str(ds), workers=1)
    assert report.ok and (report.proofs.digest, report.proofs.decoded) == (144, 0)
    assert set(decoded) == {"meta"} and len(decoded) == 144
    decoded.clear()
    report = verify(str(ds), workers=1, decode=True)
    assert report.ok and (report.proofs.digest, report.proofs.decoded) == (144, 144)
    assert sorted(set(decoded)) == ["depth", "image", "mask", "meta"] and len(decoded) == 4 * 144
    for receipt in (ds / "shards").glob("*.tar.json"):  # receipts from before digests existed
        r = json.loads(receipt.read_bytes())
        r.pop("digests")
        receipt.write_text(json.dumps(r))
    decoded.clear()
    report = verify(str(ds), workers=1)
    assert (report.proofs.digest, report.proofs.decoded) == (72, 72) and decoded.count("image") == 72
    assert {p.what for p in report.problems} == {"has no per-sample digests while the others do (stripped?)"}
    assert main(["verify", str(ds), "--decode"]) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_index_files_are_read_once(ds: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """verify reads the manifest and the record once, and streams the annotations index once,
    a block of rows per shard handed to that shard's check: never the whole index in memory
    (4.3 GB of CSV at 100M samples)."""
    from collections import Counter

    from fgbg.builder.storage import LocalStore
    from fgbg.readers.fs import Location
    from fgbg.readers.index import CsvRows

    reads: Counter[str] = Counter()
    real, real_open, real_fill = LocalStore.read_bytes, Location.open, CsvRows._fill
    held: list[int] = []

    def counted(self: LocalStore, rel: str) -> bytes:
        reads[rel] += 1
        return real(self, rel)

    def opened(self: Location, rel: str, buffering: int = 1 << 20) -> object:
        reads["open " + rel] += 1
        return real_open(self, rel, buffering)

    def fill(self: CsvRows) -> bool:
        held.append(len(self._buf))
        return real_fill(self)

    monkeypatch.setattr(LocalStore, "read_bytes", counted)
    monkeypatch.setattr(Location, "open", opened)
    monkeypatch.setattr(CsvRows, "_fill", fill)
    monkeypatch.setattr(CsvRows, "CHUNK", 512)  # small blocks: the stream is read in many reads
    report = verify(str(ds), deep=True, workers=workers)
    assert report.ok and report.samples == 72
    assert reads["manifest.json"] == reads["build.json"] == 1
    assert reads["annotations.csv"] == 0 and reads["open annotations.csv"] == 1
    size = (ds / "annotations.csv").stat().st_size
    assert len(held) >= size // 512 and max(held) < 2 * 512 + 7 * 256  # a shard's rows and a block, never the file


def test_deep_verify_without_a_build_record(ds: Path) -> None:
    """The manifest holds the record's fields: deep checks still run, the loss is reported."""
    (ds / "build.json").unlink()
    report = verify(str(ds), deep=True, workers=2)
    assert report.samples == 72 and [(p.where, p.what) for p in report.problems] == [
        ("build.json", "missing or unreadable (repair needs it)")]


def test_each_fault_is_named(ds: Path, pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = ds / "shards"
    data = bytearray((shards / "000002.tar").read_bytes())
    data[3000] ^= 0x01  # one flipped bit inside a JPEG
    (shards / "000002.tar").write_bytes(bytes(data))
    tail = (shards / "000003.tar").read_bytes()
    (shards / "000003.tar").write_bytes(tail[: len(tail) // 2])
    (shards / "000004.h5").unlink()
    (shards / "000005.tar.json").unlink()
    (shards / "000001.tar.tmp-4242-deadbeef").write_bytes(b"partial")
    manifest = json.loads((ds / "manifest.json").read_bytes())
    manifest["config"]["quality"] = 95
    (ds / "manifest.json").write_text(json.dumps(manifest))
    assert _problems(ds) == {
        ("shards/000002.tar", "sha256 differs from the manifest"),
        ("shards/000002.tar", "bytes differ from the receipt's digest"),  # named: see the sample below
        ("shards/000003.tar", "size 76800 differs from the manifest's 153600"),
        ("shards/000003.tar", "unreadable after sample 00000033"),
        ("shards/000004.h5", "missing"),
        ("shards/000005.tar.json", "receipt missing"),
        ("shards/000001.tar.tmp-4242-deadbeef", "stale temporary file"),
        ("manifest.json", "field 'config' differs from build.json"),
        ("README.md", "dataset card differs from the one the manifest makes"),  # it shows quality 90
    }
    assert ("shards/000002.tar", "bytes differ from the receipt's digest", "00000020") in {
        (p.where, p.what, p.sample) for p in verify(str(ds)).problems}  # the flipped bit is in sample 20
    assert main(["verify", str(ds)]) == 1
    assert "9 problem(s)" in capsys.readouterr().out
    assert main(["repair", str(ds), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt 4 of 8 shards; dataset verifies clean" in out and "found: shards/000004.h5: missing" in out
    assert snapshot(ds) == snapshot(pristine)


def test_deep_finds_a_wrong_mask(ds: Path) -> None:
    from fgbg.builder.shards import EncodedSample, TarShardWriter
    from fgbg.builder.shards.base import ShardMeta
    from fgbg.readers import open_dataset

    rd = open_dataset(ds, format="tar")
    members = list(rd.iter_members(0))
    key, m = members[3]
    meta = json.loads(m["meta"])
    meta["x"] = (meta["x"] + 1) % 100  # an annotation that no longer matches its mask
    index = (ds / "annotations.csv").read_text().splitlines()
    assert _problems(ds, deep=True) == set()
    path = ds / "shards" / "000000.tar"
    with TarShardWriter(path, ShardMeta(0, 0, 10, 8, 224, (112, 112))) as w:
        for k, mm in members:
            files = {"jpg": mm["image"], "mask.png": mm["mask"], "depth.png": mm["depth"],
                     "json": json.dumps(meta).encode() if k == key else mm["meta"]}
            w.add(EncodedSample(k, files))  # type: ignore[arg-type]
        w.close()
    problems = {(p.where, p.what, p.sample) for p in verify(str(ds), deep=True).problems}
    assert ("shards/000000.tar", "mask differs from the one its annotation implies", key) in problems
    assert any(w == "shards/000000.tar" and s == key and "differs from the index in x" in what
               for w, what, s in problems)
    assert index == (ds / "annotations.csv").read_text().splitlines()


def test_repair_refuses_a_changed_input(ds: Path) -> None:
    (ds / "shards" / "000001.tar").unlink()
    bg = ds / "inputs" / "bg" / "0001.png"
    bg.write_bytes(bg.read_bytes()[:-3] + b"xyz")
    with pytest.raises(FgbgError, match=r"inputs/bg/0001\.png: stored input does not match its recorded sha256"):
        repair(str(ds), progress=False)


def test_repair_recovers_build_record(ds: Path, pristine: Path) -> None:
    (ds / "build.json").unlink()
    (ds / "shards" / "000006.tar").unlink()
    before, result, after = repair(str(ds), progress=False)
    assert not before.ok and after.ok and result.built == 1
    assert snapshot(ds) == snapshot(pristine)


def test_metadata_over_the_size_bound_is_named_not_read(ds: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Metadata files are read only up to a bound checked on their size first (256 MiB; lowered
    here so a real file exceeds it): verify names the file, a resume refuses in one line."""
    import fgbg.builder.storage.base as store_base

    monkeypatch.setattr(store_base, "MAX_METADATA_BYTES", 100)
    size = (ds / "manifest.json").stat().st_size
    problems = {(p.where, p.what) for p in verify(str(ds), workers=1).problems}
    assert ("manifest.json", f"{size} bytes, over the 100-byte bound of a metadata file") in problems
    assert main(["build", "--out", str(ds), "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: build.json: ") and "over the 100-byte bound" in err and err.count("\n") == 1
