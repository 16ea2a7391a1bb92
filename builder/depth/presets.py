"""The conventions of the ONNX depth models people use: what goes in, what comes out.

A model file alone does not say how to feed it: input size and resize rule, normalisation,
channel layout, and what its output means. A preset says all of that for one family of
exports; pre- and post-processing are pure functions of it (tested pixel-exactly against a
NumPy reference with tiny models of the same signatures).

Output kinds and the 8-bit maps fgbg stores (0 = nearest, 255 = farthest in each image):

* ``inverse`` -- relative inverse depth (disparity-like: larger = nearer), as Depth Anything
  and MiDaS give: per image, ``255 * (max - d) / (max - min)``;
* ``metric`` -- depth in metres: the seeds' mapping (``clip(100 * d, 10, 1000) / 1000``,
  then stretched per image), as for DenseDepth;
* ``densedepth`` -- DenseDepth's raw output (``1000 / pred`` is depth in cm), then as ``metric``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .base import to_seed_uint8

__all__ = ["CUSTOM_OPTIONS", "PRESETS", "Preset", "custom_spec", "output_kind", "output_values", "parse_preset",
           "postprocess", "preprocess", "stretch"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """How one family of depth models is fed and read."""

    name: str
    input_size: tuple[int, int]  # (w, h) the composite is resized to
    layout: str  # "nchw" or "nhwc"
    mean: tuple[float, float, float]  # on the [0, 1] scale, RGB
    std: tuple[float, float, float]
    output: str  # "inverse", "metric" or "densedepth"
    interpolation: int = cv2.INTER_CUBIC  # resizing the composite to the model input
    license: str = ""

    def __post_init__(self) -> None:
        if self.layout not in ("nchw", "nhwc") or self.output not in ("inverse", "metric", "densedepth"):
            raise ValueError(f"preset {self.name}: bad layout {self.layout!r} or output {self.output!r}")


PRESETS = {
    p.name: p
    for p in (
        # Depth Anything V2 Small (Apache-2.0), the common ONNX exports: [b,3,518,518] -> [b,518,518]
        Preset("depth-anything-v2-small", (518, 518), "nchw", _IMAGENET_MEAN, _IMAGENET_STD, "inverse",
               license="Apache-2.0 (the Small model; Base/Large are CC-BY-NC-4.0)"),
        # MiDaS v2.1 small (MIT): [b,3,256,256] -> [b,256,256]
        Preset("midas-v21-small", (256, 256), "nchw", _IMAGENET_MEAN, _IMAGENET_STD, "inverse", license="MIT"),
        # DenseDepth exported to ONNX from the released Keras weights: [b,H,W,3] in [0,1] -> [b,H/2,W/2,1]
        Preset("densedepth", (224, 224), "nhwc", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "densedepth",
               interpolation=cv2.INTER_AREA, license="GPL-3.0 (code); weights as published by the authors"),
    )
}


#: what a custom model's conventions may say (``--depth-preset custom`` with these flags)
NORMS = {"imagenet": (_IMAGENET_MEAN, _IMAGENET_STD), "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
         "symmetric": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
RESIZES = {"cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}
CUSTOM_OPTIONS = {"layout": ("nchw", "nhwc"), "norm": tuple(NORMS), "output": ("inverse", "metric", "densedepth"),
                  "resize": tuple(RESIZES)}


def custom_spec(layout: str, norm: str, output: str, resize: str = "cubic") -> str:
    """The canonical text of a custom convention, as the config records it: one string, so a
    dataset's fingerprint covers every setting and old records (named presets) stay as they were."""
    return f"custom:layout={layout},norm={norm},output={output},resize={resize}"


def parse_preset(text: str, input_size: tuple[int, int] | None = None) -> Preset:
    """A preset by name, or a custom spec (``custom:layout=..,norm=..,output=..,resize=..``).

    A custom model has no size of its own: ``input_size`` (``--depth-input``) is required.
    Raises ValueError with a one-line reason; the text comes from a flag or a dataset's record.
    """
    if text in PRESETS:
        return PRESETS[text]
    if not text.startswith("custom:"):
        raise ValueError(f"--depth-preset must be one of {', '.join(PRESETS)} or custom, got {text!r}")
    settings: dict[str, str] = {}
    for part in text[len("custom:"):].split(","):
        key, eq, value = part.partition("=")
        if not eq or key not in CUSTOM_OPTIONS or key in settings:
            raise ValueError(f"custom depth preset {text!r}: expected {', '.join(k + '=' for k in CUSTOM_OPTIONS)} "
                             "each once")
        if value not in CUSTOM_OPTIONS[key]:
            raise ValueError(f"custom depth preset: {key} must be one of {', '.join(CUSTOM_OPTIONS[key])}, "
                             f"got {value!r}")
        settings[key] = value
    missing = [k for k in CUSTOM_OPTIONS if k not in settings]
    if missing:
        raise ValueError(f"custom depth preset {text!r}: missing {', '.join(missing)}")
    if input_size is None:
        raise ValueError("--depth-preset custom needs --depth-input WIDTHxHEIGHT (the model's input size)")
    mean, std = NORMS[settings["norm"]]
    return Preset(text, input_size, settings["layout"], mean, std, settings["output"],
                  interpolation=RESIZES[settings["resize"]], license="as the model's authors publish it")


def preprocess(images: np.ndarray, preset: Preset, input_size: tuple[int, int] | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB composites -> the model's float32 input batch."""
    w, h = input_size or preset.input_size
    resized = images if images.shape[1:3] == (h, w) else np.stack(
        [cv2.resize(im, (w, h), interpolation=preset.interpolation) for im in images])
    mean, std = np.asarray(preset.mean, np.float32), np.asarray(preset.std, np.float32)
    x: np.ndarray = (resized.astype(np.float32) / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if preset.layout == "nchw" else x)


def _maps(raw: np.ndarray) -> np.ndarray:
    """The model's first output as (N, h, w) float64 maps (channel axes of size 1 dropped)."""
    out = np.asarray(raw, np.float64)
    if out.ndim == 4:
        out = out[:, 0] if out.shape[1] == 1 else out[..., 0]
    if out.ndim != 3:
        raise ValueError(f"depth model output has shape {raw.shape}; expected (N, h, w) or one channel")
    return out


def output_kind(preset: Preset) -> str:
    """``metric`` or ``inverse``: what :func:`output_values` gives (DenseDepth's raw output
    becomes metres) and so how :func:`stretch` maps it to 8 bits."""
    return "inverse" if preset.output == "inverse" else "metric"


def output_values(raw: np.ndarray, preset: Preset, out_size: tuple[int, int]) -> np.ndarray:
    """The model's output -> (N, oh, ow) float64 maps in :func:`output_kind`'s convention
    (metres, or relative inverse depth), resized to ``out_size`` (w, h): everything before the
    per-image stretch, which ``--depth-layers`` stores per background and paints people into."""
    maps = _maps(raw)
    if preset.output == "densedepth":
        with np.errstate(divide="ignore", invalid="ignore"):
            metres = np.nan_to_num(10.0 / maps, nan=10.0, posinf=10.0, neginf=0.1)  # 1000/pred cm
        maps = np.clip(metres, 0.1, 10.0)
    ow, oh = out_size
    if maps.shape[1:] != (oh, ow):
        shrink = ow <= maps.shape[2] and oh <= maps.shape[1]
        maps = np.stack([cv2.resize(m, (ow, oh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
                         for m in maps])
    return maps


def stretch(maps: np.ndarray, kind: str) -> np.ndarray:
    """(N, h, w) maps in the ``kind`` convention -> 8-bit maps, far = bright, stretched per image:
    metric by the seeds' mapping (:func:`to_seed_uint8`), inverse by ``255 (max - d) / (max - min)``."""
    if kind == "metric":
        return to_seed_uint8(maps)
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    out: np.ndarray = np.rint(255.0 * (hi - maps) / span).astype(np.uint8)  # larger inverse depth = nearer
    return out


def postprocess(raw: np.ndarray, preset: Preset, out_size: tuple[int, int]) -> np.ndarray:
    """The model's output -> (N, oh, ow) uint8 maps, far = bright, resized to ``out_size`` (w, h)."""
    return stretch(output_values(raw, preset, out_size), output_kind(preset))
