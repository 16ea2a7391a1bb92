"""Fault injection: kill -9 of convert and repair at several moments; awkward input names."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from helpers import kill_when, local_receipts, snapshot, start_fgbg

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.convert import convert
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=4, shard_size=4)  # 72 samples, 18 shards


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("faults") / "ds"
    build(out, CFG, *demo_inputs, progress=False)
    return out


def _kill_when(args: list[str], out: Path, receipts: int) -> None:
    kill_when(start_fgbg(args), lambda: local_receipts(out) >= receipts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_convert_killed_then_rerun(source: Path, tmp_path: Path, seed: int) -> None:
    after = random.Random(seed).randrange(0, 18)  # a random moment: after that many converted shards
    ref = tmp_path / "ref"
    convert(source, ref, "hdf5", progress=False)
    out = tmp_path / "out"
    _kill_when(["convert", str(source), "--to", "hdf5", "--out", str(out), "--workers", "2", "--no-progress"], out,
               after)
    convert(source, out, "hdf5", progress=False)
    assert snapshot(out) == snapshot(ref) and verify(str(out)).ok


@pytest.mark.parametrize("seed", [0, 1])
def test_repair_killed_then_rerun(source: Path, tmp_path: Path, seed: int) -> None:
    after = random.Random(seed).randrange(0, 9)
    ds = tmp_path / "ds"
    shutil.copytree(source, ds)
    for i in range(0, 18, 2):  # lose half the shards
        (ds / "shards" / f"{i:06d}.tar").unlink()
        (ds / "shards" / f"{i:06d}.tar.json").unlink()
    # the kill waits for `after` rebuilt receipts on top of the 9 that survived
    _kill_when(["repair", str(ds), "--workers", "2", "--no-progress"], ds, 9 + after)
    _, _, after_report = repair(str(ds), progress=False)
    assert after_report.ok
    assert snapshot(ds) == snapshot(source)


def test_unicode_and_spaces_and_shared_stems(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    bg, fg = tmp_path / "fonds d'écran", tmp_path / "personnes 人"
    bg.mkdir()
    fg.mkdir()
    for i, p in enumerate(sorted(demo_inputs[0].iterdir())):
        shutil.copy(p, bg / (["salle à manger.jpg", "bureau 2.jpg", "bureau 2.png"][i]))
    for i, p in enumerate(sorted(demo_inputs[1].iterdir())):
        shutil.copy(p, fg / (["Zoë.png", "bureau 2.png", "çà et là.png"][i]))
    res = build(tmp_path / "ds", BuildConfig(placements=1, shard_size=10), bg, fg, progress=False)
    names = {s["meta"]["bg"]["name"] for s in open_dataset(tmp_path / "ds", fields=("meta",))}
    assert names == {"salle à manger.jpg", "bureau 2.jpg", "bureau 2.png"} and res.samples == 18
    assert sorted(p.name for p in (tmp_path / "ds" / "inputs" / "bg").iterdir()) == ["0000.png", "0001.png",
                                                                                    "0002.png"]
    assert verify(str(tmp_path / "ds"), deep=True).ok
