"""Depth backends behind one batched interface; ``make_backend`` picks one by name."""

from __future__ import annotations

from typing import Any

from ..errors import FgbgError
from .base import DepthBackend, DepthBatch, to_seed_uint8
from .plane import PlaneDepth

__all__ = ["BACKENDS", "DepthBackend", "DepthBatch", "make_backend", "to_seed_uint8"]

BACKENDS = ("plane", "none")


def make_backend(name: str, out_size: tuple[int, int], **options: Any) -> DepthBackend | None:
    """The backend called ``name`` producing (w, h) = ``out_size`` maps; None for ``none``."""
    if name == "none":
        return None
    if name == "plane":
        return PlaneDepth(out_size)
    raise FgbgError(f"unknown depth backend {name!r}; choose one of {', '.join(BACKENDS)}")
