"""Running an ONNX graph on the fastest runtime a machine has: ONNX Runtime or OpenVINO.

DenseDepth is defined once, as a Keras model loaded from the released weights (one loader,
see :mod:`.densedepth.released`); for the other runtimes that loaded model is exported to
ONNX with tf2onnx, once per (weights, input size, tool versions), into a cache folder
(``$FGBG_CACHE_DIR``, default ``~/.cache/fgbg``) under a lock, so several worker processes
convert it once between them (the export takes ~40 s for DenseNet-169 on 2 cores). ONNX
models a user brings (``--depth onnx``) are run the same way.

Precision is explicit: ``float32`` runs as exported; ``bfloat16`` asks OpenVINO for bf16
inference (fast only on CPUs with AMX; slower than float32 with AVX-512 alone);
``int8`` is OpenVINO after NNCF post-training quantization, calibrated on images the
caller provides (a build passes its own backgrounds, so the calibration -- and therefore
every byte -- is a function of the dataset) and cached like the export.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fgbg.readers.extras import require

from ..errors import FgbgError

__all__ = ["OPSET", "RUNTIMES", "OnnxRunner", "cache_dir", "cached", "digest", "make_runner", "package_version",
           "resolve_runtime"]

RUNTIMES = ("tensorflow", "onnxruntime", "openvino")
OPSET = 17


def resolve_runtime(depth: str, asked: str, device: str, dtype: str) -> str | None:
    """The runtime a build records for ``--depth-runtime asked`` (``auto`` resolved once, at the
    start of a new dataset; None where the backend has no model or runs TensorFlow by default).

    ``auto`` for DenseDepth: OpenVINO on a machine without an NVIDIA GPU when it is installed
    (float32 agrees with TensorFlow to float rounding and ran 1.12x faster here, and it is the
    one that runs int8), else TensorFlow (it uses the GPU). For ``onnx``: ONNX Runtime, unless
    the precision asked for runs only on OpenVINO."""
    if depth not in ("densedepth", "onnx"):
        return None
    if asked != "auto":
        return None if (depth, asked) == ("densedepth", "tensorflow") else asked
    nvidia = device != "cpu" and Path("/dev/nvidiactl").exists()
    if depth == "onnx":
        return "openvino" if dtype != "float32" else "onnxruntime"
    if dtype == "int8" or (not nvidia and dtype == "float32" and _installed("openvino") and _installed("tf2onnx")):
        return "openvino"
    return None


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cache_dir() -> Path:
    """Where converted models are kept (``$FGBG_CACHE_DIR``, else ``~/.cache/fgbg``)."""
    return Path(os.environ.get("FGBG_CACHE_DIR") or Path.home() / ".cache" / "fgbg")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        yield


def cached(key: str, suffix: str, make: Callable[[Path], None]) -> Path:
    """The cached file for ``key``, made by ``make(temp_path)`` if absent (once, under a lock:
    other processes wait for it instead of converting too)."""
    path = cache_dir() / f"{key}{suffix}"
    if path.exists():
        return path
    with _locked(path):
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                make(tmp)  # a file, or a folder (an OpenVINO model is two files)
                os.replace(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    return path


def digest(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:32]


class OnnxRunner:
    """A batched ONNX graph: ``run(x)`` -> the first output for the first input; ``batch`` is
    the batch it is fed (the model's own when its batch axis is fixed)."""

    runtime: str = ""
    batch: int = 1

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``run`` over any number of inputs, in full batches (the last one zero-padded: one
        input shape for the whole build, so no runtime re-plans and results never depend on
        how a shard's samples fall into batches)."""
        n = len(x)
        pad = -n % self.batch
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        return np.concatenate([self.run(x[i : i + self.batch]) for i in range(0, len(x), self.batch)])[:n]


class _OrtRunner(OnnxRunner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None, device: str, batch: int):
        ort = require("onnxruntime", "densedepth", "--depth-runtime onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device != "cpu":
            gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
            if device == "gpu" and not gpu:
                raise FgbgError("--depth-device gpu: onnxruntime has no CUDA provider here "
                                "(pip install onnxruntime-gpu)")
            providers = [*gpu, *providers]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.batch = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else batch

    def run(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run(None, {self.input: x})[0]
        return out


class _OpenVinoRunner(OnnxRunner):
    runtime = "openvino"

    def __init__(self, model: Any, threads: int | None, device: str, precision: str):
        ov = require("openvino", "densedepth", "--depth-runtime openvino")
        core = ov.Core()
        target = "CPU"
        if device != "cpu" and "GPU" in core.available_devices:
            target = "GPU"
        elif device == "gpu":
            raise FgbgError("--depth-device gpu: OpenVINO sees no GPU on this machine")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if target == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads or os.cpu_count() or 1
            # OpenVINO pins its inference threads to cores, and every process pins to the same
            # first ones: two build workers with one thread each shared one core and ran 2.1x
            # slower than one worker with two (measured: 1.81 vs 3.79 img/s). Unpinned, the OS
            # spreads them (3.82); alone, unpinned costs nothing (3.99 vs 3.75).
            config["ENABLE_CPU_PINNING"] = False
        if precision in ("float32", "bfloat16", "float16"):  # int8 graphs carry their own precision
            config["INFERENCE_PRECISION_HINT"] = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}[precision]
        self.compiled = core.compile_model(model, target, config)
        self.request = self.compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.request.infer({0: x})[self.compiled.output(0)]
        return np.array(out)  # the request reuses its output buffer


def _quantized(path: Path, calibration: np.ndarray, batch: int) -> Path:
    """An int8 OpenVINO model of ``path``, post-training quantized (NNCF) on ``calibration``."""
    key = digest(path.name, hashlib.sha256(calibration.tobytes()).hexdigest(), calibration.shape, batch,
                 package_version("openvino"), package_version("nncf"))

    def make(tmp: Path) -> None:
        ov = require("openvino", "densedepth", "--depth-dtype int8")
        nncf = require("nncf", "densedepth", "--depth-dtype int8")
        model = ov.Core().read_model(str(path))
        model.reshape([batch, *calibration.shape[1:]])
        images = np.concatenate([calibration] * -(-batch // len(calibration)))  # at least one full batch
        chunks = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress bars
            quantized = nncf.quantize(model, nncf.Dataset(chunks), subset_size=len(chunks), fast_bias_correction=True)
        tmp.mkdir()
        ov.save_model(quantized, str(tmp / "model.xml"))  # and model.bin beside it

    return cached(key, ".int8", make) / "model.xml"


def package_version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "absent"


def make_runner(path: Path, runtime: str, dtype: str, batch: int, threads: int | None, device: str,
                calibration: np.ndarray | None = None, input_shape: tuple[int, ...] | None = None) -> OnnxRunner:
    """A runner for the ONNX file ``path`` on ``runtime`` at ``dtype`` (``input_shape``: the
    per-image input shape, to fix OpenVINO's batch and sizes; ``calibration`` for int8)."""
    if runtime == "onnxruntime":
        if dtype != "float32":
            raise FgbgError(f"--depth-runtime onnxruntime runs float32 only (asked {dtype}); "
                            "reduced precision: --depth-runtime openvino")
        return _OrtRunner(path, threads, device, batch)
    if runtime != "openvino":
        raise FgbgError(f"--depth-runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    ov = require("openvino", "densedepth", "--depth-runtime openvino")
    if dtype == "int8":
        if calibration is None:
            raise FgbgError("--depth-dtype int8 needs calibration images")
        model = ov.Core().read_model(str(_quantized(path, calibration, batch)))
    else:
        model = ov.Core().read_model(str(path))
    first = model.inputs[0].get_partial_shape()
    if first.rank.is_static and first[0].is_static:
        batch = first[0].get_length()  # a model exported with a fixed batch keeps it
    if input_shape is not None:
        model.reshape([batch, *input_shape])
    runner = _OpenVinoRunner(model, threads, device, dtype)
    runner.batch = batch
    return runner
