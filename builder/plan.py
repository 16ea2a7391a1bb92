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

from dataclasses import dataclass

import numpy as np

from .config import BuildConfig, scaled_size

__all__ = ["Plan", "SampleParams", "feistel_permute", "hash_words", "mix64"]

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
    w: np.ndarray
    h: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return len(self.position)


class Plan:
    """Maps dataset positions to sample parameters. Cheap to build; holds no per-sample state."""

    # Streams of the per-combination hash; never renumber (it would change every dataset).
    _STREAM_X, _STREAM_Y, _STREAM_SCALE = 0, 1, 2

    def __init__(self, cfg: BuildConfig, fg_sizes: list[tuple[int, int]], n_bg: int):
        if n_bg < 1 or not fg_sizes:
            raise ValueError("a plan needs at least one background and one foreground")
        self.cfg = cfg
        self.n_bg = n_bg
        self.n_fg = len(fg_sizes)
        self.fg_sizes = np.asarray(fg_sizes, dtype=np.int64).reshape(-1, 2)
        self.n_samples = n_bg * self.n_fg * cfg.flips * cfg.placements
        self.n_shards = -(-self.n_samples // cfg.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        """(first position, count) of a shard."""
        if not 0 <= shard < self.n_shards:
            raise IndexError(f"shard {shard} out of range 0..{self.n_shards - 1}")
        first = shard * self.cfg.shard_size
        return first, min(self.cfg.shard_size, self.n_samples - first)

    def params(self, first: int, count: int) -> SampleParams:
        """Parameters of positions ``first .. first+count-1``."""
        cfg = self.cfg
        pos = np.arange(first, first + count, dtype=np.uint64)
        combo = feistel_permute(pos, self.n_samples, cfg.seed).astype(np.int64)
        k = combo % cfg.placements
        rest = combo // cfg.placements
        flip = rest % cfg.flips
        rest //= cfg.flips
        fg = rest % self.n_fg
        bg = rest // self.n_fg

        def draw(stream: int) -> np.ndarray:
            return hash_words(cfg.seed, bg, fg, flip, k, stream)

        lo, hi = cfg.fg_scale
        if lo == hi:
            scale = np.full(count, lo)
        else:
            scale = np.round(lo + (hi - lo) * uniform01(draw(self._STREAM_SCALE)), 4)
        base = self.fg_sizes[fg]
        w = np.empty(count, dtype=np.int64)
        h = np.empty(count, dtype=np.int64)
        for i in range(count):
            w[i], h[i] = scaled_size((int(base[i, 0]), int(base[i, 1])), float(scale[i]))
        room_x = (cfg.size - w + 1).astype(np.uint64)
        room_y = (cfg.size - h + 1).astype(np.uint64)
        x = (draw(self._STREAM_X) % room_x).astype(np.int64)
        y = (draw(self._STREAM_Y) % room_y).astype(np.int64)
        return SampleParams(pos.astype(np.int64), bg, fg, flip, k, x, y, w, h, scale)
