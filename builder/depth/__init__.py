"""Depth backends behind one batched interface; ``make_backend`` picks one by name."""

from __future__ import annotations

from typing import Any

import msgspec

from fgbg.readers.schema import DepthSource

from ..errors import FgbgError
from .base import DepthBackend, DepthBatch, to_seed_uint8
from .plane import PlaneDepth

__all__ = ["BACKENDS", "DepthBackend", "DepthBatch", "describe_backend", "make_backend", "to_seed_uint8"]

BACKENDS = ("plane", "none", "densedepth", "onnx")


def _check(name: str) -> None:
    if name not in BACKENDS:
        raise FgbgError(f"unknown depth backend {name!r}; choose one of {', '.join(BACKENDS)}")


def make_backend(name: str, out_size: tuple[int, int], **options: Any) -> DepthBackend | None:
    """The backend called ``name`` producing (w, h) = ``out_size`` maps; None for ``none``.

    ``options`` are backend settings that do not change bytes by themselves (densedepth:
    ``weights`` path, ``input_size``, ``batch``, ``device``, ``dtype``, ``threads``).
    """
    _check(name)
    if name == "none":
        return None
    if name == "plane":
        return PlaneDepth(out_size)
    if name == "onnx":
        from .onnx_model import OnnxDepth

        return OnnxDepth(out_size, **options)
    from .densedepth import DenseDepthBackend

    return DenseDepthBackend(out_size, **options)


def describe_backend(name: str, out_size: tuple[int, int], **options: Any) -> DepthSource:
    """The manifest's record of the depth source, without loading a model."""
    _check(name)
    if name == "none":
        return DepthSource(backend="none")
    if name == "plane":
        return PlaneDepth(out_size).describe()
    if name == "onnx":
        from .onnx_model import describe_model

        return describe_model(options.get("model"), options.get("preset"), options.get("input_size"),
                              options.get("runtime", "onnxruntime"), options.get("dtype", "float32"), out_size)
    from .densedepth import describe_weights

    described = describe_weights(options.get("weights"), options["input_size"], options.get("dtype", "float32"),
                                 runtime=options.get("runtime", "tensorflow"))
    return msgspec.structs.replace(described, size=list(out_size))
