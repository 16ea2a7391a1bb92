"""Compositing options: each off by default (default builds byte-identical), deterministic,
the mask always the alpha's, only the box changed; and what each does to the pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.builder.blend import blend_alpha, harmonise, lab_stats, poisson_paste
from fgbg.builder.cli import main
from fgbg.builder.errors import FgbgError
from fgbg.readers import open_dataset

BASE = {"placements": 2, "shard_size": 5, "quality": 100}


def _person(h: int = 40, w: int = 24) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.clip(255 - 12 * np.abs(xx - w / 2) ** 1.5 / 4, 0, 255).astype(np.uint8)
    alpha[:3] = 0
    bgr = np.stack([xx * 9 % 256, yy * 5 % 256, np.full_like(xx, 200)], -1).astype(np.uint8)
    return bgr, alpha


def test_alpha_options() -> None:
    _, alpha = _person()
    hard = blend_alpha(alpha, "hard", 0)
    assert set(np.unique(hard).tolist()) <= {0, 255} and np.array_equal(hard > 0, alpha > 0)
    soft = blend_alpha(alpha, "feather:3", 0)
    assert (soft <= alpha).all() and (soft[alpha == 0] == 0).all()  # softened inward, never spread
    assert (soft < alpha).sum() > (blend_alpha(alpha, "feather:1", 0) < alpha).sum()  # a wider radius, more
    with pytest.raises(FgbgError, match="--blend must be alpha, hard, feather:R"):
        BuildConfig(blend="feather:0")


def test_harmonise_moves_colours_toward_the_room() -> None:
    person, alpha = _person()
    room = np.zeros((64, 64, 3), np.uint8)
    room[...] = (40, 160, 90)
    stats = lab_stats(room)
    before = np.abs(lab_stats(person, alpha > 0)[0] - stats[0]).sum()
    half = harmonise(person, alpha, stats, 0.5)
    full = harmonise(person, alpha, stats, 1.0)
    after_half = np.abs(lab_stats(half, alpha > 0)[0] - stats[0]).sum()
    after_full = np.abs(lab_stats(full, alpha > 0)[0] - stats[0]).sum()
    assert after_full < after_half < before and after_full < 0.1 * before
    assert np.array_equal(harmonise(person, alpha, stats, 0.5), half)  # deterministic


def test_poisson_changes_only_the_box() -> None:
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), (9, 9), 3)
    before = canvas.copy()
    person, alpha = _person()
    for x, y in ((0, 0), (72, 56), (30, 20)):  # at the borders too
        poisson_paste(canvas, person, alpha, x, y)
        outside = np.ones(canvas.shape[:2], bool)
        outside[y:y + 40, x:x + 24] = False
        assert np.array_equal(canvas[outside], before[outside])
        assert not np.array_equal(canvas[y:y + 40, x:x + 24], before[y:y + 40, x:x + 24])
        canvas[...] = before
    poisson_paste(canvas, person, np.zeros_like(alpha), 5, 5)
    assert np.array_equal(canvas, before)  # nothing to clone


@pytest.mark.parametrize("option", [{"blend": "hard"}, {"blend": "feather:4"}, {"blend": "poisson"},
                                    {"harmonize": 0.5}, {"blend": "feather:2", "harmonize": 1.0}])
def test_builds_with_an_option(tmp_path: Path, demo_inputs: tuple[Path, Path], option: dict[str, object]) -> None:
    plain = build(tmp_path / "plain", BuildConfig(**BASE), *demo_inputs, progress=False, workers=1)  # type: ignore[arg-type]
    cfg = BuildConfig(**BASE, **option)  # type: ignore[arg-type]
    res = build(tmp_path / "a", cfg, *demo_inputs, progress=False, workers=1)
    build(tmp_path / "b", cfg, *demo_inputs, progress=False, workers=2)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")  # deterministic, whatever the workers
    assert build(tmp_path / "a", None, progress=False, workers=1).built == 0  # resumes from its record
    assert res.manifest.config == {**plain.manifest.config, **option}  # recorded (and only then)
    a, p = open_dataset(tmp_path / "a"), open_dataset(tmp_path / "plain")
    changed = 0
    for s, t in zip(a, p, strict=True):
        assert np.array_equal(s["mask"], t["mask"]) and s["meta"] == t["meta"]  # the mask follows the alpha
        m = s["meta"]
        outside = np.ones(s["mask"].shape, bool)
        outside[m["y"]:m["y"] + m["h"], m["x"]:m["x"] + m["w"]] = False
        # outside the box the background's pixels (JPEG at q100: within its rounding)
        assert np.abs(s["image"][outside].astype(int) - t["image"][outside]).max() <= 40
        changed += int(not np.array_equal(s["image"], t["image"]))
    assert changed >= len(a) // 2


def test_default_builds_are_unchanged(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """--blend alpha is the default: the same record (no new key) and bytes as no option at all."""
    bg, fg = (str(p) for p in demo_inputs)
    args = ["build", "--bg", bg, "--fg", fg, "--placements", "1", "--no-progress", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--blend", "alpha"]) == 0
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    config = open_dataset(tmp_path / "a").manifest["config"]
    assert "blend" not in config and "harmonize" not in config
    assert main([*args, "--out", str(tmp_path / "c"), "--harmonize", "--blend", "feather:3"]) == 0
    assert open_dataset(tmp_path / "c").manifest["config"]["harmonize"] == 0.5


def test_rotate_rgba_keeps_the_person() -> None:
    from fgbg.builder.blend import rotate_rgba, rotated_box

    person, alpha = _person(40, 24)
    rgba = np.dstack([person, alpha])
    assert rotated_box(24, 40, 0) == (24, 40) and rotated_box(24, 40, 90) == (40, 24)
    assert rotated_box(24, 40, 30) == (41, 47)  # ceil(24 cos30 + 40 sin30), ceil(24 sin30 + 40 cos30)
    turned = rotate_rgba(rgba, 90)
    assert turned.shape == (24, 40, 4)
    assert np.array_equal(turned[..., 3], np.rot90(alpha))  # a quarter turn (counter-clockwise): the same pixels
    quarter = rotate_rgba(rgba, 30)
    assert quarter.shape == (47, 41, 4)
    assert abs(int(quarter[..., 3].astype(int).sum()) - int(alpha.astype(int).sum())) < 0.02 * alpha.sum()
    inside = quarter[..., 3] == 255
    assert (quarter[..., :3][inside] >= 0).all() and quarter[..., 2][inside].min() >= 190  # no dark fringe inside


def test_rotated_builds(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """--rotate: angles drawn per sample within the bound, the box holds the turned person,
    deterministic, recorded; verify --deep rebuilds each mask from the annotation."""
    from fgbg.builder.blend import rotated_box
    from fgbg.builder.commands.verify import verify

    cfg = BuildConfig(**BASE, rotate=30)  # type: ignore[arg-type]
    res = build(tmp_path / "a", cfg, *demo_inputs, progress=False, workers=1)
    build(tmp_path / "b", cfg, *demo_inputs, progress=False, workers=2)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b") and res.manifest.config["rotate"] == 30
    ds = open_dataset(tmp_path / "a")
    angles = []
    for s in ds:
        m = s["meta"]
        angles.append(m["angle"])
        assert -30 <= m["angle"] <= 30 and (m["w"], m["h"]) == rotated_box(*m["size"], m["angle"])
        ys, xs = np.nonzero(s["mask"])
        assert m["x"] <= xs.min() and xs.max() < m["x"] + m["w"] and m["y"] <= ys.min() and ys.max() < m["y"] + m["h"]
    assert len(set(angles)) > 5
    assert verify(str(tmp_path / "a"), deep=True, workers=1).ok
    BuildConfig(fg_size=(200, 150))
    with pytest.raises(FgbgError, match="turned up to 90 degrees"):
        BuildConfig(fg_size=(200, 150), rotate=90)  # fits upright, not at 45 degrees
    with pytest.raises(FgbgError, match="--rotate must be a whole number of degrees"):
        BuildConfig(rotate=0)
