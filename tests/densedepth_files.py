"""Weight files in the released DenseDepth layout, made at test time (nothing can be downloaded).

Every weight is randomised -- including BatchNorm statistics -- so a loader that skipped or
swapped any tensor would change the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.depth.densedepth.model import DecoderSpec, build_model
from builder.depth.densedepth.released import write_released

SIDE = 64  # smallest input whose encoder keeps a 2x2 bottleneck; fast on a CPU


def randomise(model: Any, seed: int) -> None:
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


def make_weights(path: Path, spec: DecoderSpec, seed: int = 0) -> Any:
    """Write a released-layout file for ``spec`` and return the (Keras 3) model that made it."""
    model = build_model(spec, SIDE, SIDE)
    randomise(model, seed)
    # keep predictions positive (the seed's 1000/pred needs it), as a trained model's are
    conv3 = model.get_layer("conv3")
    kernel, bias = conv3.get_weights()
    conv3.set_weights([kernel * 0.01, bias * 0 + 1.0])
    write_released(model, path)
    return model
