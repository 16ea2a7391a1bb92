"""End-to-end builds: determinism, exact composites, statistics, errors, lock, config checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from helpers import snapshot
from PIL import Image

from fgbg.builder import BuildConfig, build
from fgbg.builder.encode import encode_jpeg, encode_mask_png, encode_png
from fgbg.builder.errors import ConfigMismatchError, InputError, LockedError, OutputError
from fgbg.builder.manifest import read_record
from fgbg.builder.shard import ShardBuilder
from fgbg.builder.storage import DatasetLock, LocalStore
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=4, shard_size=10)  # 3 bg x 3 fg x 2 x 4 = 72 samples, 8 shards


def _build(out: Path, inputs: tuple[Path, Path], cfg: BuildConfig = CFG, **kw: object):  # type: ignore[no-untyped-def]
    return build(out, cfg, inputs[0], inputs[1], progress=False, **kw)  # type: ignore[arg-type]


def test_byte_identical_and_seed_sensitive(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    a = _build(tmp_path / "a", demo_inputs, workers=2)
    _build(tmp_path / "b", demo_inputs, workers=1)
    assert a.samples == 72 and a.shards == 8 and a.built == 8
    sa, sb = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert sa == sb
    assert {"manifest.json", "annotations.csv", "build.json", "shards/000007.tar"} <= set(sa)
    _build(tmp_path / "c", demo_inputs, BuildConfig(placements=4, shard_size=10, seed=1))
    sc = snapshot(tmp_path / "c")
    assert sc["shards/000000.tar"] != sa["shards/000000.tar"] and sc["manifest.json"] != sa["manifest.json"]
    assert sc["inputs/bg/0000.png"] == sa["inputs/bg/0000.png"]


def test_rerun_is_noop(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    _build(tmp_path / "d", demo_inputs)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*") if p.is_file()}
    again = _build(tmp_path / "d", demo_inputs)
    assert again.built == 0 and again.reused == 8
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.name != ".fgbg.lock"} == {
        k: v for k, v in before.items() if k.name != ".fgbg.lock"}
    resumed = build(tmp_path / "d", None, progress=False)  # from inputs/ alone
    assert resumed.built == 0


def test_every_sample_exact(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """Mask box = annotated box, outside the box = resized bg, shard bytes = these pixels."""
    out = tmp_path / "e"
    res = _build(out, demo_inputs)
    store = LocalStore(out)
    record = read_record(store)
    builder = ShardBuilder(store, record)
    ds = open_dataset(out)
    shard_samples = list(ds)
    assert [s["meta"]["index"] for s in shard_samples] == list(range(res.samples))
    i = 0
    for shard in range(res.shards):
        for enc in builder.samples(shard):
            meta = json.loads(enc.files["json"])
            x, y, w, h = meta["x"], meta["y"], meta["w"], meta["h"]
            ys, xs = np.nonzero(enc.mask)
            assert (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (x, y, w, h)
            bg = builder.inputs.bg[meta["bg"]["index"]]
            outside = np.ones(enc.image.shape[:2], bool)
            outside[y : y + h, x : x + w] = False
            assert np.array_equal(enc.image[outside], bg[outside])
            assert enc.files["jpg"] == encode_jpeg(enc.image, CFG.quality)
            assert enc.files["mask.png"] == encode_mask_png(enc.mask, "none")
            got = shard_samples[i]
            assert got["key"] == enc.key == f"{i:08d}" and got["meta"] == meta
            assert np.array_equal(got["mask"], enc.mask) and np.array_equal(got["depth"], enc.depth)
            i += 1
    assert i == res.samples


def test_stock_webdataset_reads_all(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    import webdataset as wds

    res = _build(tmp_path / "w", demo_inputs)
    urls = [str(tmp_path / "w" / s.name) for s in res.manifest.shards["tar"]]
    keys = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert keys == [f"{i:08d}" for i in range(72)]
    sample = next(iter(wds.WebDataset(urls, shardshuffle=False).decode("rgb8")))
    assert sample["jpg"].shape == (224, 224, 3) and sample["json"]["index"] == 0


def test_statistics_equal_bruteforce(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "s"
    res = _build(out, demo_inputs)
    store = LocalStore(out)
    builder = ShardBuilder(store, read_record(store))
    images, masks, depths = [], [], []
    for shard in range(res.shards):
        for enc in builder.samples(shard):
            images.append(enc.image)
            masks.append(enc.mask)
            depths.append(enc.depth)
    stats = msgspec.to_builtins(res.manifest.statistics)
    for name, arr, ch in (("image", images, 3), ("mask", masks, 1), ("depth", depths, 1)):
        ints = np.stack(arr).reshape(-1, ch).astype(np.int64)
        exact_mean = [int(v) / (len(ints) * 255) for v in ints.sum(0)]  # exact integer sum
        assert stats[name]["mean"] == pytest.approx(exact_mean, rel=0, abs=1e-15), name
        px = ints / 255.0  # float64 brute force: its own summation error is ~1e-12
        assert np.allclose(stats[name]["std"], px.std(0), rtol=0, atol=1e-9), name
        assert np.allclose(stats[name]["mean"], px.mean(0), rtol=0, atol=1e-9), name
    decoded = np.stack([s["image"] for s in open_dataset(out)]).reshape(-1, 3) / 255.0
    assert np.abs(decoded.mean(0) - stats["image"]["mean"]).max() < 0.002  # JPEG shifts means only slightly
    bg = np.stack(builder.inputs.bg).reshape(-1, 3) / 255.0
    assert np.allclose(stats["inputs_bg"]["mean"], bg.mean(0), rtol=0, atol=1e-9)


def test_depth_none_and_jitter(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    cfg = BuildConfig(placements=3, shard_size=50, depth="none", fg_scale=(0.6, 1.2), keep_aspect=True)
    res = _build(tmp_path / "n", demo_inputs, cfg)
    assert "depth" not in res.manifest.fields and "depth" not in res.manifest.statistics
    samples = list(open_dataset(tmp_path / "n"))
    assert len(samples) == 54 and "depth" not in samples[0]
    sizes = {(s["meta"]["w"], s["meta"]["h"]) for s in samples}
    assert len(sizes) > 10
    for s in samples:
        ys, xs = np.nonzero(s["mask"])
        m = s["meta"]
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (m["x"], m["y"], m["x"] + m["w"], m["y"] + m["h"])


# -- bad inputs: a clear error naming the problem, and an existing dataset untouched -------------
@pytest.fixture()
def existing(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> tuple[Path, dict[str, str]]:
    out = tmp_path / "existing"
    _build(out, demo_inputs)
    return out, snapshot(out)


def _bad_folders(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> dict[str, tuple[Path, Path, str]]:
    bg, fg = demo_inputs
    cases = {}
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["empty"] = (empty, fg, "holds no images")
    junk = tmp_path / "junk"
    shutil.copytree(bg, junk)
    (junk / "readme.txt").write_text("hi")
    cases["non-image"] = (junk, fg, r"readme\.txt: not an image file")
    trunc = tmp_path / "trunc"
    shutil.copytree(bg, trunc)
    data = (trunc / "room_001.jpg").read_bytes()
    (trunc / "room_001.jpg").write_bytes(data[: len(data) // 3])
    cases["truncated"] = (trunc, fg, r"room_001\.jpg: background image is corrupt or truncated")
    noalpha = tmp_path / "noalpha"
    noalpha.mkdir()
    Image.new("RGB", (40, 60), (9, 9, 9)).save(noalpha / "flat.jpg")
    cases["no alpha"] = (bg, noalpha, r"flat\.jpg: foreground has no alpha channel")
    return cases


def test_bad_inputs_leave_dataset_untouched(tmp_path: Path, demo_inputs, existing) -> None:  # type: ignore[no-untyped-def]
    out, before = existing
    for name, (bg, fg, message) in _bad_folders(tmp_path, demo_inputs).items():
        with pytest.raises(InputError, match=message):
            build(out, CFG, bg, fg, progress=False)
        with pytest.raises(InputError, match=message):  # and nothing is created for a new dataset
            build(tmp_path / f"new-{name}", CFG, bg, fg, progress=False)
        assert not (tmp_path / f"new-{name}").exists()
    assert snapshot(out) == before


def test_fg_larger_than_bg() -> None:
    with pytest.raises(Exception, match=r"foreground 300x70 .* larger than the 224x224 background"):
        BuildConfig(fg_size=(300, 70))
    with pytest.raises(Exception, match="larger than"):
        BuildConfig(fg_size=(200, 70), fg_scale=(1.0, 1.3))


def test_output_problems(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match=r"file: output path exists and is a file"):
        _build(f, demo_inputs)
    with pytest.raises(OutputError, match="is not a directory"):
        _build(f / "sub", demo_inputs)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"not empty \(holiday\.jpg"):
        _build(other, demo_inputs)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.jpg"]


def test_unwritable_output(demo_inputs: tuple[Path, Path]) -> None:
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    with pytest.raises(OutputError, match=r"/proc/fgbg-test/ds: no permission to write in /proc"):
        _build(Path("/proc/fgbg-test/ds"), demo_inputs)


def test_second_builder_refused(existing, demo_inputs) -> None:  # type: ignore[no-untyped-def]
    out, before = existing
    with DatasetLock(out):
        with pytest.raises(LockedError, match=r"another fgbg builder is writing this dataset \(pid \d+"):
            build(out, CFG, *demo_inputs, progress=False)
    assert snapshot(out) == before


def test_other_config_refused(existing, demo_inputs) -> None:  # type: ignore[no-untyped-def]
    out, before = existing
    with pytest.raises(ConfigMismatchError, match=r"seed: 0 -> 5"):
        build(out, BuildConfig(placements=4, shard_size=10, seed=5), *demo_inputs, progress=False)
    with pytest.raises(ConfigMismatchError, match=r"bg inputs: 3 -> 2 files, differing: room_002\.jpg"):
        bg2 = out.parent / "bg2"
        shutil.copytree(demo_inputs[0], bg2)
        (bg2 / "room_002.jpg").unlink()
        build(out, CFG, bg2, demo_inputs[1], progress=False)
    assert snapshot(out) == before


def test_meta_json_is_canonical_json() -> None:
    import json as _json

    from fgbg.builder.shard import meta_json

    for name in ("room.jpg", "salle à manger \"1\".png", "人.webp"):
        meta = {"index": 12, "bg": {"index": 3, "name": name}, "fg": {"index": 0, "name": "p\\q.png"}, "flip": 1,
                "placement": 19, "x": 0, "y": 154, "w": 100, "h": 70, "scale": 0.8125}
        assert meta_json(meta) == _json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def test_mask_png_filter_is_versioned(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """New datasets record ``tool.mask_png`` = "none"; a record without it (made before the
    field) gets OpenCV's default PNG again, so resume and repair stay byte-identical."""
    res = _build(tmp_path / "v", demo_inputs)
    store = LocalStore(tmp_path / "v")
    record = read_record(store)
    assert record.tool["mask_png"] == "none" and res.manifest.tool["mask_png"] == "none"
    legacy = record.with_changes(tool={k: v for k, v in record.tool.items() if k != "mask_png"})
    new_samples = list(ShardBuilder(store, record).samples(0))
    old_samples = list(ShardBuilder(store, legacy).samples(0))
    for new, old in zip(new_samples, old_samples, strict=True):
        assert new.files["mask.png"] == encode_mask_png(new.mask, "none") != old.files["mask.png"]
        assert old.files["mask.png"] == encode_png(old.mask)
        assert {k: v for k, v in new.files.items() if k != "mask.png"} == \
            {k: v for k, v in old.files.items() if k != "mask.png"}


def test_canvas_path_gives_the_same_bytes(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """Without arrays, composites are made on reused per-background canvases and masks in one
    reused batch buffer: same files (so every mask box was cleared before the next batch), and
    every canvas is the background again, the buffer all zeros, after each sample."""
    _build(tmp_path / "c", demo_inputs)
    store = LocalStore(tmp_path / "c")
    builder = ShardBuilder(store, read_record(store))
    for shard in range(3):
        with_arrays = list(builder.samples(shard))
        without = list(builder.samples(shard, images=False))
        assert [s.files for s in without] == [s.files for s in with_arrays]
        assert all(s.image is None for s in without) and all(s.image is not None for s in with_arrays)
        assert all(s.mask is None for s in without) and all(s.mask is not None for s in with_arrays)
    tables = builder.backgrounds._cache
    assert tables and all(np.array_equal(t.canvas, t.bgr) for t in tables.values())
    assert builder._masks is not None and not builder._masks.any()


def test_many_backgrounds_bounded_tables_same_bytes(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """Per-background tables live in a bounded LRU: with room for 8 of 3 backgrounds or for
    fewer than a shard touches, the samples are the same bytes, and no more tables are kept."""
    from fgbg.builder.shard import Backgrounds

    _build(tmp_path / "c", demo_inputs)
    store = LocalStore(tmp_path / "c")
    roomy = ShardBuilder(store, read_record(store))
    tight = ShardBuilder(store, read_record(store))
    tight.backgrounds = Backgrounds(tight.inputs.bg, tight.cfg.size, budget=0)
    tight.backgrounds._cache.capacity = 1  # every switch of background evicts and rebuilds
    tight.inputs.bg._cache.capacity = 1  # type: ignore[attr-defined]
    for shard in range(3):
        assert [s.files for s in tight.samples(shard, images=False)] == [
            s.files for s in roomy.samples(shard, images=False)]
    assert len(tight.backgrounds._cache) == 1 and len(tight.inputs.bg._cache) == 1  # type: ignore[attr-defined]


def test_run_record_shares_the_cores_between_densedepth_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """build and append both run shards through run_record: each DenseDepth worker gets its
    share of the cores (TensorFlow would otherwise start a thread per core in every worker)."""
    import importlib
    import os

    build_module = importlib.import_module("fgbg.builder.build")  # the attribute builder.build is the function
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(build_module, "local_runner", lambda factory, workers, pool=None: seen.append(factory.args[2]))
    monkeypatch.setattr(build_module, "complete", lambda *args: None)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    for depth, options in (("densedepth", {"weights": "w"}), ("densedepth", {"threads": 3}), ("plane", {})):
        record = SimpleNamespace(config=SimpleNamespace(depth=depth))  # only the backend's name is read
        build_module.run_record(None, record, depth_options=options,  # type: ignore[arg-type]
                                workers=2, progress=False, t0=0.0)
    assert seen == [{"weights": "w", "threads": 4}, {"threads": 3}, {}]
