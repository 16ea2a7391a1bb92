"""fgbg append: new combinations in new shards; existing shards never rewritten; resumable."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import kill_when, local_receipts, snapshot, start_fgbg

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.append import append
from fgbg.builder.commands.verify import verify
from fgbg.builder.demo import write_demo_inputs
from fgbg.builder.errors import FgbgError
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=3, shard_size=8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("append")
    bg, fg = write_demo_inputs(d / "all", 4, 4)
    out = {"bg": bg, "fg": fg, "bg_new": d / "bg_new", "fg_new": d / "fg_new"}
    out["bg_new"].mkdir()
    out["fg_new"].mkdir()
    shutil.move(str(bg / "room_003.jpg"), out["bg_new"])
    shutil.move(str(fg / "person_002.png"), out["fg_new"])
    shutil.move(str(fg / "person_003.png"), out["fg_new"])
    return out


def test_append_grows_without_rewriting(tmp_path: Path, folders: dict[str, Path]) -> None:
    out = tmp_path / "ds"
    build(out, CFG, folders["bg"], folders["fg"], progress=False)  # 3 bg x 2 fg x 2 x 3 = 36
    before = snapshot(out)
    res = append(out, folders["bg_new"], folders["fg_new"], progress=False)
    assert res.samples == 4 * 4 * 2 * 3 and (res.built, res.reused) == (8, 5)  # 60 new samples: 8 shards
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k.startswith("shards/0000") and int(k[7:13]) < 5} == {
        k: v for k, v in before.items() if k.startswith("shards/")}
    samples = list(open_dataset(out))
    assert [s["meta"]["index"] for s in samples] == list(range(96))
    combos = {(s["meta"]["bg"]["index"], s["meta"]["fg"]["index"], s["meta"]["flip"], s["meta"]["placement"])
              for s in samples}
    assert len(combos) == 96  # every combination of the 4 x 4 inputs exactly once
    assert {s["meta"]["bg"]["name"] for s in samples[36:]} >= {"room_003.jpg"}
    assert all(s["meta"]["bg"]["index"] == 3 or s["meta"]["fg"]["index"] >= 2 for s in samples[36:])
    report = verify(str(out), deep=True)
    assert report.ok, report.text()
    m = open_dataset(out).manifest
    assert m["shards"]["tar"][5]["first"] == 36 and len(m["lineage"]) == 1
    images = np.stack([s["mask"] for s in samples]).reshape(-1).astype(np.int64)
    assert m["statistics"]["mask"]["mean"][0] == pytest.approx(images.sum() / (images.size * 255), abs=1e-15)
    with pytest.raises(FgbgError, match=r"already holds room_003\.jpg"):
        append(out, folders["bg_new"], None, progress=False)


def test_append_killed_then_rerun(tmp_path: Path, folders: dict[str, Path]) -> None:
    ref = tmp_path / "ref"
    build(ref, CFG, folders["bg"], folders["fg"], progress=False)
    append(ref, folders["bg_new"], folders["fg_new"], progress=False)
    for n in (random.Random(seed).randrange(0, 8) for seed in (0, 1)):  # random moments
        out = tmp_path / f"ds{n}"
        build(out, CFG, folders["bg"], folders["fg"], progress=False)
        proc = start_fgbg(["append", str(out), "--bg", str(folders["bg_new"]), "--fg", str(folders["fg_new"]),
                           "--workers", "2", "--no-progress"])
        kill_when(proc, lambda: local_receipts(out) >= 5 + n)  # noqa: B023 (called before the next iteration)
        append(out, folders["bg_new"], folders["fg_new"], progress=False)  # the same command resumes
        assert snapshot(out) == snapshot(ref)


def test_repair_recovers_the_record_of_an_appended_dataset(tmp_path: Path, folders: dict[str, Path]) -> None:
    """build.json lost after an append: the record (with its segments and lineage) comes back
    from the manifest, and a lost shard of the appended segment is rebuilt byte-identical."""
    from fgbg.builder.commands.repair import repair

    out = tmp_path / "ds"
    build(out, CFG, folders["bg"], folders["fg"], progress=False)
    append(out, folders["bg_new"], folders["fg_new"], progress=False)
    pristine = snapshot(out)
    (out / "build.json").unlink()
    (out / "shards" / "000010.tar").unlink()
    before, result, after = repair(str(out), progress=False)
    assert not before.ok and after.ok and result.built == 1
    assert snapshot(out) == pristine
