"""``--depth onnx``: presets' pre/post-processing checked pixel-exactly with tiny ONNX models
of the public exports' signatures, whose outputs are a known function of the input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.depth import DepthBatch, make_backend
from fgbg.builder.depth.presets import PRESETS, postprocess, preprocess
from fgbg.builder.errors import FgbgError
from fgbg.readers import open_dataset

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _save(path: Path, nodes: list[onnx.NodeProto], inp: onnx.ValueInfoProto, out: onnx.ValueInfoProto,
          inits: list[onnx.TensorProto]) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "tiny_depth", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def first_channel_model(path: Path, side: int, batch: int | str = "b") -> Path:
    """[b,3,side,side] -> [b,side,side]: the first (red) channel of the normalised input, as
    Depth Anything V2 / MiDaS exports are shaped."""
    idx = helper.make_tensor("idx", TensorProto.INT64, [], [0])
    return _save(path, [helper.make_node("Gather", ["image", "idx"], ["depth"], axis=1)],
                 helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, side, side]),
                 helper.make_tensor_value_info("depth", TensorProto.FLOAT, [batch, side, side]), [idx])


def densedepth_like_model(path: Path, side: int) -> Path:
    """[b,side,side,3] -> [b,side/2,side/2,1]: every second pixel's red value + 1 (DenseDepth's
    NHWC layout and half-resolution output; + 1 keeps 1000/pred finite)."""
    starts = helper.make_tensor("starts", TensorProto.INT64, [3], [0, 0, 0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [3], [side, side, 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    steps = helper.make_tensor("steps", TensorProto.INT64, [3], [2, 2, 1])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "axes", "steps"], ["red"]),
             helper.make_node("Add", ["red", "one"], ["depth"])]
    return _save(path, nodes, helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", side, side, 3]),
                 helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["b", side // 2, side // 2, 1]),
                 [starts, ends, axes, steps, one])


def _images(n: int, side: int = 64) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def _batch(images: np.ndarray) -> DepthBatch:
    n, h, w = images.shape[:3]
    return DepthBatch(images, np.zeros((n, h, w), np.uint8), np.zeros((n, 4), np.int64))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize(("preset", "batch"), [("depth-anything-v2-small", "b"), ("midas-v21-small", 1)])
def test_inverse_presets_are_exact(tmp_path: Path, preset: str, batch: int | str, runtime: str) -> None:
    p = PRESETS[preset]
    side = 28 if preset.startswith("depth-anything") else 32  # small inputs, the presets' own rules
    model = first_channel_model(tmp_path / "m.onnx", side, batch)
    backend = make_backend("onnx", (16, 16), model=str(model), preset=preset, input_size=(side, side),
                           runtime=runtime, batch=4)
    assert backend is not None
    images = _images(5)
    x = preprocess(images, p, (side, side))
    assert x.shape == (5, 3, side, side) and x.dtype == np.float32
    resized = np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_CUBIC) for im in images])
    reference = ((resized / 255.0 - np.array(p.mean)) / np.array(p.std)).transpose(0, 3, 1, 2)  # ImageNet, NCHW
    assert np.allclose(x, reference, atol=1e-5)
    want = postprocess(x[:, 0], p, (16, 16))  # the model's function, in NumPy
    got = backend.predict(_batch(images))
    assert got.dtype == np.uint8 and got.shape == (5, 16, 16) and np.array_equal(got, want)
    assert want.min() == 0 and want.max() == 255  # stretched per image


def test_inverse_output_is_far_bright() -> None:
    """Relative inverse depth: larger = nearer, so the stored map is dark there."""
    raw = np.array([[[4.0, 2.0], [1.0, 0.0]]])
    maps = postprocess(raw, PRESETS["midas-v21-small"], (2, 2))
    assert maps.tolist() == [[[0, 128], [191, 255]]]


def test_densedepth_preset_is_the_seed_mapping(tmp_path: Path) -> None:
    model = densedepth_like_model(tmp_path / "dd.onnx", 64)
    backend = make_backend("onnx", (32, 32), model=str(model), preset="densedepth", input_size=(64, 64), batch=3)
    assert backend is not None
    images = _images(4)
    pred = images[:, ::2, ::2, 0].astype(np.float32) / np.float32(255) + np.float32(1)
    from fgbg.builder.depth.base import to_seed_uint8
    from fgbg.builder.depth.densedepth import pred_to_metres

    assert np.array_equal(backend.predict(_batch(images)), to_seed_uint8(pred_to_metres(pred)))


def test_build_with_an_onnx_model_records_it(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    model = first_channel_model(tmp_path / "m.onnx", 56)
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=5, depth="onnx",
                      depth_preset="depth-anything-v2-small", depth_input=(56, 56))
    res = build(tmp_path / "d", cfg, *demo_inputs, progress=False, workers=1, depth_options={"model": str(model)})
    d = res.manifest.depth
    assert d.backend == "onnx" and d.preset == "depth-anything-v2-small" and d.runtime == "onnxruntime"
    assert d.weights_sha256 == hashlib.sha256(model.read_bytes()).hexdigest() and d.input == [56, 56]
    samples = list(open_dataset(tmp_path / "d"))
    assert len(samples) == 9 and all(s["depth"].shape == (32, 32) and s["depth"].max() == 255 for s in samples)
    again = build(tmp_path / "d", None, progress=False, workers=1, depth_options={"model": str(model)})
    assert again.built == 0  # resumed with the model it recorded


def test_cli_names_what_is_missing(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bg, fg = (str(p) for p in demo_inputs)
    assert main(["build", "--bg", bg, "--fg", fg, "--out", str(tmp_path / "a"), "--depth", "onnx"]) == 2
    assert "--depth onnx needs --depth-preset" in capsys.readouterr().err
    assert main(["build", "--bg", bg, "--fg", fg, "--out", str(tmp_path / "b"), "--depth", "onnx",
                 "--depth-preset", "midas-v21-small"]) == 2
    assert "--depth onnx needs --depth-model FILE.onnx" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["build", "--bg", bg, "--fg", fg, "--out", str(tmp_path / "c"), "--depth", "onnx",
                 "--depth-preset", "midas-v21-small", "--depth-model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: --depth-model ") and "bad.onnx: cannot be loaded by onnxruntime" in err
    assert not (tmp_path / "c").exists()
    with pytest.raises(FgbgError, match="--depth-dtype int8 is not available with --depth onnx on onnxruntime"):
        BuildConfig(depth="onnx", depth_preset="midas-v21-small", depth_dtype="int8", depth_runtime="onnxruntime")
    assert json.dumps(BuildConfig().to_json()).count("depth_runtime") == 0  # old records keep their bytes


def test_depth_check_reports_agreement_and_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same float32 graph on OpenVINO against the ONNX Runtime reference: exact maps."""
    model = first_channel_model(tmp_path / "m.onnx", 32)
    assert main(["depth-check", "--depth", "onnx", "--depth-model", str(model), "--depth-preset", "midas-v21-small",
                 "--depth-input", "32x32", "--depth-runtime", "openvino", "--images", "6", "--size", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("fgbg depth-check: 6 composites, openvino float32 against the reference onnxruntime float32")
    assert out[2] == "8-bit depth maps 0.00% of pixels differ, by at most 0 level(s)"
    assert out[1].startswith("raw prediction   max relative error ") and "images/s raw forward" in out[3]
    assert float(out[1].split()[5].rstrip(",")) < 1e-6


def test_custom_convention_is_exact(tmp_path: Path) -> None:
    """A model no preset knows: NHWC, inputs in [-1, 1], metric output, linear resize -- the
    same NumPy reference as the presets, from the settings alone."""
    from fgbg.builder.depth.base import to_seed_uint8
    from fgbg.builder.depth.presets import custom_spec, parse_preset

    model = densedepth_like_model(tmp_path / "m.onnx", 32)  # red of every second pixel + 1, [b,16,16,1]
    spec = custom_spec("nhwc", "symmetric", "metric", "linear")
    assert spec == "custom:layout=nhwc,norm=symmetric,output=metric,resize=linear"
    backend = make_backend("onnx", (8, 8), model=str(model), preset=spec, input_size=(32, 32), batch=2)
    assert backend is not None
    images = _images(3, side=48)
    resized = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_LINEAR) for im in images])
    x = (resized.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    metres = (x[:, ::2, ::2, 0] + 1).astype(np.float64)
    want = to_seed_uint8(np.stack([cv2.resize(m, (8, 8), interpolation=cv2.INTER_AREA) for m in metres]))
    assert np.array_equal(backend.predict(_batch(images)), want)
    assert parse_preset(spec, (32, 32)).input_size == (32, 32)
    for bad, why in ((spec, "needs --depth-input"), ("custom:layout=nhwc", "missing norm, output, resize"),
                     ("custom:layout=nhwc,layout=nchw,norm=unit,output=metric,resize=area", "each once"),
                     (spec.replace("output=metric", "output=x"), "output must be one of inverse, metric, densedepth")):
        with pytest.raises(ValueError, match=why):
            parse_preset(bad, None if bad == spec else (32, 32))


def test_cli_custom_flags(tmp_path: Path, demo_inputs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bg, fg = (str(p) for p in demo_inputs)
    model = first_channel_model(tmp_path / "m.onnx", 32)
    base = ["build", "--bg", bg, "--fg", fg, "--depth", "onnx", "--depth-model", str(model), "--size", "64",
            "--fg-size", "20x14", "--placements", "1", "--flips", "1", "--no-progress", "--workers", "1"]
    assert main([*base, "--out", str(tmp_path / "a"), "--depth-preset", "custom", "--depth-layout", "nchw"]) == 2
    assert "--depth-preset custom needs --depth-norm, --depth-output" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--depth-preset", "midas-v21-small", "--depth-norm", "unit"]) == 2
    assert "--depth-norm describe a custom model; --depth-preset midas-v21-small" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--depth-preset", "custom", "--depth-layout", "nchw",
                 "--depth-norm", "imagenet", "--depth-output", "inverse"]) == 2
    assert "--depth-preset custom needs --depth-input WIDTHxHEIGHT" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "d"), "--depth-preset", "custom", "--depth-layout", "nchw",
                 "--depth-norm", "imagenet", "--depth-output", "inverse", "--depth-input", "32x32"]) == 0
    ds = open_dataset(tmp_path / "d")
    spec = "custom:layout=nchw,norm=imagenet,output=inverse,resize=cubic"
    assert ds.manifest["depth"]["preset"] == spec and ds.manifest["config"]["depth_preset"] == spec
    assert main([*base, "--out", str(tmp_path / "e"), "--depth-preset", "midas-v21-small", "--depth-input",
                 "32x32"]) == 0  # the same conventions under their preset's name: the same maps
    named = open_dataset(tmp_path / "e")
    assert len(ds) == len(named) == 9
    pairs = zip(ds, named, strict=True)
    assert all(np.array_equal(a["depth"], b["depth"]) and a["depth"].max() == 255 for a, b in pairs)
