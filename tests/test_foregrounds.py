"""The ``foreground`` reader field: each composite's person (or people) as pasted, on RGBA
layers the composite's size, in every access path, proven against the manifest's sha256,
decoded once per process, bounded; the composite is these layers over the background."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from input_fields import counted_reads, every_access_path, loader_batches

from fgbg.builder import BuildConfig, build
from fgbg.builder.composite import blend_box
from fgbg.builder.encode import encode_png_color
from fgbg.builder.manifest import read_record
from fgbg.builder.shard import ShardBuilder
from fgbg.builder.storage import open_store
from fgbg.readers import DatasetError, open_dataset
from fgbg.readers.foregrounds import Foregrounds, reduce_layers
from fgbg.readers.fs import Location

CFG = BuildConfig(placements=2, shard_size=10)  # 3 bg x 3 fg x 2 flips x 2 = 36 samples, one person each
# several people, turned, at several scales: every transform the builder applies to a person
CROWD = BuildConfig(placements=2, shard_size=10, people=(1, 3), max_occlusion=0.5, rotate=25, fg_scale=(0.6, 1.0))
FIELDS = ("meta", "background", "foreground")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("fgfield") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("fgcrowd") / "ds"
    build(out, CROWD, *demo_inputs, progress=False, workers=1, formats=("tar", "hdf5"))
    return out


def _composites(ds: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each sample's composite as the builder handed it to the JPEG encoder, and its mask."""
    store = open_store(ds)
    builder = ShardBuilder(store, read_record(store))
    return {e.key: (e.image, e.mask) for shard in range(len(open_dataset(ds).shards))
            for e in builder.samples(shard, images=True)}


def _stored(ds: Path, index: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ds / "inputs" / "fg" / f"{index:04d}.png"), cv2.IMREAD_UNCHANGED),
                        cv2.COLOR_BGRA2RGBA)


def _over(background: np.ndarray, layers: np.ndarray) -> np.ndarray:
    image = background
    for layer in layers.reshape(-1, *layers.shape[-3:]):
        image = blend_box(image, layer)  # out = a*fg + (1-a)*bg, the builder's integer blend
    return image


def test_the_composite_is_the_person_over_the_background(dataset: Path) -> None:
    """One person: (H, W, 4), transparent outside the annotated box; blended over the
    background it is the composite the builder encoded, byte for byte; where its alpha is
    255 the composite is its colour; the mask is its alpha over the threshold."""
    made = _composites(dataset)
    flips: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    for s in open_dataset(dataset, fields=FIELDS):
        meta, layer = s["meta"], s["foreground"]
        image, mask = made[s["key"]]
        assert layer.shape == (224, 224, 4) and layer.dtype == np.uint8
        x, y, w, h = meta["x"], meta["y"], meta["w"], meta["h"]
        outside = np.ones((224, 224), bool)
        outside[y:y + h, x:x + w] = False
        assert not layer[outside].any() and layer[~outside][:, 3].any()
        assert np.array_equal(_over(s["background"], layer), image)
        opaque = layer[..., 3] == 255
        assert opaque.sum() > 1000 and np.array_equal(image[opaque], layer[..., :3][opaque])
        assert np.array_equal(mask, np.where(layer[..., 3] > 0, 255, 0))
        flips.setdefault((meta["fg"]["index"], meta["placement"]), {})[meta["flip"]] = layer[y:y + h, x:x + w]
    for pair in flips.values():  # the same person mirrored (no scale jitter: the same size)
        assert np.array_equal(pair[1], pair[0][:, ::-1])
    stored = _stored(dataset, 0)  # at fg_size without jitter: the stored foreground itself
    first = next(s for s in open_dataset(dataset, fields=FIELDS) if s["meta"]["fg"]["index"] == 0
                 and s["meta"]["flip"] == 0)
    m = first["meta"]
    assert stored.shape[:2] == (m["h"], m["w"])
    assert np.array_equal(first["foreground"][m["y"]:m["y"] + m["h"], m["x"]:m["x"] + m["w"]], stored)


def test_people_one_layer_each_in_paint_order(crowd: Path) -> None:
    """--people 1-3 with --rotate and --fg-scale: (3, H, W, 4), layer i the person of
    meta.people[i] (instance i + 1), the rest transparent; painted in order over the
    background they make the composite exactly; the instance map is theirs."""
    made = _composites(crowd)
    counts = set()
    for s in open_dataset(crowd, fields=(*FIELDS, "instances")):
        layers, people = s["foreground"], s["meta"]["people"]
        counts.add(len(people))
        assert layers.shape == (3, 224, 224, 4) and not layers[len(people):].any()
        image, mask = made[s["key"]]
        assert np.array_equal(_over(s["background"], layers), image)
        ids = np.zeros((224, 224), np.uint8)
        for i, (layer, p) in enumerate(zip(layers, people, strict=False), 1):
            on = layer[..., 3] > 0
            ys, xs = np.nonzero(on)
            assert p["x"] <= xs.min() and xs.max() < p["x"] + p["w"]  # inside the person's box
            assert p["y"] <= ys.min() and ys.max() < p["y"] + p["h"]
            ids[on] = i
        assert np.array_equal(ids, s["instances"]) and np.array_equal(mask, np.where(ids > 0, 255, 0))
    assert counts == {1, 2, 3}
    assert any(p["angle"] for s in open_dataset(crowd, fields=("meta",)) for p in s["meta"]["people"])
    h5 = open_dataset(crowd, format="hdf5", fields=("foreground",))
    tar = open_dataset(crowd, fields=("foreground",))
    assert all(np.array_equal(a["foreground"], b["foreground"]) for a, b in zip(tar, h5, strict=True))


def test_every_access_path(crowd: Path) -> None:
    want = every_access_path(crowd, "foreground")
    raw = open_dataset(crowd, fields=("foreground", "meta"), decode=False)[7]
    people = json.loads(bytes(raw["meta"]))["people"]
    assert raw["foreground"] == [(crowd / "inputs" / "fg" / f"{p['fg']['index']:04d}.png").read_bytes()
                                 for p in people]  # the stored files, one per person, nothing placed
    half = open_dataset(crowd, fields=("foreground",), reduce=2)[7]["foreground"]
    assert half.shape == (3, 112, 112, 4) and np.array_equal(half, reduce_layers(want["00000007"], 112, 112))
    layer = want["00000007"][0]  # premultiplied area averaging: 2x2 blocks of the full layer
    a = layer[..., 3].astype(np.float64).reshape(112, 2, 112, 2)
    assert np.abs(half[0][..., 3] - a.mean(axis=(1, 3))).max() <= 0.5 + 1e-6


def test_one_person_decode_false_and_normalize(dataset: Path) -> None:
    d = open_dataset(dataset, fields=("foreground", "meta"), decode=False)
    for i in (0, 17):
        s = d[i]
        fg = json.loads(bytes(s["meta"]))["fg"]["index"]
        assert s["foreground"] == (dataset / "inputs" / "fg" / f"{fg:04d}.png").read_bytes()
    full = {s["key"]: s["foreground"] for s in open_dataset(dataset, fields=("foreground",))}
    for s in open_dataset(dataset, fields=("foreground", "image")).stream(normalize=True, resize=(112, 112)):
        x = s["foreground"]
        assert x.dtype == np.float32 and x.shape == (112, 112, 4)
        assert np.array_equal(x, reduce_layers(full[s["key"]], 112, 112).astype(np.float32) * np.float32(1 / 255))


def test_torch_dataloader_workers(crowd: Path) -> None:
    assert loader_batches(crowd, "foreground", (3, 224, 224, 4)) == 36


def test_tf_dataset(dataset: Path) -> None:
    pytest.importorskip("tensorflow")
    want = {int(s["key"]): s["foreground"] for s in open_dataset(dataset, fields=("foreground",))}
    data = open_dataset(dataset, fields=("foreground",)).tf_dataset(8, normalize=False, shuffle=False)
    got = 0
    for batch in data:
        for i, fg in zip(batch["index"].numpy().tolist(), batch["foreground"].numpy(), strict=True):
            assert fg.shape == (224, 224, 4) and np.array_equal(fg, want[i])
            got += 1
    assert got == 36


def _uses(ds: Path, fg: int) -> list[int]:
    return [i for i, s in enumerate(open_dataset(ds, fields=("meta",))) if s["meta"]["fg"]["index"] == fg]


def test_bad_foregrounds_are_refused_naming_the_file(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    stored = _stored(copy, 1)
    (copy / "inputs" / "fg" / "0001.png").write_bytes(encode_png_color(stored[::-1].copy()))
    d = open_dataset(copy, fields=("foreground",))
    uses = _uses(copy, 1)
    with pytest.raises(DatasetError, match=r"inputs/fg/0001\.png: sha256 differs from the manifest's"):
        d[uses[0]]
    assert all(d[i]["foreground"].any() for i in range(36) if i not in uses)  # the others still read
    (copy / "inputs" / "fg" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"inputs/fg/0002\.png: stored foreground missing"):
        open_dataset(copy, fields=("foreground",))[_uses(copy, 2)[0]]  # a fresh process: nothing cached
    with pytest.raises(DatasetError, match="no field"):
        open_dataset(copy, fields=("person",))


def test_an_undecodable_foreground_is_refused_naming_it(dataset: Path, tmp_path: Path) -> None:
    """A file whose bytes the manifest records but that is no RGBA PNG (a foreground written
    as RGB, a truncated file): refused by the decoder, naming the file."""
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_bytes())
    for index, data in ((0, encode_png_color(_stored(copy, 0)[..., :3].copy())), (1, b"\x89PNG\r\n\x1a\n broken")):
        (copy / "inputs" / "fg" / f"{index:04d}.png").write_bytes(data)
        manifest["inputs"]["fg"][index]["file_sha256"] = hashlib.sha256(data).hexdigest()
    location = Location(copy)
    fgs = Foregrounds(location, _manifest(manifest), 1 << 24)
    person = {"fg": {"index": 0}, "flip": 0, "x": 0, "y": 0, "w": 50, "h": 100}
    with pytest.raises(DatasetError, match=r"inputs/fg/0000\.png: not an 8-bit RGBA image"):
        fgs.value(person, True, 1, "sample 7")
    with pytest.raises(DatasetError, match=r"inputs/fg/0001\.png: (corrupt image|not a PNG)"):
        fgs.value({**person, "fg": {"index": 1}}, True, 1, "sample 7")
    with pytest.raises(DatasetError, match="sample 7: annotation names foreground 3; the dataset has 3"):
        fgs.value({**person, "fg": {"index": 3}}, True, 1, "sample 7")
    with pytest.raises(DatasetError, match=r"sample 7: annotation's box 50x100 at \(200, 0\) is not inside"):
        fgs.value({**person, "x": 200}, True, 1, "sample 7")
    with pytest.raises(DatasetError, match=r"sample 7: annotation names no foreground \(fg.index\)"):
        fgs.value({**person, "fg": 2}, True, 1, "sample 7")


def _manifest(plain: dict[str, Any]) -> Any:
    from fgbg.readers.schema import parse_manifest

    return parse_manifest(json.dumps(plain).encode(), "manifest.json")


def test_read_once_per_process_and_bounded(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each foreground is read and hashed once while the cache holds it; decoded foregrounds
    and placed people share one byte budget, never exceeded beyond the newest entry."""
    reads = counted_reads(monkeypatch)
    d = open_dataset(dataset, fields=("foreground", "background"))
    for _ in d:
        pass
    assert sorted(r for r in reads if r.startswith("inputs/fg")) == [f"inputs/fg/{i:04d}.png" for i in range(3)]
    fgs = d.foregrounds
    assert fgs is not None and len(fgs._cache) == 3 + 6  # 3 decoded, 3 x 2 flips placed
    small = Foregrounds(Location(dataset), d.metadata, d.max_pixels, budget=1)
    meta = open_dataset(dataset, fields=("meta",))[0]["meta"]
    for _ in range(2):  # the placed person is the newest entry: kept, nothing read again
        layer = small.value(meta, True, 1, "test")
        assert len(small._cache) == 1  # only the newest stays
    assert np.array_equal(layer, d[0]["foreground"])
    assert sum(r.startswith("inputs/fg") for r in reads) == 3 + 1
    mirrored = small.value({**meta, "flip": 1 - meta["flip"]}, True, 1, "test")  # its decode was evicted: read again
    assert sum(r.startswith("inputs/fg") for r in reads) == 3 + 2
    box = (slice(meta["y"], meta["y"] + meta["h"]), slice(meta["x"], meta["x"] + meta["w"]))
    assert np.array_equal(mirrored[box], layer[box][:, ::-1])


def test_object_storage(dataset: Path, moto: Any, bucket: str, demo_inputs: tuple[Path, Path]) -> None:
    """On S3 (moto_server): the same layers as the local copy, every path that reads remotely."""
    pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto.url}, "config_kwargs": {"retries": {"max_attempts": 1}}}
    url = f"s3://{bucket}/ds"
    build(url, CFG, *demo_inputs, progress=False, storage_options=options, workers=1)
    local = open_dataset(dataset, fields=("foreground",))
    remote = open_dataset(url, fields=("foreground",), storage_options=options)
    assert all(np.array_equal(a["foreground"], b["foreground"]) for a, b in zip(local, remote, strict=True))
    assert all(np.array_equal(a["foreground"], local[i]["foreground"])
               for a, i in zip(remote.get_many([30, 4, 17]), [30, 4, 17], strict=True))
