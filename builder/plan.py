"""The plan: which sample sits at which position, as a pure function of (config, inputs, seed).

Why counter-based: every shard must be computable alone (resume, repair, distributed
builds), so nothing may depend on a sequential RNG stream. Two pieces:

* a seeded **bijection** position -> combination (a Feistel network with cycle walking over
  ``[0, N)``), so each shard is a representative mix of backgrounds and foregrounds, and any
  position maps to its combination in O(1) without materialising a permutation;
* per-combination random draws (x, y, scale) from a **SplitMix64 hash** of
  ``(seed, bg, fg, flip, k, stream)``, so a combination's placement does not depend on the
  shard size or on which other inputs exist.

Both are written with explicit 64-bit integer arithmetic in NumPy, so the plan is identical
on every platform and NumPy version (unlike ``Generator.permutation``, whose stream NumPy
does not promise to keep).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .blend import rotated_box
from .config import BuildConfig, scaled_sizes
from .floor import feet_range, person_rows
from .floor_fit import floor_geometry
from .record import BuildRecord

__all__ = ["Placement", "Plan", "SampleParams", "Segment", "feistel_permute", "hash_words", "make_segments", "mix64",
           "plan_for"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FEISTEL_ROUNDS = 6


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


def hash_words(*words: np.ndarray | int) -> np.ndarray:
    """Hash a sequence of integer words (scalars or equal-shape arrays) to uint64."""
    h = mix64(np.zeros(np.shape(words[0]), dtype=np.uint64))
    for w in words:
        h = mix64(h ^ np.asarray(w, dtype=np.uint64))
    return h


def uniform01(h: np.ndarray) -> np.ndarray:
    """Top 53 bits of a hash as a float64 in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def feistel_permute(index: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Seeded bijection of ``[0, n)`` onto itself, evaluated pointwise.

    A balanced Feistel network permutes ``[0, 4**half)``; values that land outside
    ``[0, n)`` are pushed through again (cycle walking), which keeps it a bijection on
    ``[0, n)``. The domain is < 4n, so fewer than 4 walks are needed on average.
    """
    index = np.asarray(index, dtype=np.uint64)
    if n <= 1:
        return np.zeros_like(index)
    bits = max(2, int(n - 1).bit_length())
    half = (bits + 1) // 2
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    out = index.copy()
    todo = np.ones(out.shape, dtype=bool)
    while todo.any():
        v = out[todo]
        left, right = v >> shift, v & mask
        for r in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (hash_words(seed, r, right) & mask)
        v = (left << shift) | right
        out[todo] = v
        todo[todo] = v >= np.uint64(n)
    return out


@dataclass(frozen=True)
class SampleParams:
    """Parameters of a run of consecutive samples (struct of arrays, one entry per sample)."""

    position: np.ndarray
    bg: np.ndarray
    fg: np.ndarray
    flip: np.ndarray
    placement: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray  # the box pasted: the person's size, or the box of the turned person
    h: np.ndarray
    scale: np.ndarray
    angle: np.ndarray  # whole degrees the person is turned (0 without --rotate)
    pw: np.ndarray  # the person's own size before turning (= w, h without --rotate)
    ph: np.ndarray
    feet: np.ndarray  # --position floor: the feet row (= y + h); -1 otherwise
    height_m: np.ndarray  # --position floor: the person's height in metres; 0 otherwise
    people: np.ndarray  # --people: how many people the sample draws (this one and people - 1 more); 1 otherwise
    fg_end: np.ndarray  # foregrounds the extra people are drawn from: [0, fg_end) (those of its segment)

    def __len__(self) -> int:
        return len(self.position)


@dataclass(frozen=True)
class Placement:
    """Where and how big one person is pasted (arrays: one entry per sample, or per draw)."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    pw: np.ndarray
    ph: np.ndarray
    feet: np.ndarray
    height_m: np.ndarray


@dataclass(frozen=True)
class Segment:
    """A block of consecutive positions holding one set of combinations.

    A dataset starts with one segment (every bg x every fg). ``fgbg append`` adds one per
    call: the new backgrounds ``[b0, b1)`` with every foreground ``[0, f1)``, then the old
    backgrounds ``[0, b0)`` with the new foregrounds ``[f0, f1)``; its samples go to new
    shards after the existing ones, which are never rewritten. The first segment
    (b0 = f0 = 0) enumerates exactly like a dataset that was never appended to.
    """

    index: int
    bg: tuple[int, int]  # [b0, b1): backgrounds new in this segment
    fg: tuple[int, int]  # [f0, f1): foregrounds new in this segment
    first: int  # first position
    first_shard: int
    pairs: int  # (bg, fg) pairs
    count: int  # samples
    shards: int

    def pair(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bg, fg) of pair indices ``p`` (the order documented on the class)."""
        (b0, b1), (f0, f1) = self.bg, self.fg
        new_bg = (b1 - b0) * f1
        q = p - new_bg
        bg = np.where(p < new_bg, b0 + p // max(f1, 1), q // max(f1 - f0, 1))
        fg = np.where(p < new_bg, p % max(f1, 1), f0 + q % max(f1 - f0, 1))
        return bg, fg


def make_segments(cfg: BuildConfig, bounds: list[tuple[tuple[int, int], tuple[int, int]]]) -> list[Segment]:
    """Segments from their (bg range, fg range); positions and shards laid out in order."""
    out: list[Segment] = []
    first = first_shard = 0
    per_pair = cfg.flips * cfg.placements
    for j, ((b0, b1), (f0, f1)) in enumerate(bounds):
        pairs = (b1 - b0) * f1 + b0 * (f1 - f0)
        count = pairs * per_pair
        shards = -(-count // cfg.shard_size)
        out.append(Segment(j, (b0, b1), (f0, f1), first, first_shard, pairs, count, shards))
        first += count
        first_shard += shards
    return out


def plan_for(cfg: BuildConfig, record: BuildRecord, fg_sizes: list[tuple[int, int]], n_bg: int) -> Plan:
    """The plan of the dataset ``record`` describes (with its append segments, if any)."""
    return Plan(cfg, fg_sizes, n_bg, list(record.segments) if record.segments else None)


class Plan:
    """Maps dataset positions to sample parameters. Cheap to build; holds no per-sample state."""

    # Streams of the per-combination hash; never renumber (it would change every dataset).
    _STREAM_X, _STREAM_Y, _STREAM_SCALE, _STREAM_ANGLE = 0, 1, 2, 3
    _STREAM_FEET, _STREAM_HEIGHT, _STREAM_PEOPLE, _STREAM_FG, _STREAM_FLIP = 4, 5, 6, 7, 8
    _EXTRA = 0xE0  # extra people hash (..., k, _EXTRA + person, attempt, stream): apart from the first's words

    def __init__(self, cfg: BuildConfig, fg_sizes: list[tuple[int, int]], n_bg: int,
                 segments: list[tuple[tuple[int, int], tuple[int, int]]] | None = None):
        if n_bg < 1 or not fg_sizes:
            raise ValueError("a plan needs at least one background and one foreground")
        self.cfg = cfg
        self.n_bg = n_bg
        self.n_fg = len(fg_sizes)
        self.fg_sizes = np.asarray(fg_sizes, dtype=np.int64).reshape(-1, 2)
        self.segments = make_segments(cfg, segments or [((0, n_bg), (0, self.n_fg))])
        last = self.segments[-1]
        if last.bg[1] != n_bg or last.fg[1] != self.n_fg:
            raise ValueError("the last segment must end at the number of inputs")
        self.n_samples = last.first + last.count
        self.n_shards = last.first_shard + last.shards
        self._floors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if cfg.position == "floor" and cfg.floors is not None:  # --depth-layers: each background's own floor
            if len(cfg.floors) != n_bg:
                raise ValueError(f"config.floors has {len(cfg.floors)} entries for {n_bg} backgrounds")
            horizon, top, bottom = zip(*(floor_geometry(f, cfg.size) for f in cfg.floors), strict=True)
            self._floors = (np.array(horizon, np.float64), np.array(top, np.int64), np.array(bottom, np.int64))

    def shard_range(self, shard: int) -> tuple[int, int]:
        """(first position, count) of a shard."""
        if not 0 <= shard < self.n_shards:
            raise IndexError(f"shard {shard} out of range 0..{self.n_shards - 1}")
        seg = next(g for g in reversed(self.segments) if g.first_shard <= shard)
        first = seg.first + (shard - seg.first_shard) * self.cfg.shard_size
        return first, min(self.cfg.shard_size, seg.first + seg.count - first)

    def shard_of(self, positions: np.ndarray) -> np.ndarray:
        """The shard holding each position."""
        out = np.empty(len(positions), np.int64)
        for seg in self.segments:
            inside = (positions >= seg.first) & (positions < seg.first + seg.count)
            out[inside] = seg.first_shard + (positions[inside] - seg.first) // self.cfg.shard_size
        return out

    def params(self, first: int, count: int) -> SampleParams:
        """Parameters of positions ``first .. first+count-1`` (may span segments)."""
        parts = []
        for seg in self.segments:
            lo, hi = max(first, seg.first), min(first + count, seg.first + seg.count)
            if lo < hi:
                parts.append(self._segment_params(seg, lo, hi - lo))
        if len(parts) == 1:
            return parts[0]
        fields = SampleParams.__dataclass_fields__
        return SampleParams(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))

    def _segment_params(self, seg: Segment, first: int, count: int) -> SampleParams:
        cfg = self.cfg
        pos = np.arange(first, first + count, dtype=np.uint64)
        # segment 0 keeps the plain seed: a dataset that was never appended to is unchanged
        seed = cfg.seed if seg.index == 0 else int(hash_words(cfg.seed, 0xA99E, seg.index))
        combo = feistel_permute(pos - np.uint64(seg.first), seg.count, seed).astype(np.int64)
        k = combo % cfg.placements
        rest = combo // cfg.placements
        flip = rest % cfg.flips
        bg, fg = seg.pair(rest // cfg.flips)

        def draw(stream: int) -> np.ndarray:
            return hash_words(cfg.seed, bg, fg, flip, k, stream)

        at = self.place(fg, draw, bg)
        people = np.ones(count, np.int64)
        if cfg.people is not None:
            lo, hi = cfg.people
            people = lo + (draw(self._STREAM_PEOPLE) % np.uint64(hi - lo + 1)).astype(np.int64)
        fg_end = np.full(count, seg.fg[1], np.int64)
        return SampleParams(pos.astype(np.int64), bg, fg, flip, k, at.x, at.y, at.w, at.h, at.scale, at.angle,
                            at.pw, at.ph, at.feet, at.height_m, people, fg_end)

    def place(self, fg: np.ndarray, draw: Callable[[int], np.ndarray], bg: np.ndarray) -> Placement:
        """Placements of foregrounds ``fg`` on backgrounds ``bg`` from the uniform words
        ``draw(stream)`` gives."""
        cfg = self.cfg
        count = len(fg)
        base = self.fg_sizes[fg]
        feet = np.full(count, -1, np.int64)
        height_m = np.zeros(count)
        lo, hi = cfg.fg_scale
        if cfg.position == "floor" and cfg.person_height is not None:
            horizon = None
            if self._floors is None:  # the plane prior's room
                f_lo, f_hi = feet_range(cfg.size)
                feet = f_lo + (draw(self._STREAM_FEET) % np.uint64(f_hi - f_lo + 1)).astype(np.int64)
            else:  # each background's fitted floor (or the room where it has none: the same numbers)
                horizon, top, bottom = (a[bg] for a in self._floors)
                feet = top + (draw(self._STREAM_FEET) % (bottom - top + 1).astype(np.uint64)).astype(np.int64)
            m_lo, m_hi = cfg.person_height
            height_m = np.round(m_lo + (m_hi - m_lo) * uniform01(draw(self._STREAM_HEIGHT)), 3)
            # as tall as the floor says, but never wider than the frame
            scale = np.minimum(person_rows(feet, height_m, cfg.size, horizon) / base[:, 1], cfg.size / base[:, 0])
            scale = np.maximum(np.floor(scale * 1e4) / 1e4, 1e-4)  # 4 decimals, rounded down: it still fits
        elif lo == hi:
            scale = np.full(count, lo)
        else:
            scale = np.round(lo + (hi - lo) * uniform01(draw(self._STREAM_SCALE)), 4)
        w, h = scaled_sizes(base, scale)
        pw, ph = w, h
        angle = np.zeros(count, np.int64)
        if cfg.rotate:
            angle = (draw(self._STREAM_ANGLE) % np.uint64(2 * cfg.rotate + 1)).astype(np.int64) - cfg.rotate
            boxes = [rotated_box(int(a), int(b), int(t)) for a, b, t in zip(pw, ph, angle, strict=True)]
            w = np.array([b[0] for b in boxes], np.int64)
            h = np.array([b[1] for b in boxes], np.int64)
        room_x = (cfg.size - w + 1).astype(np.uint64)
        x = (draw(self._STREAM_X) % room_x).astype(np.int64)
        if cfg.position == "floor":
            h = ph = np.minimum(h, feet)  # the top stays in the frame (never turned: --rotate is refused)
            y = feet - h
        else:
            room_y = (cfg.size - h + 1).astype(np.uint64)
            y = (draw(self._STREAM_Y) % room_y).astype(np.int64)
        return Placement(x, y, w, h, scale, angle, pw, ph, feet, height_m)

    def extra(self, p: SampleParams, j: int, person: int, attempt: int) -> tuple[int, int, Placement]:
        """(fg, flip, placement) of extra person ``person`` (1, 2, ...) of sample ``j`` of ``p``,
        its ``attempt``-th draw (a person hidden beyond --max-occlusion is drawn again): words
        of the sample's combination, so the sample stays a pure function of its position."""
        cfg = self.cfg
        prefix = hash_words(cfg.seed, int(p.bg[j]), int(p.fg[j]), int(p.flip[j]), int(p.placement[j]),
                            self._EXTRA + person, attempt).reshape(1)

        def draw(stream: int) -> np.ndarray:  # = hash_words(..., attempt, stream): the prefix hashed once
            return mix64(prefix ^ np.uint64(stream))

        fg = int(draw(self._STREAM_FG)[0] % np.uint64(int(p.fg_end[j])))
        flip = int(draw(self._STREAM_FLIP)[0] % np.uint64(cfg.flips))
        return fg, flip, self.place(np.array([fg]), draw, p.bg[j:j + 1])
