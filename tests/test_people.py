"""--people: several people per composite, painted farther first, none hidden beyond the
bound, an instance map consistent with the union mask, one annotation entry per person; the
plan's draws a pure function of the position; default builds untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.verify import verify
from fgbg.builder.errors import FgbgError
from fgbg.builder.inputs import load_inputs
from fgbg.builder.manifest import read_record
from fgbg.builder.people import Person, arrange, hidden_shares, paint_ids, paint_order, union_box
from fgbg.builder.plan import Plan
from fgbg.builder.shard import Foregrounds
from fgbg.builder.storage import open_store
from fgbg.readers import open_dataset

BASE = {"placements": 2, "shard_size": 6, "quality": 95}


def _person(draw: int, x: int, y: int, w: int = 10, h: int = 20) -> Person:
    return Person(draw, 0, 0, x, y, w, h, 1.0, 0, w, h, -1, 0.0)


def test_paint_order_is_farther_first() -> None:
    near, far, tie = _person(0, 0, 30), _person(1, 5, 0), _person(2, 40, 0)
    assert paint_order([near, far, tie]) == [far, tie, near]  # bottom edge, then draw


def test_ids_and_hidden_shares() -> None:
    a, b = _person(0, 0, 0), _person(1, 5, 10)  # b is nearer (lower) and covers a's lower right
    masks = [np.full((20, 10), 255, np.uint8)] * 2
    ids = paint_ids([a, b], masks, 40)
    assert (ids[0:10, 0:10] == 1).all() and (ids[10:30, 5:15] == 2).all() and ids[30:].max() == 0
    assert hidden_shares(masks, ids) == [50 / 200, 0.0]  # a: 10 x 5 pixels covered of 200
    assert union_box([a, b]) == (slice(0, 30), slice(0, 15))
    assert np.array_equal(paint_ids([a, b], masks, 40, union_box([a, b])), ids[0:30, 0:15])  # the same, boxed
    assert hidden_shares(masks, ids, [200, 200]) == hidden_shares(masks, ids)


def test_arrange_redraws_a_person_that_would_hide_too_much() -> None:
    first = _person(0, 0, 0)
    mask = np.full((20, 10), 255, np.uint8)
    tries: list[tuple[int, int]] = []

    def candidate(person: int, attempt: int) -> Person:
        tries.append((person, attempt))
        return _person(person, 0, 1) if attempt < 2 else _person(person, 20, 5)  # on top of the first, then apart

    order, ids = arrange(first, 2, candidate, lambda p: (mask, 200), 0.5, 40)
    assert tries == [(1, 0), (1, 1), (1, 2)] and [p.draw for p in order] == [0, 1]
    assert max(hidden_shares([mask, mask], ids)) == 0.0
    never, _ = arrange(first, 3, lambda person, attempt: _person(person, 0, 1), lambda p: (mask, 200), 0.5, 40)
    assert [p.draw for p in never] == [0]  # nobody fits: left out after ATTEMPTS draws, the first kept


def test_plan_draws_are_pure() -> None:
    cfg = BuildConfig(people=(1, 4), max_occlusion=0.3, placements=3)
    plan = Plan(cfg, [(70, 100)] * 5, 4)
    p = plan.params(0, plan.n_samples)
    assert set(p.people.tolist()) == {1, 2, 3, 4} and (p.fg_end == 5).all()
    again = plan.params(7, 5)
    assert plan.extra(p, 9, 2, 1) == plan.extra(again, 2, 2, 1)  # a function of the sample, not of the run
    fgs = {plan.extra(p, j, 1, 0)[0] for j in range(len(p))}
    assert fgs == set(range(5))  # extra people come from every foreground
    one = Plan(BuildConfig(placements=3), [(70, 100)] * 5, 4).params(0, plan.n_samples)
    for f in ("bg", "fg", "flip", "x", "y", "w", "h", "scale"):  # the first person is the plan without --people
        assert np.array_equal(getattr(p, f), getattr(one, f))


def test_config_checks() -> None:
    with pytest.raises(FgbgError, match=r"--people must be MIN-MAX with 1 <= MIN <= MAX <= 16, got 3-2"):
        BuildConfig(people=(3, 2), max_occlusion=0.5)
    with pytest.raises(FgbgError, match=r"--max-occlusion must be in \[0, 1\), got 1.0"):
        BuildConfig(people=(1, 2), max_occlusion=1.0)
    with pytest.raises(FgbgError, match="--max-occlusion needs --people"):
        BuildConfig(max_occlusion=0.5)


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("people") / "a"
    build(out, BuildConfig(**BASE, people=(2, 4), max_occlusion=0.4), *demo_inputs, progress=False,  # type: ignore[arg-type]
          workers=1, formats=("tar", "hdf5"))
    return out


def test_people_build(crowd: Path, tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    cfg = BuildConfig(**BASE, people=(2, 4), max_occlusion=0.4)  # type: ignore[arg-type]
    build(tmp_path / "b", cfg, *demo_inputs, progress=False, workers=2, formats=("tar", "hdf5"))
    assert snapshot(crowd) == snapshot(tmp_path / "b")  # deterministic, whatever the workers
    ds = open_dataset(crowd)
    assert ds.metadata.format_version == 2 and ds.metadata.fields["instances"].member == "instances.png"
    record = json.loads((crowd / "build.json").read_bytes())
    assert record["format_version"] == 2 and record["config"]["people"] == [2, 4]
    store = open_store(crowd)
    fgs = Foregrounds(load_inputs(store, read_record(store).inputs), 0, False, 224)
    counts = []
    h5 = open_dataset(crowd, format="hdf5")
    for s, t in zip(ds, h5, strict=True):
        m, ids, mask = s["meta"], s["instances"], s["mask"]
        assert np.array_equal(ids, t["instances"])  # the same map in both formats
        people = m["people"]
        counts.append(len(people))
        assert [p["instance"] for p in people] == list(range(1, len(people) + 1))
        assert sorted(p["draw"] for p in people)[0] == 0 and len({p["draw"] for p in people}) == len(people)
        first = next(p for p in people if p["draw"] == 0)
        same = ("x", "y", "w", "h", "fg", "flip")
        assert {k: first[k] for k in same} == {k: m[k] for k in same}
        assert [p["y"] + p["h"] for p in people] == sorted(p["y"] + p["h"] for p in people)  # farther first
        assert np.array_equal(ids > 0, mask > 0) and int(ids.max()) == len(people)  # ids cover the union
        own = []
        for k, p in enumerate(people, 1):
            fg = fgs.get(p["fg"]["index"], p["flip"], p["w"], p["h"])
            own.append(fg.mask)
            box = ids[p["y"]:p["y"] + p["h"], p["x"]:p["x"] + p["w"]]
            assert (ids == k).sum() > 0 and (box[fg.mask > 0] >= k).all()  # only nearer people over it
        assert max(hidden_shares(own, ids)) <= 0.4 + 1e-9  # the occlusion bound
    assert min(counts) >= 1 and max(counts) >= 3 and sum(c >= 2 for c in counts) > len(counts) // 2
    assert verify(str(crowd), deep=True).ok


def test_people_resume(crowd: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(crowd, copy)
    before = snapshot(copy)
    (copy / "shards" / "000001.tar").unlink()
    (copy / "manifest.json").unlink()
    assert build(copy, None, progress=False, workers=1).built == 1
    assert snapshot(copy) == before  # the rebuilt shard is byte-identical


def test_cli_and_coco(crowd: Path, tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    assert main(["export", str(crowd), "--coco", str(tmp_path / "coco")]) == 0
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    ds = open_dataset(crowd)
    for s in ds:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[int(s["key"])]))
        assert len(anns) == int(s["instances"].max())  # one per person
        for k, a in enumerate(sorted(anns, key=lambda a: a["id"]), 1):
            assert np.array_equal(coco.annToMask(a).astype(bool), s["instances"] == k)
    bg, fg = (str(p) for p in demo_inputs)
    args = ["build", "--bg", bg, "--fg", fg, "--placements", "1", "--no-progress", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--position", "uniform"]) == 0
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")  # the defaults: no new key, same bytes
    config = open_dataset(tmp_path / "a").manifest["config"]
    assert not {"people", "max_occlusion", "position", "person_height"} & set(config)
    assert main([*args, "--out", str(tmp_path / "c"), "--people", "1-2"]) == 0
    assert open_dataset(tmp_path / "c").manifest["config"]["max_occlusion"] == 0.5  # the default bound
    assert main([*args, "--out", str(tmp_path / "d"), "--people", "two"]) == 2


def test_a_person_apart_needs_no_masks() -> None:
    """A candidate whose box touches nobody's is accepted without looking at any mask (it can
    hide nobody); one that overlaps is checked on the masks."""
    first = _person(0, 0, 0)
    looked: list[int] = []

    def mask_of(p: Person) -> tuple[np.ndarray, int]:
        looked.append(p.draw)
        return np.full((p.h, p.w), 255, np.uint8), p.w * p.h

    order, ids = arrange(first, 2, lambda person, attempt: _person(person, 10, 0), mask_of, 0.0, 40)
    assert [p.draw for p in order] == [0, 1] and (ids[0:20, 10:20] == 2).all()
    assert sorted(set(looked)) == [0, 1] and len(looked) == 2  # only for the final map
    looked.clear()
    arrange(first, 2, lambda person, attempt: _person(person, 9, 0), mask_of, 0.0, 40)  # one column shared
    assert len(looked) > 2


def test_raw_hdf5_holds_the_instance_maps(crowd: Path, tmp_path: Path) -> None:
    """The raw HDF5 layout stores decoded pixels: the instance maps too, equal to the tar's."""
    from fgbg.builder.commands.convert import convert

    convert(crowd, tmp_path / "raw", "hdf5", hdf5_layout="raw", progress=False, workers=1)
    a, b = open_dataset(crowd), open_dataset(tmp_path / "raw")
    assert b.metadata.hdf5_layout == "raw" and b.metadata.format_version == 2
    for s, t in zip(a, b, strict=True):
        assert np.array_equal(s["instances"], t["instances"]) and s["meta"] == t["meta"]
    assert verify(str(tmp_path / "raw"), deep=True).ok
