"""The released DenseDepth weight files (``nyu.h5``, ``kitti.h5``): read, check, load, write.

They are Keras 2.2.4 full-model saves: root attributes ``keras_version``, ``backend`` and
``model_config`` (the graph as JSON), and ``model_weights/<layer>/<layer>/<weight>:0``
datasets listed by the ``layer_names`` and ``weight_names`` attributes. Keras 3 cannot load
them as they are (a custom layer, renamed DenseNet layers), and its ``by_name`` loading
skips mismatches silently, so this module reads the file with h5py and loads **strictly**:
every layer of the model found in the file, every shape equal, no weight left over --
anything else is an error naming the layer. The decoder variant comes from the file itself
(its ``model_config`` and weight shapes), never from an assumption.

``write_released`` writes the same layout from a Keras 3 model; the tests use it to make
weight files, since none can be downloaded here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...errors import FgbgError
from .model import DecoderSpec, keras3_name

__all__ = ["ReleasedFile", "WeightsError", "load_strict", "read_released", "spec_from_config", "write_released"]


class WeightsError(FgbgError):
    """A weights file is unreadable or does not match the DenseDepth architecture."""


@dataclass(frozen=True)
class ReleasedFile:
    path: Path
    sha256: str
    keras_version: str
    spec: DecoderSpec
    weights: dict[str, dict[str, np.ndarray]]  # Keras 2 layer name -> {weight short name: array}

    @property
    def parameters(self) -> int:
        return sum(int(a.size) for layer in self.weights.values() for a in layer.values())


def _short(weight_name: str) -> str:
    """``conv1/bn/moving_mean:0`` -> ``moving_mean``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _inbound(layer: dict[str, Any]) -> list[str]:
    """Names of a Keras 2 config layer's input layers."""
    nodes = layer.get("inbound_nodes") or []
    return [entry[0] for node in nodes for entry in node]


def spec_from_config(config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]], path: Path) -> DecoderSpec:
    """Read the decoder variant from a Keras 2 ``model_config`` (checked against the weights)."""
    layers = {layer["config"]["name"]: layer for layer in config["config"]["layers"]}

    def need(name: str) -> dict[str, Any]:
        if name not in layers:
            raise WeightsError(f"{path}: model_config has no layer {name!r}; not a DenseDepth model")
        layer: dict[str, Any] = layers[name]
        return layer

    def filters(name: str) -> int:
        n = int(need(name)["config"]["filters"])
        kernel = weights.get(name, {}).get("kernel")
        if kernel is None or kernel.shape[-1] != n:
            raise WeightsError(f"{path}: layer {name!r} has {n} filters in model_config but weights "
                               f"{None if kernel is None else kernel.shape}")
        return n

    leaky = {name: layer for name, layer in layers.items() if layer["class_name"] == "LeakyReLU"}
    after = {_inbound(layer)[0]: layer for layer in leaky.values() if _inbound(layer)}
    ups = []
    for i in range(1, 5):
        if need(f"up{i}_upsampling2d")["class_name"] != "BilinearUpSampling2D":
            raise WeightsError(f"{path}: up{i}_upsampling2d is not a BilinearUpSampling2D layer")
        ups.append(filters(f"up{i}_convA"))
        if filters(f"up{i}_convB") != ups[-1]:
            raise WeightsError(f"{path}: up{i}_convA and up{i}_convB differ in width")
    need("conv3")
    flags = [(f"up{i}_conv{ab}" in after) for ab in "AB" for i in range(1, 5)]
    a_flags, b_flags = flags[:4], flags[4:]
    if len(set(a_flags)) != 1 or len(set(b_flags)) != 1:
        raise WeightsError(f"{path}: up-blocks differ in their LeakyReLU layout; unsupported DenseDepth variant")
    alphas = {round(float(layer["config"].get("alpha", layer["config"].get("negative_slope", 0.3))), 6)
              for layer in leaky.values()}
    if len(alphas) > 1:
        raise WeightsError(f"{path}: LeakyReLU layers use different slopes {sorted(alphas)}")
    return DecoderSpec(filters("conv2"), tuple(ups), a_flags[0], b_flags[0], alphas.pop() if alphas else 0.2)  # type: ignore[arg-type]


def read_released(path: str | Path) -> ReleasedFile:
    """Read a DenseDepth weights file completely (all arrays, ~173 MB for nyu.h5)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    try:
        with h5py.File(path, "r") as f:
            if "model_weights" not in f or "model_config" not in f.attrs:
                raise WeightsError(f"{path}: not a Keras full-model save (no model_weights group / model_config)")
            config = json.loads(_text(f.attrs["model_config"]))
            group = f["model_weights"]
            weights: dict[str, dict[str, np.ndarray]] = {}
            for lname in (_text(n) for n in group.attrs["layer_names"]):
                names = [_text(n) for n in group[lname].attrs.get("weight_names", [])]
                if names:
                    weights[lname] = {_short(n): np.asarray(group[lname][n]) for n in names}
            version = _text(f.attrs.get("keras_version", "unknown"))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable DenseDepth weights file ({e})") from None
    return ReleasedFile(path, h.hexdigest(), version, spec_from_config(config, weights, path), weights)


def load_strict(model: Any, released: ReleasedFile) -> None:
    """Copy every weight of ``released`` into the Keras 3 ``model``; any mismatch is an error."""
    by_k3 = {keras3_name(name): name for name in released.weights}
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        k2 = by_k3.get(layer.name)
        if k2 is None:
            raise WeightsError(f"{released.path}: no weights for layer {layer.name!r} in the file")
        stored = released.weights[k2]
        values = []
        for w in layer.weights:
            short = w.path.rsplit("/", 1)[-1]
            if short not in stored:
                raise WeightsError(f"{released.path}: layer {k2!r} has no weight {short!r} (has {sorted(stored)})")
            if tuple(stored[short].shape) != tuple(w.shape):
                raise WeightsError(f"{released.path}: layer {k2!r} weight {short!r} has shape "
                                   f"{tuple(stored[short].shape)}, the model needs {tuple(w.shape)}")
            values.append(stored[short])
        if len(values) != len(stored):
            extra = sorted(set(stored) - {w.path.rsplit('/', 1)[-1] for w in layer.weights})
            raise WeightsError(f"{released.path}: layer {k2!r} has unused weights {extra}")
        layer.set_weights(values)
        used.add(k2)
    unused = sorted(set(released.weights) - used)
    if unused:
        raise WeightsError(f"{released.path}: weights for layers the model does not have: {', '.join(unused[:5])}")


def _keras2_name(name: str) -> str:
    if name in ("conv1_conv", "conv1_bn", "conv1_relu"):
        return name.replace("_", "/", 1)
    return "input_1" if name.startswith("input_layer") else name


def _keras2_config(model: Any) -> dict[str, Any]:
    """A Keras 2 style ``model_config`` for a Keras 3 functional model (names, classes, graph)."""
    layers = []
    for layer_cfg, layer in zip(model.get_config()["layers"], model.layers, strict=True):
        inbound = []
        for node in layer_cfg.get("inbound_nodes", []):
            args = node["args"][0] if node["args"] else []
            tensors = args if isinstance(args, list) else [args]
            inbound.append([[_keras2_name(t["config"]["keras_history"][0]), 0, 0, {}] for t in tensors])
        cfg: dict[str, Any] = {"name": _keras2_name(layer.name)}
        cls = type(layer).__name__
        if cls == "Conv2D":
            cfg.update(filters=layer.filters, kernel_size=list(layer.kernel_size), strides=list(layer.strides),
                       padding=layer.padding, use_bias=layer.use_bias)
        elif cls == "LeakyReLU":
            cfg["alpha"] = float(layer.negative_slope)
        elif cls == "BilinearUpSampling2D":
            cfg.update(size=list(layer.size), data_format="channels_last")
        layers.append({"name": cfg["name"], "class_name": cls, "config": cfg, "inbound_nodes": inbound})
    return {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                              "input_layers": [["input_1", 0, 0]], "output_layers": [["conv3", 0, 0]]}}


def write_released(model: Any, path: str | Path, keras_version: str = "2.2.4") -> None:
    """Save a Keras 3 DenseDepth model in the layout of the released files."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = keras_version.encode()
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(_keras2_config(model)).encode()
        g = f.create_group("model_weights")
        names = [_keras2_name(layer.name) for layer in model.layers]
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        for layer, name in zip(model.layers, names, strict=True):
            lg = g.create_group(name)
            wnames = [f"{name}/{w.path.rsplit('/', 1)[-1]}:0" for w in layer.weights]
            lg.attrs["weight_names"] = np.array([n.encode() for n in wnames], dtype="S")
            for wname, w in zip(wnames, layer.weights, strict=True):
                lg.create_dataset(wname, data=np.asarray(w.numpy() if hasattr(w, "numpy") else w))
