"""``--depth-layers --position floor`` (pure): each background's floor, fitted from its own prediction.

Under a level pinhole camera a horizontal floor's depth along the rows is ``d(v) = k / (v - h)``
(``h`` the horizon row, ``k`` = focal x camera height), the same in every column. So the
floor's **inverse** depth is a straight line in the row, zero at the horizon, growing
downwards. That is what is fitted:

* ``y`` = 1 / prediction for a ``metric`` model (metres); the prediction itself for an
  ``inverse`` one (relative inverse depth, taken as proportional to 1 / depth: zero is
  infinitely far -- a model whose output carries an offset moves the fitted horizon);
* per-row medians of ``y`` over the central half of the columns, on the lower two thirds of
  the map (a person, a chair leg or a lamp seldom fills half a row; the horizon of a level
  camera is seldom in the top third);
* a line through every pair of rows (exhaustive, so deterministic: no random sampling); a
  row is on a line when its median is within :data:`TOLERANCE` of the line's value
  (relative); the line kept is the one with the longest run of consecutive rows on it
  (one row off the line inside a run is bridged), ties to the smaller residual, then the
  first pair; walls (constant depth) and ceilings (inverse depth falling downwards) are not
  lines of positive slope and never win;
* the run's rows refitted with Theil-Sen (median of the pairwise slopes, median intercept:
  robust, and nothing but sorts and element-wise arithmetic, so the same bits everywhere).

The floor is **usable** when at least :data:`MIN_ROWS` of the map's rows (and 6) lie on the
line, their median relative residual is at most :data:`MAX_RESIDUAL`, each of those rows is
nearly constant across the central columns (median relative deviation at most
:data:`MAX_SCATTER`: a level camera sees a floor row at one depth; noise is not a floor), the
slope is positive,
and the horizon lies above the run and no more than half a frame above the top edge (a flatter
line is a wall or noise, not a floor). The usable floor gives the plan: feet rows from the
run's top row to its bottom row (to the frame's bottom edge when the run reaches the last
row), and people ``H`` metres tall ``H * (v - horizon) / CAMERA_M`` rows high (the room
model's camera height: a relative model cannot tell the camera's height, and a metric one
only tells focal x height -- so every fitted floor keeps the ``plane`` prior's camera 1.5 m
above the floor and takes the horizon from the photograph). A background without a usable
floor falls back to the ``plane`` prior's room (:mod:`builder.floor`): exactly the feet rows
and heights a build without ``--depth-layers`` draws.

Every number is a pure function of the stored prediction, rounded (horizon to 1/100 row,
residual to 4 decimals) and recorded in the build record's ``config.floors``, which is what the
plan reads: ``verify`` fits the stored predictions again and compares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .depth.plane import HORIZON
from .floor import feet_range

__all__ = ["MAX_RESIDUAL", "MAX_SCATTER", "MIN_ROWS", "TOLERANCE", "Floor", "describe_floor", "feet_rows", "fit_floor",
           "fit_floors", "floor_geometry"]

TOLERANCE = 0.03  # a row is on a line when its median is within 3% of the line's value
MAX_RESIDUAL = 0.015  # usable: median relative residual of the run's rows at most 1.5%
MAX_SCATTER = 0.05  # usable: the rows' values vary at most 5% across the central columns (median relative MAD)
MIN_ROWS = 0.15  # usable: at least 15% of the map's rows on the line (and at least 6)
_MAX_CANDIDATES = 96  # rows tried (evenly spaced when the map is taller): pairs stay < 5,000


@dataclass(frozen=True)
class Floor:
    """One background's fitted floor, as ``config.floors`` records it. Rows are composite rows
    (0 = top edge; a feet row is a box's bottom edge ``y + h``, so ``size`` is the last pixel row)."""

    found: bool  # a usable floor; False: the plan falls back to the plane prior's room
    horizon: float  # the fitted horizon row, 2 decimals (negative: above the frame); 0 when not found
    top: int  # highest feet row on the fitted floor; 0 when not found
    bottom: int  # lowest feet row; 0 when not found
    rows: int  # depth-map rows on the fitted line (the longest run found, also when not usable)
    residual: float  # their median |residual| relative to the line's value, 4 decimals
    reason: str = ""  # why not usable ("" when found)


def fit_floor(prediction: np.ndarray, output: str, size: int) -> Floor:
    """The floor of one background's stored prediction ((h, w) at the depth size, ``output``
    "metric" or "inverse"), in the rows of a ``size`` x ``size`` composite."""
    if output not in ("metric", "inverse"):
        raise ValueError(f"output must be metric or inverse, got {output!r}")
    values = np.asarray(prediction, np.float64)
    h, w = values.shape
    if output == "metric":
        with np.errstate(divide="ignore"):
            y = np.where(values > 0, 1.0 / np.where(values > 0, values, 1.0), np.nan)
    else:
        y = values
    c0 = w // 4
    centre = y[:, c0:max(w - c0, c0 + 1)]
    first = h // 3
    cand = np.arange(first, h)
    if len(cand) > _MAX_CANDIDATES:
        cand = np.unique(np.round(np.linspace(first, h - 1, _MAX_CANDIDATES)).astype(np.int64))
    med = np.array([_median(centre[r]) for r in cand])
    spread = np.array([_median(np.abs(centre[r] - m)) for r, m in zip(cand, med, strict=True)])  # MAD
    ok = np.isfinite(med)
    cand, med, spread = cand[ok], med[ok], spread[ok]
    v = (cand + 0.5) * (size / h)  # composite row of each depth row's centre
    need = max(6, math.ceil(MIN_ROWS * h))
    if len(cand) < 2:
        return Floor(False, 0.0, 0, 0, 0, 0.0, "no rows to fit")
    i, j = np.triu_indices(len(cand), 1)
    slope = (med[j] - med[i]) / (v[j] - v[i])
    icpt = med[i] - slope * v[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (slope > 0) & (-icpt / slope >= -size / 2)  # a floor's line: lines of walls and noise are flatter
    if not keep.any():
        return Floor(False, 0.0, 0, 0, 0, 0.0, "no rows whose inverse depth grows downwards like a floor's")
    i, j, slope, icpt = i[keep], j[keep], slope[keep], icpt[keep]
    line = slope[:, None] * v[None, :] + icpt[:, None]  # (pairs, rows)
    rel = np.abs(med[None, :] - line) / np.maximum(np.abs(line), 1e-12)
    near = rel <= TOLERANCE
    on = near.copy()
    on[:, 1:-1] |= near[:, :-2] & near[:, 2:]  # one row off the line inside a run is bridged
    start, length = _longest_runs(on)  # every line holds its own two rows: length >= 1
    run_rows = cand[start + length - 1] - cand[start] + 1  # in depth rows (candidates may skip some)
    order = np.lexsort((np.arange(len(rel)), _run_medians(rel, start, length), -run_rows))
    best = int(order[0])
    a, b = int(start[best]), int(start[best] + length[best])
    rows_v, rows_y = v[a:b], med[a:b]
    s, c = _theil_sen(rows_v, rows_y)
    fitted = s * rows_v + c
    residual = round(float(np.median(np.abs(rows_y - fitted) / np.maximum(np.abs(fitted), 1e-12))), 4)
    n_rows = int(cand[b - 1] - cand[a] + 1)
    if n_rows < need:
        return Floor(False, 0.0, 0, 0, n_rows, residual, f"only {n_rows} rows lie on a floor line, {need} needed")
    if not s > 0:
        return Floor(False, 0.0, 0, 0, n_rows, residual, "inverse depth does not grow downwards")
    horizon = round(float(-c / s), 2)
    scatter = round(float(np.median(spread[a:b] / np.maximum(np.abs(med[a:b]), 1e-12))), 4)
    if scatter > MAX_SCATTER:
        return Floor(False, 0.0, 0, 0, n_rows, residual, f"the rows scatter {scatter:.1%} across the columns "
                     f"(at most {MAX_SCATTER:.0%}): no floor in this noise")
    if residual > MAX_RESIDUAL:
        return Floor(False, 0.0, 0, 0, n_rows, residual, f"residual {residual:.2%} above {MAX_RESIDUAL:.1%}")
    if horizon < -size / 2:
        return Floor(False, 0.0, 0, 0, n_rows, residual, "the line is too flat for a floor (a wall, or noise)")
    top, bottom = feet_rows(int(cand[a]), int(cand[b - 1]), h, size)
    top = max(top, math.floor(horizon) + 2)  # a person there is at least a row tall
    if not horizon < top <= bottom:
        return Floor(False, 0.0, 0, 0, n_rows, residual, "the horizon is not above the fitted rows")
    return Floor(True, horizon, top, bottom, n_rows, residual)


def fit_floors(predictions: Sequence[np.ndarray], output: str, size: int) -> tuple[Floor, ...]:
    """:func:`fit_floor` of every background's prediction, by background index."""
    return tuple(fit_floor(p, output, size) for p in predictions)


def feet_rows(first: int, last: int, depth_h: int, size: int) -> tuple[int, int]:
    """(top, bottom) feet rows of a ``size`` composite whose feet pixel
    (:func:`~.depth.layers.feet_pixel`: depth row ``(2 f - 1) * depth_h // (2 size)``) lies in
    depth rows ``first .. last``: the people the plan stands there read the fitted rows."""
    f = np.arange(1, size + 1)
    row = (2 * f - 1) * depth_h // (2 * size)
    inside = f[(row >= first) & (row <= last)]
    return int(inside[0]), int(inside[-1])


def floor_geometry(floor: Floor | None, size: int) -> tuple[float, int, int]:
    """(horizon, top, bottom feet row) the plan uses: the fitted floor's, or -- not found, or no
    fit -- the plane prior's room (:func:`~.floor.feet_range`, horizon ``HORIZON * size``)."""
    if floor is not None and floor.found:
        return floor.horizon, floor.top, floor.bottom
    lo, hi = feet_range(size)
    return HORIZON * size, lo, hi


def describe_floor(floor: Floor) -> str:
    """One line for ``fgbg info`` and the card."""
    if floor.found:
        return (f"floor: horizon row {floor.horizon:g}, feet rows {floor.top}-{floor.bottom}, "
                f"{floor.rows} rows fitted, residual {floor.residual:.2%}")
    return f"no usable floor ({floor.reason}): fallback to the plane prior's room"


def _median(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else math.nan


def _longest_runs(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of the first longest run of True in each row of ``on`` (pairs, rows)."""
    n = on.shape[1]
    idx = np.arange(n)
    # position of the last False at or before each column (-1 if none): a run's length ends there
    last_false = np.maximum.accumulate(np.where(on, -1, idx[None, :]), axis=1)
    run_len = np.where(on, idx[None, :] - last_false, 0)
    end = np.argmax(run_len, axis=1)  # first maximum: the first longest run
    length = run_len[np.arange(len(on)), end]
    return end - length + 1, length


def _run_medians(rel: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Median of ``rel[p, start[p]:start[p] + length[p]]`` for every row ``p`` (NaN-padded sort)."""
    idx = np.arange(rel.shape[1])
    inside = (idx[None, :] >= start[:, None]) & (idx[None, :] < (start + length)[:, None])
    srt = np.sort(np.where(inside, rel, np.inf), axis=1)
    lo = (length - 1) // 2
    hi = length // 2
    rows = np.arange(len(rel))
    out: np.ndarray = np.where(length > 0, (srt[rows, lo] + srt[rows, hi]) / 2, np.inf)
    return out


def _theil_sen(v: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Theil-Sen line through (v, y): median pairwise slope, median intercept."""
    i, j = np.triu_indices(len(v), 1)
    s = float(np.median((y[j] - y[i]) / (v[j] - v[i])))
    return s, float(np.median(y - s * v))
