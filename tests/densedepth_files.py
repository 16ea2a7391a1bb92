"""Test-time DenseDepth weight files (the generator lives in builder/depth/densedepth/synthetic.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fgbg.builder.depth.densedepth.model import DecoderSpec
from fgbg.builder.depth.densedepth.synthetic import make_random_weights, randomise

__all__ = ["SIDE", "make_weights", "randomise"]

SIDE = 64  # smallest input whose encoder keeps a 2x2 bottleneck; fast on a CPU


def make_weights(path: Path, spec: DecoderSpec, seed: int = 0) -> Any:
    return make_random_weights(path, spec, SIDE, seed)
