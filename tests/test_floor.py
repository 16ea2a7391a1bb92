"""--position floor: feet on the plane prior's floor, each person as tall as the distance
there makes them, the depth the prior gives them that of the floor under their feet."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.depth.plane import CAMERA_M, HORIZON, floor_depth, focal_px
from fgbg.builder.errors import FgbgError
from fgbg.builder.floor import distance_m, feet_range, person_rows
from fgbg.builder.inputs import load_inputs
from fgbg.builder.manifest import read_record
from fgbg.builder.shard import Foregrounds
from fgbg.builder.storage import open_store
from fgbg.readers import open_dataset

BASE = {"placements": 3, "shard_size": 8, "quality": 95, "fg_size": (60, 110), "keep_aspect": True}


def test_geometry_is_the_plane_priors() -> None:
    lo, hi = feet_range(224)
    assert (lo, hi) == (124, 224)  # below the wall line (0.55 x 224 = 123.2) to the bottom edge
    feet = np.arange(lo, hi + 1)
    d = distance_m(feet, 224)
    assert np.allclose(d, floor_depth(feet.astype(float), 224)) and (np.diff(d) < 0).all()  # lower is nearer
    rows = person_rows(feet, np.full(len(feet), 1.7), 224)
    assert np.allclose(rows, focal_px(224) * 1.7 / d)  # the pinhole: focal x height / distance
    assert np.allclose(person_rows(np.array([224]), np.array([CAMERA_M]), 224), 224 - HORIZON * 224)  # eye level


def test_config_checks() -> None:
    with pytest.raises(FgbgError, match="--fg-scale does not apply with --position floor"):
        BuildConfig(position="floor", person_height=(1.5, 1.9), fg_scale=(0.5, 1.0))
    with pytest.raises(FgbgError, match="--rotate does not apply with --position floor"):
        BuildConfig(position="floor", person_height=(1.5, 1.9), rotate=10)
    with pytest.raises(FgbgError, match=r"--person-height must be LOW-HIGH metres with 0 < LOW <= HIGH <= 2\.5"):
        BuildConfig(position="floor", person_height=(1.5, 3.0))
    with pytest.raises(FgbgError, match="--person-height needs --position floor"):
        BuildConfig(person_height=(1.5, 1.9))
    with pytest.raises(FgbgError, match="--position must be uniform or floor"):
        BuildConfig(position="ceiling")


def test_people_stand_on_the_floor(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    cfg = BuildConfig(**BASE, position="floor", person_height=(1.5, 1.9), people=(1, 3), max_occlusion=0.5)  # type: ignore[arg-type]
    build(tmp_path / "a", cfg, *demo_inputs, progress=False, workers=1)
    build(tmp_path / "b", cfg, *demo_inputs, progress=False, workers=2)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    store = open_store(tmp_path / "a")
    fgs = Foregrounds(load_inputs(store, read_record(store).inputs), 0, False, 224)
    ds = open_dataset(tmp_path / "a")
    checked = ordered = 0
    for s in ds:
        meta, depth, ids = s["meta"], s["depth"], s["instances"]
        small = cv2.resize(ids, depth.shape[::-1], interpolation=cv2.INTER_NEAREST)
        levels = []
        for k, p in enumerate(meta["people"], 1):
            feet = p["feet"][1]
            assert feet == p["y"] + p["h"] and p["feet"][0] == p["x"] + p["w"] / 2
            assert feet_range(224)[0] <= feet <= 224 and 1.5 <= p["height"] <= 1.9
            assert p["distance"] == round(float(floor_depth(np.float64(feet), 224)), 3)
            tall = person_rows(np.array([feet]), np.array([p["height"]]), 224)[0]
            assert abs(p["h"] - tall) <= 1 or p["w"] >= 223  # as tall as the distance says (unless capped)
            mask = fgs.get(p["fg"]["index"], p["flip"], p["w"], p["h"]).mask
            lowest = p["y"] + int(np.nonzero(mask.any(axis=1))[0].max())
            assert feet - 1 - lowest <= 1  # the feet on the planned row, within a pixel
            checked += 1
            shown = depth[small == k]
            if shown.size >= 4:
                levels.append((feet, float(np.median(shown))))
        levels.sort()
        ordered += all(a[1] >= b[1] for a, b in itertools.pairwise(levels))  # nearer: lower level
    assert checked >= len(ds) and ordered == len(ds)


def test_single_person_floor_annotation(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    cfg = BuildConfig(**BASE, position="floor", person_height=(1.6, 1.6))  # type: ignore[arg-type]
    res = build(tmp_path / "a", cfg, *demo_inputs, progress=False, workers=1)
    assert res.manifest.format_version == 1 and "instances" not in res.manifest.fields  # one person: format 1
    for s in open_dataset(tmp_path / "a"):
        m = s["meta"]
        assert m["height"] == 1.6 and m["feet"][1] == m["y"] + m["h"] and "people" not in m
        ys = np.nonzero(s["mask"].any(axis=1))[0]
        assert abs(int(ys.max()) + 1 - m["feet"][1]) <= 1
