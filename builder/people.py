"""``--people MIN-MAX`` (pure): several people in one composite, painted farther first, none
hidden beyond ``--max-occlusion``.

Depth order is the feet row: a person standing lower in the frame is nearer (exactly so under
``--position floor``; under uniform placement it is the usual "lower is nearer" rule), so
people are painted by ascending bottom edge, ties in draw order. After painting, the share of
each person's mask that later (nearer) people cover is their occlusion; an extra person whose
arrival would hide anyone -- themselves or one already placed -- beyond the bound is drawn
again from the plan's next words (``attempt`` 1, 2, ...) and, after ``ATTEMPTS`` tries, left
out (the annotation lists who is in). The sample's own person (draw 0, the combination the
plan and the index name) is placed first and never moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

__all__ = ["ATTEMPTS", "Box", "Person", "PlacedBox", "arrange", "hidden_shares", "paint_ids", "paint_order",
           "union_box"]

ATTEMPTS = 8  # draws of one extra person before it is left out


@dataclass(frozen=True)
class Person:
    """One person of a composite: which foreground and where (the box of the turned person
    with --rotate; ``pw``, ``ph`` its own size)."""

    draw: int  # 0: the sample's own person; 1, 2, ...: the extra people, in draw order
    fg: int
    flip: int
    x: int
    y: int
    w: int
    h: int
    scale: float
    angle: int
    pw: int
    ph: int
    feet: int  # --position floor: the feet row (= y + h); -1 otherwise
    height_m: float  # --position floor: height in metres; 0 otherwise

    @property
    def box(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


def paint_order(people: Sequence[Person]) -> list[Person]:
    """Farther first: by bottom edge (higher in the frame is farther), then by draw."""
    return sorted(people, key=lambda p: (p.y + p.h, p.draw))


class Box(Protocol):
    """Where a mask is painted: a :class:`Person`, or a box read back from an annotation."""

    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...
    @property
    def w(self) -> int: ...
    @property
    def h(self) -> int: ...


class PlacedBox(NamedTuple):
    x: int
    y: int
    w: int
    h: int


def paint_ids(order: Sequence[Box], masks: Sequence[np.ndarray], size: int,
              within: tuple[slice, slice] | None = None) -> np.ndarray:
    """The instance map: (size, size) uint8, 0 = background, ``i + 1`` where ``order[i]``'s
    mask is non-zero and no later person's is; only the box ``within`` (which holds every
    person) when given."""
    y0, x0 = (within[0].start, within[1].start) if within else (0, 0)
    shape = (within[0].stop - y0, within[1].stop - x0) if within else (size, size)
    ids = np.zeros(shape, np.uint8)
    for i, (p, m) in enumerate(zip(order, masks, strict=True)):
        region = ids[p.y - y0:p.y - y0 + p.h, p.x - x0:p.x - x0 + p.w]
        region[m > 0] = i + 1
    return ids


def hidden_shares(masks: Sequence[np.ndarray], ids: np.ndarray, totals: Sequence[int] | None = None) -> list[float]:
    """Per person (paint order): the share of their mask pixels that later people cover
    (``totals``: each mask's non-zero count, when known)."""
    visible = np.bincount(ids.reshape(-1), minlength=len(masks) + 1)
    out = []
    for i, m in enumerate(masks):
        total = int(np.count_nonzero(m)) if totals is None else totals[i]
        out.append(0.0 if total == 0 else 1.0 - int(visible[i + 1]) / total)
    return out


def arrange(first: Person, wanted: int, candidate: Callable[[int, int], Person],
            mask_of: Callable[[Person], tuple[np.ndarray, int]], max_occlusion: float,
            size: int) -> tuple[list[Person], np.ndarray]:
    """The people of one composite in paint order, and their instance map: ``first`` and up to
    ``wanted - 1`` extra people, ``candidate(person, attempt)`` giving each draw and
    ``mask_of(person)`` its mask and the mask's non-zero count."""
    placed = [first]
    for person in range(1, wanted):
        for attempt in range(ATTEMPTS):
            new = candidate(person, attempt)
            trial = paint_order([*placed, new])
            if not any(_overlap(new, p) for p in placed):  # hides nobody, hidden by nobody: no pixels needed
                placed = trial
                break
            masks, totals = zip(*(mask_of(p) for p in trial), strict=True)
            ids = paint_ids(trial, masks, size, union_box(trial))
            if max(hidden_shares(masks, ids, totals)) <= max_occlusion:
                placed = trial
                break
    return placed, paint_ids(placed, [mask_of(p)[0] for p in placed], size)


def _overlap(a: Person, b: Person) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def union_box(order: Sequence[Person]) -> tuple[slice, slice]:
    """The smallest box holding every person's box."""
    y0, x0 = min(p.y for p in order), min(p.x for p in order)
    y1, x1 = max(p.y + p.h for p in order), max(p.x + p.w for p in order)
    return slice(y0, y1), slice(x0, x1)
