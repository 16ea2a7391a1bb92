"""``builder/floor_fit.py`` and ``--depth-layers --position floor``: each background's floor is
fitted from its own stored prediction, and people stand on it sized by the fitted horizon.

The pure tests make predictions from the known geometry (a level pinhole camera over a floor,
a back wall), metric and inverse; the build test uses the tiny first-channel ONNX model, so the
backgrounds' red channels *are* their predictions: two drawn as floors with known horizons,
one as noise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import snapshot
from test_onnx_depth import first_channel_model

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.verify import verify
from fgbg.builder.floor import distance_m, feet_range, person_rows
from fgbg.builder.floor_fit import Floor, feet_rows, fit_floor, floor_geometry
from fgbg.builder.plan import Plan
from fgbg.readers import open_dataset

S, H = 224, 112  # composite rows, depth-map rows


def room(horizon: float, wall: float, k: float = 300.0, noise: float = 0.0, seed: int = 0,
         size: int = S, rows: int = H) -> np.ndarray:
    """Metric depth of a level camera's room: floor ``k / (v - horizon)`` below the wall line,
    the back wall (constant) above it; ``noise``: relative Gaussian noise per pixel."""
    v = (np.arange(rows) + 0.5) * size / rows
    d = np.where(v <= wall, k / (wall - horizon), k / np.maximum(v - horizon, 1e-6))
    m = np.repeat(d[:, None], rows, axis=1)
    if noise:
        m = m * (1 + np.random.default_rng(seed).normal(0, noise, m.shape))
    return m.astype(np.float32)


@pytest.mark.parametrize("horizon", [-40.0, 20.0, 89.6, 101.3, 130.0])
@pytest.mark.parametrize("noise", [0.0, 0.01, 0.03])
def test_the_horizon_is_recovered_within_a_row(horizon: float, noise: float) -> None:
    wall = max(horizon, 40.0) + 20.0
    metric = room(horizon, wall, noise=noise, seed=int(horizon) + 100)
    for output, prediction in (("metric", metric), ("inverse", (3.0 / metric).astype(np.float32))):
        f = fit_floor(prediction, output, S)
        assert f.found, (output, f)
        assert abs(f.horizon - horizon) < 1.0, (output, f)
        assert f.bottom == S  # the floor reaches the frame's bottom edge
        # the feet rows are on the floor: below the wall line (within a depth row) and in the lower
        # two thirds of the frame (where the fit looks), down to the bottom edge
        lowest = max(wall, S / 3)
        assert lowest - 2 <= f.top <= lowest + 6 and f.top > f.horizon
        assert f.residual <= 0.015 and f.rows >= 0.12 * H and f.reason == ""


def test_the_fit_is_in_composite_rows_whatever_the_depth_size() -> None:
    for size, rows in ((224, 112), (224, 224), (64, 32), (480, 240)):
        f = fit_floor(room(0.4 * size, 0.55 * size, size=size, rows=rows), "metric", size)
        assert f.found and abs(f.horizon - 0.4 * size) < 0.01, (size, rows, f)


def test_a_flat_or_noisy_map_has_no_floor() -> None:
    rng = np.random.default_rng(1)
    cases = {
        "flat": (np.full((H, H), 3.0, np.float32), "metric"),
        "noise": (rng.uniform(1.0, 5.0, (H, H)).astype(np.float32), "metric"),
        "noise inverse": (rng.uniform(0.0, 1.0, (H, H)).astype(np.float32), "inverse"),
        "a wall": (room(89.6, 224.0), "metric"),  # constant depth down to the bottom: no floor in sight
        "a ceiling": (room(89.6, 120.0)[::-1].copy(), "metric"),  # inverse depth falling downwards
        "too far": (room(-300.0, 0.0), "metric"),  # a line so flat its horizon is far above the frame
        "zero": (np.zeros((H, H), np.float32), "metric"),
    }
    for name, (prediction, output) in cases.items():
        f = fit_floor(prediction, output, S)
        assert not f.found and f.reason, (name, f)
        assert (f.horizon, f.top, f.bottom) == (0.0, 0, 0)
        assert floor_geometry(f, S) == (0.4 * S, *feet_range(S))  # the plan falls back to the room


def test_a_floor_with_too_few_rows_is_not_usable() -> None:
    f = fit_floor(room(150.0, 205.0), "metric", S)  # 9 depth rows of floor under a wall
    assert not f.found and "rows lie on a floor line" in f.reason and f.rows < 0.12 * H


def test_furniture_in_the_middle_and_the_sides_of_the_rows() -> None:
    m = room(89.6, 123.2, noise=0.01)
    m[70:90, 0:25] = m[70, 0]  # a cupboard at the left: outside the central columns
    m[56:66, 30:90] = 2.0  # a table top far up the floor, across the centre
    f = fit_floor(m, "metric", S)
    assert f.found and abs(f.horizon - 89.6) < 1.0 and f.top >= 132 and f.bottom == S


def test_feet_rows_read_the_fitted_depth_rows() -> None:
    from fgbg.builder.depth.layers import feet_pixel

    for first, last, rows, size in ((60, 111, 112, 224), (10, 20, 32, 64), (0, 31, 32, 64)):
        top, bottom = feet_rows(first, last, rows, size)
        for f in range(1, size + 1):
            row = feet_pixel((0, 0, 1, f), (size, size), (rows, rows))[0]
            assert (top <= f <= bottom) == (first <= row <= last), (first, last, f)


def test_the_fit_is_deterministic_and_the_record_round_trips() -> None:
    m = room(70.0, 110.0, noise=0.02, seed=3)
    a, b = fit_floor(m, "metric", S), fit_floor(m.copy(), "metric", S)
    assert a == b and a.found
    cfg = BuildConfig(depth="onnx", depth_preset="midas-v21-small", depth_layers=True, position="floor",
                      person_height=(1.5, 1.9), floors=(a, fit_floor(np.ones((H, H), np.float32), "metric", S)))
    text = json.dumps(cfg.to_json())
    import msgspec

    back = msgspec.convert(json.loads(text), BuildConfig)
    assert back.floors == cfg.floors and back.to_json() == cfg.to_json()
    assert "floors" not in BuildConfig().to_json()
    with pytest.raises(Exception, match="need --depth-layers and --position floor"):
        BuildConfig(floors=(a,))


def test_fallback_floors_plan_exactly_the_rooms_placements() -> None:
    common = dict(size=224, fg_size=(60, 110), keep_aspect=True, placements=4, depth="onnx",
                  depth_preset="midas-v21-small", depth_layers=True, position="floor", person_height=(1.5, 1.9),
                  people=(1, 3), max_occlusion=0.5)
    none = Floor(False, 0.0, 0, 0, 3, 0.02, "noise")
    room_plan = Plan(BuildConfig(**common), [(60, 110), (40, 100)], 3)  # type: ignore[arg-type]
    fallback = Plan(BuildConfig(**common, floors=(none,) * 3), [(60, 110), (40, 100)], 3)  # type: ignore[arg-type]
    a, b = room_plan.params(0, room_plan.n_samples), fallback.params(0, fallback.n_samples)
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # a fitted floor on background 1 moves only that background's people
    fitted = Floor(True, 30.25, 100, 224, 40, 0.004)
    mixed = Plan(BuildConfig(**common, floors=(none, fitted, none)), [(60, 110), (40, 100)], 3)  # type: ignore[arg-type]
    c = mixed.params(0, mixed.n_samples)
    on1 = c.bg == 1
    assert np.array_equal(c.feet[~on1], a.feet[~on1]) and np.array_equal(c.h[~on1], a.h[~on1])
    assert ((c.feet[on1] >= 100) & (c.feet[on1] <= 224)).all() and len(np.unique(c.feet[on1])) > 5
    tall = person_rows(c.feet[on1], c.height_m[on1], 224, 30.25)
    assert ((np.abs(c.h[on1] - tall) <= 1) | (c.w[on1] >= 223) | (c.h[on1] == c.feet[on1])).all()
    with pytest.raises(ValueError, match="2 entries for 3 backgrounds"):
        Plan(BuildConfig(**common, floors=(none, fitted)), [(60, 110)], 3)  # type: ignore[arg-type]


# -- a build: the tiny model's prediction is the background's normalised red channel ----------
SIDE = 64
TRUE_HORIZONS = (10.0, 22.0)  # composite rows of the two floor backgrounds
CFG = BuildConfig(size=SIDE, fg_size=(16, 40), keep_aspect=True, placements=3, shard_size=12, depth="onnx",
                  depth_preset="midas-v21-small", depth_input=(SIDE, SIDE), depth_layers=True, position="floor",
                  person_height=(1.5, 1.9), people=(1, 2), max_occlusion=0.5)


def _floor_background(horizon: float, wall: float) -> np.ndarray:
    """RGB whose red channel, normalised as MiDaS input (ImageNet mean/std), is proportional
    to (row - horizon) below ``wall`` and constant above: an inverse-depth floor and wall."""
    v = np.arange(SIDE) + 0.5
    inverse = 0.045 * (np.maximum(v, wall) - horizon)
    red = np.clip(np.rint(255.0 * (0.485 + 0.229 * inverse)), 0, 255).astype(np.uint8)
    img = np.zeros((SIDE, SIDE, 3), np.uint8)
    img[..., 0] = red[:, None]
    img[..., 1] = 90
    img[..., 2] = 160
    return img


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("floor-fit")
    model = first_channel_model(work / "tiny.onnx", SIDE)
    bg = work / "bg"
    bg.mkdir()
    for i, (h, wall) in enumerate(zip(TRUE_HORIZONS, (20.0, 30.0), strict=True)):
        cv2.imwrite(str(bg / f"floor_{i}.png"), cv2.cvtColor(_floor_background(h, wall), cv2.COLOR_RGB2BGR))
    noise = np.random.default_rng(5).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    cv2.imwrite(str(bg / "noise_2.png"), noise)
    out = work / "ds"
    build(out, CFG, bg, demo_inputs[1], workers=2, progress=False, depth_options={"model": str(model)})
    return out, bg, model


def test_people_stand_on_each_backgrounds_fitted_floor(made: tuple[Path, Path, Path]) -> None:
    ds, _, _ = made
    floors = [Floor(**f) for f in json.loads((ds / "build.json").read_text())["config"]["floors"]]
    assert [f.found for f in floors] == [True, True, False], floors
    for f, true in zip(floors, TRUE_HORIZONS, strict=False):
        assert abs(f.horizon - true) < 1.5, (f, true)
    geometry = [floor_geometry(f, SIDE) for f in floors]
    assert geometry[2] == (0.4 * SIDE, *feet_range(SIDE))  # noise: the room's floor
    seen = {0: set(), 1: set(), 2: set()}  # type: dict[int, set[int]]
    for s in open_dataset(ds):
        meta = s["meta"]
        b = meta["bg"]["index"]
        horizon, top, bottom = geometry[b]
        for p in meta["people"]:
            feet = p["feet"][1]
            assert top <= feet <= bottom, (b, feet, geometry[b])
            seen[b].add(feet)
            tall = person_rows(np.array([feet]), np.array([p["height"]]), SIDE, horizon)[0]
            assert abs(p["h"] - tall) <= 1 or p["w"] >= SIDE - 1 or p["h"] == feet, (p, tall)
            fitted = horizon if floors[b].found else None
            assert p["distance"] == round(float(distance_m(feet, SIDE, fitted)[()]), 3)
    assert all(len(v) >= 3 for v in seen.values()), seen
    # the two floors differ: their people stand on different rows and are sized differently
    assert min(seen[1]) >= geometry[1][1] > geometry[0][1]


def test_resume_and_verify_deep(made: tuple[Path, Path, Path], tmp_path: Path, demo_inputs: tuple[Path, Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    ds, bg, model = made
    report = verify(str(ds), deep=True)
    assert report.ok, report.text()
    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    before = snapshot(copy)
    (copy / "shards" / "000001.tar").unlink()
    result = build(copy, CFG, bg, demo_inputs[1], workers=1, progress=False, depth_options={"model": str(model)})
    assert result.built == 1 and snapshot(copy) == before  # the floors fitted again: the same record
    (copy / "shards" / "000000.tar").unlink()
    build(copy, None, progress=False, workers=1)  # resumed from the dataset alone
    assert snapshot(copy) == before
    # verify fits every stored prediction again: a recorded floor the fit does not give is named
    import fgbg.builder.commands.verify as v

    monkeypatch.setattr(v, "fit_floor", lambda *a: Floor(False, 0.0, 0, 0, 1, 0.5, "edited"))
    problems = [p.what for p in verify(str(copy)).problems]
    assert any("config.floors[0] is not the floor fitted from inputs/bg_depth/0000.npy" in w for w in problems), \
        problems


def test_info_and_card_report_each_background(made: tuple[Path, Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ds, _, _ = made
    assert main(["info", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "floors    fitted from the predictions: 2 of 3 backgrounds have a usable floor" in out
    assert "bg 0 floor_0.png: floor: horizon row" in out
    assert "bg 2 noise_2.png: no usable floor (" in out and "fallback to the plane prior's room" in out
    card = (ds / "README.md").read_text()
    assert "## Floors" in card and "| 2 | noise_2.png | no usable floor (" in card
    assert "2 of 3 backgrounds" in card


def test_append_fits_the_new_backgrounds_floors(made: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from fgbg.builder.commands.append import append

    ds, _, model = made
    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    old = json.loads((ds / "build.json").read_text())["config"]["floors"]
    new_bg = tmp_path / "more"
    new_bg.mkdir()
    cv2.imwrite(str(new_bg / "floor_3.png"), cv2.cvtColor(_floor_background(16.0, 26.0), cv2.COLOR_RGB2BGR))
    append(copy, new_bg, workers=1, progress=False, depth_options={"model": str(model)})
    floors = json.loads((copy / "build.json").read_text())["config"]["floors"]
    assert floors[:3] == old and len(floors) == 4
    assert floors[3]["found"] and abs(floors[3]["horizon"] - 16.0) < 1.5
    top, bottom = floors[3]["top"], floors[3]["bottom"]
    feet = [p["feet"][1] for s in open_dataset(copy) if s["meta"]["bg"]["index"] == 3 for p in s["meta"]["people"]]
    assert feet and all(top <= f <= bottom for f in feet)
    report = verify(str(copy))
    assert report.ok, report.text()
