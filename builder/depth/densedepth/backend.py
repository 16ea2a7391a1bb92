"""The ``densedepth`` depth backend: the released DenseDepth weights, batched, CPU or GPU.

Seed semantics (docs/FORMAT.md §2): the model sees the *encoded* composite decoded back, as RGB in
[0, 1]; its output ``pred`` becomes ``clip(1000 / pred, 10, 1000) / 1000`` and each map is
stretched to 0..255. Inputs must be multiples of 32: composites are resized to
``--depth-input`` (default: the composite size rounded to a multiple of 32), and the
half-resolution output is resized to ``--depth-size`` when that differs (area for shrinking,
bilinear for enlarging) before the per-image stretch.

The model is built and loaded once per worker process; Keras 3 runs it on whatever backend
``KERAS_BACKEND`` names (TensorFlow here; JAX or PyTorch on machines that have those).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import msgspec
import numpy as np

from fgbg.readers.extras import require
from fgbg.readers.schema import DepthSource

from ...errors import FgbgError
from ..base import DepthBackend, DepthBatch, to_seed_uint8
from ..quiet import quiet_tensorflow
from ..runtimes import OnnxRunner, make_runner

if TYPE_CHECKING:
    from .released import ReleasedFile

__all__ = ["DTYPES", "DenseDepthBackend", "describe_weights", "pred_to_metres"]

DTYPES = ("float32", "float16", "bfloat16", "int8")
MISSING_WEIGHTS = (
    "--depth densedepth needs --depth-weights PATH: the released DenseDepth weights nyu.h5 "
    "(172,897,376 bytes) or kitti.h5, linked from the README of the ialhashim/DenseDepth repository; "
    "fgbg never downloads weights. For offline demos use --depth plane."
)


def pred_to_metres(pred: np.ndarray) -> np.ndarray:
    """DenseDepth output -> depth in metres: ``clip(1000 / pred, 10, 1000) / 100``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 1000.0 / pred.astype(np.float64)
    d = np.nan_to_num(d, nan=1000.0, posinf=1000.0, neginf=10.0)
    return np.asarray(np.clip(d, 10.0, 1000.0) / 100.0)


def describe_weights(weights: str | Path | None, input_size: tuple[int, int], dtype: str,
                     released: ReleasedFile | None = None, runtime: str = "tensorflow") -> DepthSource:
    """What identifies the depth source in the manifest, without building the model
    (``released``: the file already read, so it is not read and hashed a second time)."""
    from .released import read_released

    if not weights:
        raise FgbgError(MISSING_WEIGHTS)
    released = released or read_released(weights)
    s = released.spec
    return msgspec.convert({
        "backend": "densedepth", "weights_file": Path(weights).name, "weights_sha256": released.sha256,
        "keras_version": released.keras_version, "parameters": released.parameters,
        "decoder": {"conv2": s.conv2_filters, "up": list(s.up_filters), "leaky_after_a": s.leaky_after_a,
                    "leaky_after_b": s.leaky_after_b, "alpha": s.alpha},
        "input": list(input_size), "dtype": dtype,
        "runtime": None if runtime == "tensorflow" else runtime}, DepthSource)


def exported_onnx(weights: str | Path, released: ReleasedFile, input_size: tuple[int, int],
                  threads: int | None) -> Path:
    """The DenseDepth graph of ``released`` as ONNX (float32, dynamic batch), from the one
    Keras loader; exported once per weights, size and tool versions, then cached.

    The export runs in a child process (``python -m ...densedepth.export``): tf2onnx peaks at
    ~6 GB for DenseNet-169 and TensorFlow never hands memory back, so a worker that exported
    in-process would carry that for the whole build."""
    from ..runtimes import OPSET, cached, digest, package_version

    w, h = input_size
    key = digest("densedepth", released.sha256, released.spec, w, h, OPSET, package_version("tf2onnx"),
                 package_version("tensorflow"), package_version("keras"))

    def make(tmp: Path) -> None:
        require("tf2onnx", "densedepth", "--depth-runtime onnxruntime/openvino")
        cmd = [sys.executable, "-m", "fgbg.builder.depth.densedepth.export", str(weights), str(w), str(h), str(tmp),
               str(threads or 0)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not tmp.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FgbgError(f"{weights}: exporting DenseDepth to ONNX failed (exit {done.returncode}: {tail})")

    return cached(key, ".onnx", make)


def export_onnx(weights: Path, input_size: tuple[int, int], out: Path, threads: int | None) -> None:
    """Build the Keras model from ``weights`` and write it to ``out`` as ONNX (the child's work)."""
    from .model import build_model
    from .released import load_strict, read_released

    w, h = input_size
    released = read_released(weights)
    with quiet_tensorflow():
        import tensorflow as tf
        import tf2onnx

        from ..runtimes import OPSET

        _configure_runtime("cpu", threads, "float32")
        model = build_model(released.spec, h, w)
        load_strict(model, released)
        spec = (tf.TensorSpec((None, h, w, 3), tf.float32, name="image"),)
        tf2onnx.convert.from_function(tf.function(lambda image: model(image, training=False)),
                                      input_signature=spec, opset=OPSET, output_path=str(out))


def _configure_runtime(device: str, threads: int | None, dtype: str) -> None:
    """Device, threads and precision, set before the first op (Keras/TF read them once)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = require("keras", "densedepth", "--depth densedepth")

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if device == "gpu" and not gpus:
            raise FgbgError("--depth-device gpu: TensorFlow sees no GPU on this machine")
        try:
            if device == "cpu":
                tf.config.set_visible_devices([], "GPU")
            for gpu in gpus if device != "cpu" else []:
                tf.config.experimental.set_memory_growth(gpu, True)  # several workers share one GPU
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process; settings stay as they were
        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy("float32" if dtype == "float32" else f"mixed_{dtype}")


class DenseDepthBackend(DepthBackend):
    name = "densedepth"
    needs_pixels = True
    output = "metric"  # what values() gives: metres

    def __init__(self, out_size: tuple[int, int], weights: str | Path | None = None,
                 input_size: tuple[int, int] = (224, 224), batch: int = 32, device: str = "auto",
                 dtype: str = "float32", threads: int | None = None, runtime: str = "tensorflow",
                 calibration: np.ndarray | None = None):
        super().__init__(out_size)
        if not weights:
            raise FgbgError(MISSING_WEIGHTS)
        if dtype not in DTYPES:
            raise FgbgError(f"--depth-dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if input_size[0] % 32 or input_size[1] % 32:
            raise FgbgError(f"--depth-input must be multiples of 32, got {input_size[0]}x{input_size[1]}")
        from .model import build_model
        from .released import load_strict, read_released

        released = read_released(weights)
        self.input_size = input_size
        self.batch = max(1, batch)
        self.dtype = dtype
        self.runner: OnnxRunner | None = None
        if runtime == "tensorflow":
            if dtype == "int8":
                raise FgbgError("--depth-dtype int8 runs on --depth-runtime openvino")
            with quiet_tensorflow():
                _configure_runtime(device, threads or (os.cpu_count() or 1), dtype)
                self.model = build_model(released.spec, input_size[1], input_size[0])
                load_strict(self.model, released)
                # trace once, up front (its first op is also where TensorFlow probes CUDA)
                self.forward(np.zeros((1, input_size[1], input_size[0], 3), np.float32))
        else:
            path = exported_onnx(weights, released, input_size, threads)
            calib = None if calibration is None else self.model_input(calibration)
            self.runner = make_runner(path, runtime, dtype, self.batch, threads, device, calib,
                                      (input_size[1], input_size[0], 3))
            self.forward(np.zeros((1, input_size[1], input_size[0], 3), np.float32))  # warm up, up front
        self._describe = describe_weights(weights, input_size, dtype, released, runtime)

    def describe(self) -> DepthSource:
        return msgspec.structs.replace(self._describe, size=list(self.out_size))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw model output (N, h, w) for float32 inputs in [0, 1] at the model's input size.

        Every call runs full batches (the last one zero-padded): a new batch shape would make
        the compiled graph be traced again, which costs seconds.
        """
        if self.runner is not None:
            return self.runner.forward(x)[..., 0]
        n = len(x)
        pad = -n % self.batch
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        outs = [np.asarray(self.model.predict_on_batch(x[i : i + self.batch]), dtype=np.float32)
                for i in range(0, len(x), self.batch)]
        return np.concatenate(outs)[:n, ..., 0]

    def model_input(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> the model's input: resized, float32 in [0, 1]."""
        w, h = self.input_size
        if images.shape[1:3] != (h, w):
            images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA if w <= im.shape[1]
                                          else cv2.INTER_LINEAR) for im in images])
        return images.astype(np.float32) / 255.0

    def predict(self, batch: DepthBatch) -> np.ndarray:
        return to_seed_uint8(self.values(batch.images))

    def values(self, images: np.ndarray) -> np.ndarray:
        """(N, h, w) float64 metres at the stored size, before the 8-bit stretch
        (``--depth-layers`` stores them per background)."""
        metres = pred_to_metres(self.forward(self.model_input(images)))
        ow, oh = self.out_size
        if metres.shape[1:] != (oh, ow):
            shrink = ow <= metres.shape[2] and oh <= metres.shape[1]
            metres = np.stack([cv2.resize(m, (ow, oh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
                               for m in metres])
        return metres
