"""``--depth-layers`` end to end (``builder/layer_inputs.py`` and its use by build, resume, append,
repair, convert and verify): the model runs once per stored background, its predictions are
hashed inputs, and every map is painted from them -- checked pixel by pixel against the tiny
generated models' known outputs, never against a stand-in called a model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from densedepth_files import make_weights
from helpers import snapshot
from test_onnx_depth import first_channel_model

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.append import append
from fgbg.builder.commands.convert import convert
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.builder.demo import write_demo_inputs
from fgbg.builder.depth.layers import feet_pixel, person_labels
from fgbg.builder.depth.presets import stretch
from fgbg.builder.depth.stored import decode_prediction
from fgbg.readers import open_dataset

SIDE = 64
CFG = BuildConfig(size=SIDE, fg_size=(28, 20), placements=2, shard_size=12, depth="onnx",
                  depth_preset="midas-v21-small", depth_input=(SIDE, SIDE), depth_layers=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return first_channel_model(tmp_path_factory.mktemp("model") / "tiny.onnx", SIDE)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path], model: Path) -> Path:
    out = tmp_path_factory.mktemp("layered") / "ds"
    build(out, CFG, *demo_inputs, workers=2, progress=False, depth_options={"model": str(model), "batch": 2})
    return out


@pytest.fixture
def ds(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "ds")
    return tmp_path / "ds"


def _reference_prediction(bg_png: Path) -> np.ndarray:
    """What the tiny model (the normalised red channel) gives for a stored background, at the
    stored depth size: MiDaS pre-processing (ImageNet mean/std), area-shrunk to 32x32."""
    rgb = cv2.cvtColor(cv2.imread(str(bg_png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    red = (rgb[..., 0].astype(np.float32) / np.float32(255.0) - np.float32(0.485)) / np.float32(0.229)
    return cv2.resize(red.astype(np.float64), (SIDE // 2, SIDE // 2), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_predictions_are_hashed_inputs_of_the_model_on_each_background(pristine: Path) -> None:
    record = json.loads((pristine / "build.json").read_text())
    assert record["config"]["depth_layers"] is True
    for entry in record["inputs"]["bg"]:
        data = (pristine / entry["depth_file"]).read_bytes()
        assert entry["depth_file"] == f"inputs/bg_depth/{entry['index']:04d}.npy"
        assert entry["depth_sha256"] == hashlib.sha256(data).hexdigest()
        got = decode_prediction(data, (SIDE // 2, SIDE // 2), "npy")
        assert np.allclose(got, _reference_prediction(pristine / entry["file"]), atol=1e-6)
    assert "depth_file" not in record["inputs"]["fg"][0]


def test_every_map_is_the_background_with_people_at_their_feet(pristine: Path) -> None:
    record = json.loads((pristine / "build.json").read_text())
    predictions = [decode_prediction((pristine / e["depth_file"]).read_bytes(), (32, 32), "npy")
                   for e in record["inputs"]["bg"]]
    ds = open_dataset(pristine)
    assert len(ds) == 3 * 3 * 2 * 2
    for i in range(len(ds)):
        s = ds[i]
        meta, depth = s["meta"], s["depth"]
        box = (meta["x"], meta["y"], meta["w"], meta["h"])
        labels = person_labels([s["mask"]], (32, 32))
        values = predictions[meta["bg"]["index"]].astype(np.float64)
        row, col = feet_pixel(box, (SIDE, SIDE), (32, 32))
        values[labels == 0] = values[row, col]
        assert np.array_equal(depth, stretch(values[None], "inverse")[0])
        assert (labels == 0).any() and (depth[labels == 0] == depth[row, col]).all()  # one flat person
        assert depth.min() == 0 and depth.max() == 255


def test_verify_deep_repaints_every_map(pristine: Path) -> None:
    report = verify(str(pristine), deep=True)
    assert report.ok, report.text()
    assert report.proofs.repainted == 36


def test_a_changed_prediction_is_named(ds: Path) -> None:
    path = ds / "inputs" / "bg_depth" / "0001.npy"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    problems = {(p.where, p.what) for p in verify(str(ds)).problems}
    assert any(w == "inputs/" and "inputs/bg_depth/0001.npy: stored depth prediction does not match its recorded "
               "sha256" in what for w, what in problems), problems
    (ds / "shards" / "000001.tar").unlink()
    with pytest.raises(Exception, match=r"bg_depth/0001\.npy: stored depth prediction does not match"):
        repair(str(ds), progress=False)


def test_verify_deep_finds_a_map_the_annotation_does_not_paint(ds: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path, demo_inputs: tuple[Path, Path],
                                                               model: Path) -> None:
    import fgbg.builder.depth.layers as layers

    # a build whose painter put people one row higher: bytes, digests and receipts all consistent
    monkeypatch.setattr(layers, "feet_pixel", lambda box, frame, shape: (max(0, (2 * (box[1] + box[3]) - 1)
                                                                               * shape[1] // (2 * frame[1]) - 1),
                                                                         (2 * box[0] + box[2]) * shape[0]
                                                                         // (2 * frame[0])))
    out = tmp_path / "shifted"
    build(out, CFG, *demo_inputs, workers=1, progress=False, depth_options={"model": str(model), "batch": 2})
    monkeypatch.undo()
    assert verify(str(out)).ok  # only repainting can tell
    found = [p for p in verify(str(out), deep=True).problems
             if p.what == "depth map differs from the one its background's prediction and annotation paint"]
    assert found


def test_resume_repair_and_convert_need_no_model(ds: Path, pristine: Path, tmp_path: Path) -> None:
    want = snapshot(pristine)
    (ds / "shards" / "000002.tar").unlink()
    (ds / "shards" / "000002.tar.json").unlink()
    build(ds, None, workers=1, progress=False)  # resume from inputs/: no --depth-model given
    assert snapshot(ds) == want
    (ds / "shards" / "000001.tar").write_bytes(b"broken")
    repair(str(ds), workers=1, progress=False)
    assert snapshot(ds) == want
    convert(str(ds), tmp_path / "h5", "hdf5", workers=1, progress=False)
    assert (tmp_path / "h5" / "inputs" / "bg_depth" / "0002.npy").read_bytes() == (
        ds / "inputs" / "bg_depth" / "0002.npy").read_bytes()
    assert verify(str(tmp_path / "h5"), deep=True).ok


def test_resume_with_the_inputs_runs_no_model(ds: Path, pristine: Path, demo_inputs: tuple[Path, Path],
                                              model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    build_module = importlib.import_module("fgbg.builder.build")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran again on a resume")

    monkeypatch.setattr(build_module, "predict_backgrounds", refuse)
    (ds / "shards" / "000000.tar").unlink()
    build(ds, CFG, *demo_inputs, workers=1, progress=False, depth_options={"model": str(model), "batch": 2})
    assert snapshot(ds) == snapshot(pristine)


def test_workers_and_batches_change_no_byte(pristine: Path, tmp_path: Path, demo_inputs: tuple[Path, Path],
                                            model: Path) -> None:
    build(tmp_path / "one", CFG, *demo_inputs, workers=1, progress=False,
          depth_options={"model": str(model), "batch": 2})
    assert snapshot(tmp_path / "one") == snapshot(pristine)


def test_append_predicts_the_new_backgrounds(ds: Path, tmp_path: Path, model: Path) -> None:
    bg, _ = write_demo_inputs(tmp_path / "more", n_bg=5, n_fg=1)
    new = tmp_path / "new_bg"
    new.mkdir()
    for p in sorted(bg.iterdir())[3:]:
        shutil.copy(p, new / p.name)
    append(str(ds), new, None, workers=1, progress=False, depth_options={"model": str(model)})
    record = json.loads((ds / "build.json").read_text())
    assert [e["depth_file"] for e in record["inputs"]["bg"]][3:] == ["inputs/bg_depth/0003.npy",
                                                                   "inputs/bg_depth/0004.npy"]
    got = decode_prediction((ds / "inputs/bg_depth/0004.npy").read_bytes(), (32, 32), "npy")
    assert np.allclose(got, _reference_prediction(ds / "inputs/bg/0004.png"), atol=1e-6)
    report = verify(str(ds), deep=True)
    assert report.ok and report.proofs.repainted == 36 + 2 * 3 * 2 * 2, report.text()


def test_people_and_zstd_members(tmp_path: Path, demo_inputs: tuple[Path, Path], model: Path) -> None:
    cfg = BuildConfig(**{**CFG.__dict__, "people": (1, 3), "max_occlusion": 0.5, "members": "zstd"})
    build(tmp_path / "p", cfg, *demo_inputs, workers=1, progress=False, depth_options={"model": str(model)})
    report = verify(str(tmp_path / "p"), deep=True)
    assert report.ok and report.proofs.repainted == 36, report.text()


def test_densedepth_released_layout(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    pytest.importorskip("keras")
    from fgbg.builder.depth.densedepth.model import DecoderSpec

    weights = tmp_path / "nyu.h5"
    make_weights(weights, DecoderSpec.released())
    cfg = BuildConfig(size=SIDE, fg_size=(28, 20), placements=1, flips=1, depth="densedepth", depth_layers=True)
    build(tmp_path / "dd", cfg, *demo_inputs, workers=1, progress=False,
          depth_options={"weights": str(weights), "batch": 4})
    record = json.loads((tmp_path / "dd" / "build.json").read_text())
    assert record["depth"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len({e["depth_sha256"] for e in record["inputs"]["bg"]}) == 3
    assert verify(str(tmp_path / "dd"), deep=True).ok


def test_bad_settings_are_one_line(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bg, fg = map(str, demo_inputs)
    assert main(["build", "--bg", bg, "--fg", fg, "--out", str(tmp_path / "a"), "--depth-layers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: --depth-layers runs a learned model once per background: it needs --depth "
                          "densedepth or --depth onnx, got --depth plane") and err.count("\n") == 1
    assert not (tmp_path / "a").exists()
