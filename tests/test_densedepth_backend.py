"""The densedepth backend: post-processing, batching, resizing, builds, and the real weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import msgspec
import numpy as np
import pytest

from fgbg.builder.depth import DepthBatch, make_backend, to_seed_uint8
from fgbg.builder.depth.densedepth.backend import pred_to_metres
from fgbg.builder.errors import FgbgError

pytestmark = pytest.mark.xdist_group("densedepth")


def test_pred_to_metres_seed_formula() -> None:
    pred = np.array([100.0, 1.0, 10.0, 0.0, -5.0, 2000.0])
    # 1000/pred: 10, 1000, 100, inf, -200, 0.5 -> clip 10..1000 -> /100
    assert pred_to_metres(pred).tolist() == [0.1, 10.0, 1.0, 10.0, 0.1, 0.1]


def test_seed_eight_bit_map_from_pred() -> None:
    pred = np.array([[[100.0, 50.0], [20.0, 10.0]]])  # -> 10, 20, 50, 100 cm-ish units
    d = np.clip(1000 / pred, 10, 1000) / 1000  # the seed's code, verbatim semantics
    expected = np.rint((d - d.min()) / (d.max() - d.min()) * 255).astype(np.uint8)
    assert np.array_equal(to_seed_uint8(pred_to_metres(pred)), expected)


def test_missing_weights_is_a_clear_error() -> None:
    with pytest.raises(FgbgError, match=r"needs --depth-weights PATH.*nyu\.h5.*never downloads.*--depth plane"):
        make_backend("densedepth", (112, 112), input_size=(224, 224))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    pytest.importorskip("keras")
    from densedepth_files import make_weights

    from fgbg.builder.depth.densedepth.model import DecoderSpec

    path = tmp_path_factory.mktemp("dd") / "nyu_like.h5"
    return path, make_weights(path, DecoderSpec.released(), seed=3)


def test_backend_batches_and_resizes(weights: tuple[Path, Any]) -> None:
    path, model = weights
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    batch = DepthBatch(images, np.zeros((5, 64, 64), np.uint8), np.zeros((5, 4), np.int64))
    backend = make_backend("densedepth", (32, 32), weights=str(path), input_size=(64, 64), batch=2)
    assert backend is not None and backend.needs_pixels
    out = backend.predict(batch)
    ref = to_seed_uint8(pred_to_metres(model.predict_on_batch(images.astype(np.float32) / 255)[..., 0]))
    assert out.shape == (5, 32, 32) and out.dtype == np.uint8 and np.array_equal(out, ref)
    d = backend.describe()
    assert d.backend == "densedepth" and d.parameters == 42_816_089 and len(d.weights_sha256 or "") == 64
    assert d.decoder is not None and d.decoder.conv2 == 1664 and not d.decoder.leaky_after_a
    big = make_backend("densedepth", (48, 40), weights=str(path), input_size=(64, 64))
    assert big is not None
    resized = big.predict(DepthBatch(rng.integers(0, 256, (2, 100, 90, 3), dtype=np.uint8),
                                     np.zeros((2, 100, 90), np.uint8), np.zeros((2, 4), np.int64)))
    assert resized.shape == (2, 40, 48) and resized.min() == 0 and resized.max() == 255


def test_build_with_densedepth(weights: tuple[Path, Any], tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    from fgbg.builder import BuildConfig, build
    from fgbg.readers import open_dataset

    path, _ = weights
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=5, depth="densedepth")
    res = build(tmp_path / "d", cfg, *demo_inputs, progress=False, workers=1, depth_options={"weights": str(path)})
    m = res.manifest
    assert m.depth.input == [64, 64] and m.depth.size == [32, 32] and m.config["depth_input"] == [64, 64]
    samples = list(open_dataset(tmp_path / "d"))
    assert len(samples) == 9 and all(s["depth"].shape == (32, 32) for s in samples)
    assert all(s["depth"].min() == 0 and s["depth"].max() == 255 for s in samples)
    with pytest.raises(FgbgError, match="differs from the one this dataset was built with"):
        other = tmp_path / "other.h5"
        other.write_bytes(path.read_bytes())
        with h5py.File(other, "r+") as h:  # same architecture, one weight changed
            h["model_weights/conv3/conv3/bias:0"][...] = 2.0
        (tmp_path / "d" / "shards" / "000000.tar").unlink()
        build(tmp_path / "d", None, progress=False, workers=1, depth_options={"weights": str(other)})
    assert json.loads((tmp_path / "d" / "manifest.json").read_bytes())["depth"] == msgspec.to_builtins(m.depth)


@pytest.mark.skipif(not os.environ.get("FGBG_NYU_WEIGHTS"), reason="set FGBG_NYU_WEIGHTS to a real nyu.h5")
def test_real_nyu_weights_on_a_synthetic_floor() -> None:
    """The released nyu.h5 on a rendered floor: the bottom is nearer than the top, 0.1-10 m."""
    from fgbg.builder.depth.densedepth.backend import DenseDepthBackend

    backend = DenseDepthBackend((112, 112), weights=os.environ["FGBG_NYU_WEIGHTS"], input_size=(224, 224))
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float64)
    horizon = 70.0
    z = np.where(yy > horizon, 300.0 / np.maximum(yy - horizon, 1.0), 300.0)  # floor plane, wall above
    u = (xx - 112) * z / 200.0
    checker = ((np.floor(u) + np.floor(z)) % 2)[..., None]
    wall = np.array([200, 190, 170.0])
    floor = np.where(checker > 0, [150, 110, 80.0], [90, 65, 45.0])
    image = np.where((yy > horizon)[..., None], floor, wall).astype(np.uint8)[None]
    metres = pred_to_metres(backend.forward(image.astype(np.float32) / 255))[0]
    assert metres.min() >= 0.1 and metres.max() <= 10.0
    assert metres[-10:].mean() < metres[40:50].mean()  # bottom rows nearer than rows near the horizon
