"""The ``onnx`` depth backend: any ONNX depth model the user brings, fed by its preset.

``--depth onnx --depth-model FILE.onnx --depth-preset NAME``: the model's first input and
first output, fixed or dynamic batch, on ONNX Runtime (CPU; CUDA/TensorRT where
``onnxruntime-gpu`` is installed) or OpenVINO. fgbg never downloads a model; the manifest
records the file's sha256, the preset, input size, runtime and precision.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import numpy as np

from fgbg.readers.extras import require
from fgbg.readers.schema import DepthSource

from ..errors import FgbgError
from .base import DepthBackend, DepthBatch
from .presets import PRESETS, Preset, output_kind, output_values, parse_preset, postprocess, preprocess
from .runtimes import make_runner

__all__ = ["OnnxDepth", "describe_model", "preset_named"]

MISSING_MODEL = ("--depth onnx needs --depth-model FILE.onnx (a depth model you downloaded, e.g. Depth Anything V2 "
                 "Small or MiDaS v2.1 small exported to ONNX); fgbg never downloads models")


def preset_named(name: str | None, input_size: tuple[int, int] | None = None) -> Preset:
    """The named preset or the custom convention ``name`` spells (see presets.parse_preset)."""
    if name is None:
        raise FgbgError(f"--depth onnx needs --depth-preset ({', '.join(PRESETS)} or custom)")
    try:
        return parse_preset(name, input_size)
    except ValueError as e:
        raise FgbgError(str(e)) from None


def _model_file(model: str | Path | None) -> Path:
    if not model:
        raise FgbgError(MISSING_MODEL)
    path = Path(model)
    if not path.is_file():
        raise FgbgError(f"--depth-model {model}: no such file")
    return path


def describe_model(model: str | Path | None, preset: str | None, input_size: tuple[int, int] | None, runtime: str,
                   dtype: str, out_size: tuple[int, int]) -> DepthSource:
    """What identifies an ONNX depth source, without loading the model."""
    path = _model_file(model)
    p = preset_named(preset, input_size)
    _check_loadable(path, runtime)
    return msgspec.convert({
        "backend": "onnx", "weights_file": path.name, "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "preset": p.name, "input": list(input_size or p.input_size), "runtime": runtime, "dtype": dtype,
        "size": list(out_size)}, DepthSource)


def _check_loadable(path: Path, runtime: str) -> None:
    """Read the model once where the build starts: a file the runtime cannot parse is a clear
    error before anything is written, not a failure in every worker afterwards."""
    try:
        if runtime == "openvino":
            require("openvino", "onnx", "--depth-runtime openvino").Core().read_model(str(path))
        else:
            require("onnxruntime", "onnx", "--depth onnx").InferenceSession(str(path),
                                                                           providers=["CPUExecutionProvider"])
    except FgbgError:
        raise
    except Exception as e:
        raise FgbgError(f"--depth-model {path}: cannot be loaded by {runtime} ({type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None


class OnnxDepth(DepthBackend):
    name = "onnx"
    needs_pixels = True

    def __init__(self, out_size: tuple[int, int], model: str | Path | None = None, preset: str | None = None,
                 runtime: str = "onnxruntime", dtype: str = "float32", batch: int = 8, device: str = "auto",
                 threads: int | None = None, input_size: tuple[int, int] | None = None,
                 calibration: np.ndarray | None = None):
        super().__init__(out_size)
        path = _model_file(model)
        self.preset = preset_named(preset, input_size)
        self.input_size = input_size or self.preset.input_size
        self._describe = describe_model(path, preset, self.input_size, runtime, dtype, out_size)
        w, h = self.input_size
        shape = (3, h, w) if self.preset.layout == "nchw" else (h, w, 3)
        calib = None if calibration is None else preprocess(calibration, self.preset, self.input_size)
        try:
            self.runner = make_runner(path, runtime, dtype, max(1, batch), threads, device, calib, shape)
        except FgbgError:
            raise
        except Exception as e:  # the runtime's own complaint about the file: one line naming it
            raise FgbgError(f"--depth-model {path}: cannot be loaded by {runtime} ({type(e).__name__}: {e})") from None

    def describe(self) -> DepthSource:
        return self._describe

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The model's raw output for a preprocessed batch."""
        return self.runner.forward(x)

    def model_input(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB composites -> the model's input, by the preset."""
        return preprocess(images, self.preset, self.input_size)

    @property
    def output(self) -> str:
        """``metric`` or ``inverse``: the convention of :meth:`values`."""
        return output_kind(self.preset)

    def values(self, images: np.ndarray) -> np.ndarray:
        """(N, h, w) float64 maps before the 8-bit stretch (``--depth-layers`` stores them)."""
        return output_values(self.forward(self.model_input(images)), self.preset, self.out_size)

    def predict(self, batch: DepthBatch) -> np.ndarray:
        return postprocess(self.forward(self.model_input(batch.images)), self.preset, self.out_size)
