"""DenseDepth on ONNX Runtime and OpenVINO: exported once from the one Keras loader, cached,
agreeing with TensorFlow float32 to float rounding; int8 explicit and recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.depth import make_backend
from fgbg.builder.depth.runtimes import cache_dir, resolve_runtime
from fgbg.builder.errors import FgbgError
from fgbg.readers import open_dataset

pytestmark = pytest.mark.xdist_group("densedepth")  # TensorFlow: on the worker that already runs it


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    pytest.importorskip("tf2onnx")
    from densedepth_files import make_weights

    from fgbg.builder.depth.densedepth.model import DecoderSpec

    root = tmp_path_factory.mktemp("rt")
    mp = pytest.MonkeyPatch()
    mp.setenv("FGBG_CACHE_DIR", str(root / "cache"))  # the module's tests share one export
    path = root / "nyu_like.h5"
    make_weights(path, DecoderSpec.released(), seed=5)
    x = np.random.default_rng(1).random((3, 64, 64, 3)).astype(np.float32)
    reference = make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=2)
    assert reference is not None
    yield path, x, reference.forward(x)  # type: ignore[attr-defined]
    mp.undo()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_float32_runtimes_agree_with_tensorflow(setup: tuple[Path, np.ndarray, np.ndarray], runtime: str) -> None:
    path, x, ref = setup
    backend: Any = make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=2,
                                runtime=runtime)
    out = backend.forward(x)
    assert out.shape == ref.shape == (3, 32, 32)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()  # float rounding, not another model
    d = backend.describe()
    assert d.runtime == runtime and d.dtype == "float32" and d.backend == "densedepth"
    assert len(list(cache_dir().glob("*.onnx"))) == 1  # exported once, shared by every runtime and worker


def test_int8_is_explicit_calibrated_and_close(setup: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, x, ref = setup
    calibration = np.random.default_rng(2).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    backend: Any = make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=4,
                                runtime="openvino", dtype="int8", calibration=calibration)
    out = backend.forward(x)
    assert out.shape == ref.shape and backend.describe().dtype == "int8"
    assert np.abs(out - ref).mean() <= 0.05 * np.abs(ref).mean()  # reduced precision: close, not equal
    again: Any = make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=4,
                              runtime="openvino", dtype="int8", calibration=calibration)
    assert np.array_equal(again.forward(x), out)  # the cached quantized model: every worker alike
    with pytest.raises(FgbgError, match="int8 runs on --depth-runtime openvino"):
        make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), dtype="int8")


def test_build_on_openvino_records_the_runtime(setup: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                               demo_inputs: tuple[Path, Path]) -> None:
    path, _, _ = setup
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=5, depth="densedepth",
                      depth_runtime="openvino")
    res = build(tmp_path / "d", cfg, *demo_inputs, progress=False, workers=1, depth_options={"weights": str(path)})
    assert res.manifest.depth.runtime == "openvino" and res.manifest.config["depth_runtime"] == "openvino"
    tf = build(tmp_path / "t", BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=5,
                                           depth="densedepth"), *demo_inputs, progress=False, workers=1,
               depth_options={"weights": str(path)})
    assert tf.manifest.depth.runtime is None and "depth_runtime" not in tf.manifest.config  # the reference
    a = [s["depth"] for s in open_dataset(tmp_path / "d")]
    b = [s["depth"] for s in open_dataset(tmp_path / "t")]
    assert max(int(np.abs(p.astype(int) - q.astype(int)).max()) for p, q in zip(a, b, strict=True)) <= 1


def test_auto_runtime() -> None:
    assert resolve_runtime("plane", "auto", "auto", "float32") is None
    assert resolve_runtime("densedepth", "tensorflow", "auto", "float32") is None  # the reference: unrecorded
    assert resolve_runtime("densedepth", "auto", "cpu", "int8") == "openvino"
    assert resolve_runtime("onnx", "auto", "auto", "float32") == "onnxruntime"
    assert resolve_runtime("densedepth", "auto", "cpu", "float32") == "openvino"  # installed in the dev extra


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_thread_count_changes_no_output_bit(setup: tuple[Path, np.ndarray, np.ndarray], runtime: str) -> None:
    """The worker count changes only how many threads each worker's model gets (cores /
    workers): at 1 and 2 threads the raw output is bitwise equal, so the 8-bit maps are too."""
    path, x, _ = setup
    outs = [make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=2, runtime=runtime,
                         threads=threads).forward(x) for threads in (1, 2)]  # type: ignore[union-attr]
    assert np.array_equal(outs[0], outs[1])


def test_worker_count_and_resume_change_no_byte(setup: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                                demo_inputs: tuple[Path, Path]) -> None:
    """One worker with every core, one worker per core, and a resume after a lost shard: the
    same bytes (OpenVINO float32, the default runtime for DenseDepth on a CPU)."""
    from helpers import snapshot

    path, _, _ = setup
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=3, depth="densedepth",
                      depth_runtime="openvino")
    options = {"weights": str(path), "batch": 2}
    build(tmp_path / "one", cfg, *demo_inputs, progress=False, workers=1, depth_options=options)
    build(tmp_path / "two", cfg, *demo_inputs, progress=False, workers=2, depth_options=options)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")
    (tmp_path / "two" / "shards" / "000001.tar").unlink()
    (tmp_path / "two" / "shards" / "000001.tar.json").unlink()
    assert build(tmp_path / "two", None, progress=False, workers=2, depth_options=options).built == 1
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")
