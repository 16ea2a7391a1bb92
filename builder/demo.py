"""Built-in demo inputs: synthetic rooms and people cut-outs, deterministic and license-free.

They let ``fgbg build --demo`` run on a machine with no data and no internet. Rooms are
drawn in one-point perspective (back wall, side walls, floor with planks converging to
the vanishing point, ceiling), with furniture blocks, windows and pictures, lighting and
sensor-like noise. People are drawn at 4x resolution and area-downsampled, so their alpha
has soft anti-aliased edges like real matting; each cut-out is cropped to its alpha, so
its alpha touches all four edges.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .encode import encode_jpeg, encode_png_color

__all__ = ["make_person", "make_room", "write_demo_inputs"]

_SS = 4  # supersampling factor for people


def _shade(rng: np.random.Generator, base: tuple[int, ...], spread: int = 25) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in base)  # type: ignore[return-value]


def make_room(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    """An RGB room scene (height, width, 3)."""
    rng = np.random.default_rng([seed, 0xB6])
    W, H = width, height
    img = np.zeros((H, W, 3), np.uint8)
    vx, vy = int(W * rng.uniform(0.35, 0.65)), int(H * rng.uniform(0.35, 0.5))
    bw, bh = W * rng.uniform(0.35, 0.55), H * rng.uniform(0.3, 0.45)
    x0, x1 = int(vx - bw / 2), int(vx + bw / 2)
    y0, y1 = int(vy - bh * 0.55), int(vy + bh * 0.45)
    wall = _shade(rng, (200, 190, 170), 40)
    side = tuple(int(c * 0.82) for c in wall)
    ceiling = tuple(min(255, int(c * 1.08)) for c in wall)
    floor = _shade(rng, (140, 105, 75), 40)
    cv2.fillPoly(img, [np.array([[0, 0], [W, 0], [x1, y0], [x0, y0]])], ceiling)
    cv2.fillPoly(img, [np.array([[0, 0], [x0, y0], [x0, y1], [0, H]])], side)
    cv2.fillPoly(img, [np.array([[W, 0], [x1, y0], [x1, y1], [W, H]])], side)
    cv2.fillPoly(img, [np.array([[0, H], [x0, y1], [x1, y1], [W, H]])], floor)
    cv2.rectangle(img, (x0, y0), (x1, y1), wall, -1)
    # floor planks converging to the vanishing point
    dark = tuple(int(c * 0.7) for c in floor)
    for t in np.linspace(-1.5, 2.5, int(rng.integers(8, 16))):
        cv2.line(img, (int(x0 + t * (x1 - x0)), y1), (int(vx + (t - 0.5) * W * 2.2), H + H), dark, 1, cv2.LINE_AA)
    # windows / pictures on the back wall
    for _ in range(int(rng.integers(1, 4))):
        ww, wh = int(bw * rng.uniform(0.12, 0.3)), int(bh * rng.uniform(0.2, 0.45))
        wx = int(rng.integers(x0 + 2, max(x0 + 3, x1 - ww - 2)))
        wy = int(rng.integers(y0 + 2, max(y0 + 3, y0 + int(bh * 0.5))))
        color = _shade(rng, (170, 200, 230) if rng.random() < 0.5 else (90, 60, 50), 40)
        cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), color, -1)
        cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), (60, 60, 60), 1, cv2.LINE_AA)
    # furniture: blocks standing on the floor, lower = nearer = larger
    for _ in range(int(rng.integers(1, 4))):
        base_y = int(rng.uniform(y1 + 4, H - 2))
        near = (base_y - y1) / max(1, H - y1)
        fw, fh = int(W * (0.12 + 0.25 * near)), int(H * (0.08 + 0.22 * near))
        fx = int(rng.integers(0, max(1, W - fw)))
        color = _shade(rng, (110, 80, 60) if rng.random() < 0.6 else (70, 90, 120), 35)
        top = tuple(min(255, int(c * 1.25)) for c in color)
        depth = int(fh * 0.25)
        cv2.rectangle(img, (fx, base_y - fh), (fx + fw, base_y), color, -1)
        top_y = base_y - fh
        back = top_y - depth
        lid = np.array([[fx, top_y], [fx + fw, top_y], [fx + fw - depth // 2, back], [fx + depth // 2, back]])
        cv2.fillPoly(img, [lid], top)
    # light falloff from a ceiling lamp and sensor noise
    yy, xx = np.mgrid[0:H, 0:W]
    light = 1.15 - 0.45 * np.hypot((xx - vx) / W, (yy - y0) / H)
    noise = rng.normal(0, 4.0, (H, W, 1))
    out = img.astype(np.float64) * light[..., None] + noise
    room: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return room


def _draw_person(alpha: np.ndarray, color: np.ndarray, rng: np.random.Generator, cx: float, height: float) -> None:
    """Draw one person (at supersampled scale) into alpha and colour canvases."""
    top = alpha.shape[0] - height - 2 * _SS
    u = height / 100.0
    skin = _shade(rng, (195, 150, 120), 20)
    shirt = _shade(rng, tuple(int(c) for c in rng.integers(30, 220, 3)), 10)
    pants = _shade(rng, tuple(int(c) for c in rng.integers(20, 120, 3)), 10)
    head = (int(cx), int(top + 7 * u))
    shoulder_y, hip_y, foot_y = top + 17 * u, top + 52 * u, top + 99 * u
    half_w = (11 + rng.uniform(-2, 3)) * u

    def part(draw: Callable[..., Any], col: tuple[int, int, int], *args: Any, **kw: Any) -> None:
        """Draw one shape into the alpha canvas (opaque) and the colour canvas."""
        draw(alpha, *args, 255, **kw)
        draw(color, *args, col, **kw)

    for side in (-1, 1):  # legs
        foot_x = cx + side * rng.uniform(2, 14) * u
        part(cv2.line, pants, (int(cx + side * 5 * u), int(hip_y)), (int(foot_x), int(foot_y)), thickness=int(8 * u))
    torso = np.array([[cx - half_w, shoulder_y], [cx + half_w, shoulder_y],
                      [cx + half_w * 0.8, hip_y + 2 * u], [cx - half_w * 0.8, hip_y + 2 * u]], np.int32)
    part(cv2.fillPoly, shirt, [torso])
    for side in (-1, 1):  # arms: down, bent or raised
        ang = np.deg2rad(rng.uniform(-25, 110)) * side
        sx, sy = cx + side * half_w * 0.9, shoulder_y + 2 * u
        ex, ey = sx + np.sin(ang) * 34 * u, sy + np.cos(ang) * 34 * u
        part(cv2.line, shirt, (int(sx), int(sy)), (int(ex), int(ey)), thickness=int(5.5 * u))
        part(cv2.circle, skin, (int(ex), int(ey)), int(3.2 * u), thickness=-1)
    part(cv2.line, skin, (int(cx), int(top + 12 * u)), (int(cx), int(shoulder_y)), thickness=int(5 * u))
    part(cv2.ellipse, skin, head, (int(6.5 * u), int(8 * u)), 0, 0, 360, thickness=-1)
    hair = _shade(rng, (60, 40, 25), 30)
    part(cv2.ellipse, hair, (head[0], head[1] - int(2 * u)), (int(6.8 * u), int(6.5 * u)), 0, 180, 360, thickness=-1)


def make_person(seed: int, width: int = 150, height: int = 200) -> np.ndarray:
    """An RGBA people cut-out (one person, or two side by side), cropped to its alpha."""
    rng = np.random.default_rng([seed, 0xF6])
    W, H = width * _SS, height * _SS
    alpha = np.zeros((H, W), np.uint8)
    color = np.zeros((H, W, 3), np.uint8)
    people = 1 if rng.random() < 0.7 else 2
    for j in range(people):
        cx = W * (0.5 if people == 1 else (0.3 + 0.4 * j)) + rng.uniform(-0.05, 0.05) * W
        _draw_person(alpha, color, rng, cx, H * rng.uniform(0.8, 0.95) / _SS * _SS)
    # soft shading: light from the top-left
    yy, xx = np.mgrid[0:H, 0:W]
    shade = 1.1 - 0.25 * (xx / W + yy / H) / 2
    color = np.clip(color * shade[..., None], 0, 255).astype(np.uint8)
    rgba = np.dstack([color, alpha])
    small = cv2.resize(rgba.astype(np.float32) * np.dstack([alpha / 255.0] * 3 + [np.ones_like(alpha)]),
                       (width, height), interpolation=cv2.INTER_AREA)
    a = small[..., 3]
    rgb = np.where(a[..., None] > 0, small[..., :3] / np.maximum(a[..., None] / 255.0, 1e-6), 0)
    out = np.dstack([np.clip(np.rint(rgb), 0, 255), np.clip(np.rint(a), 0, 255)]).astype(np.uint8)
    out[out[..., 3] == 0, :3] = 0
    ys, xs = np.nonzero(out[..., 3])
    cropped: np.ndarray = np.ascontiguousarray(out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    return cropped


def write_demo_inputs(folder: Path, n_bg: int = 8, n_fg: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """Write ``bg/room_NNN.jpg`` and ``fg/person_NNN.png`` under ``folder``; return both dirs."""
    bg_dir, fg_dir = Path(folder) / "bg", Path(folder) / "fg"
    bg_dir.mkdir(parents=True, exist_ok=True)
    fg_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        (bg_dir / f"room_{i:03d}.jpg").write_bytes(encode_jpeg(make_room(seed * 100003 + i), 95))
    for i in range(n_fg):
        (fg_dir / f"person_{i:03d}.png").write_bytes(encode_png_color(make_person(seed * 100003 + i)))
    return bg_dir, fg_dir
