"""Random DenseDepth weights in the released file layout -- for tests and speed benchmarks only.

Nothing can be downloaded here, so tests and ``tools/bench.py`` make their own weight files
with the exact architecture and layout of ``nyu.h5``. Every weight is randomised,
BatchNorm statistics included, so a loader that skipped or swapped any tensor would change
the outputs. The depth such a file predicts is meaningless: never build data with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .model import DecoderSpec, build_model
from .released import write_released

__all__ = ["make_random_weights", "randomise"]


def randomise(model: Any, seed: int) -> None:
    """Give every weight of ``model`` (Keras 3 or tf_keras) a random value."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            short = w.path.rsplit("/", 1)[-1] if hasattr(w, "path") else w.name.split("/")[-1].split(":")[0]
            shape = tuple(w.shape)
            if short in ("gamma", "moving_variance"):
                values.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            elif short in ("beta", "moving_mean", "bias"):
                values.append(rng.normal(0, 0.05, shape).astype(np.float32))
            else:  # kernels, scaled to keep activations bounded through 169 layers
                fan_in = int(np.prod(shape[:-1]))
                values.append(rng.normal(0, np.sqrt(1.0 / fan_in), shape).astype(np.float32))
        if values:
            layer.set_weights(values)
    if any(layer.name == "conv3" for layer in model.layers):  # positive outputs, as a trained model's
        conv3 = model.get_layer("conv3")
        kernel, bias = conv3.get_weights()
        conv3.set_weights([kernel * 0.01, np.ones_like(bias)])


def make_random_weights(path: str | Path, spec: DecoderSpec, side: int = 64, seed: int = 0) -> Any:
    """Write a released-layout file for ``spec``; return the Keras 3 model that made it."""
    model = build_model(spec, side, side)
    randomise(model, seed)
    write_released(model, path)
    return model
