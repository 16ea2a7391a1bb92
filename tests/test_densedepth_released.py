"""Strict loading of released-layout weight files (both decoder variants) and a tf_keras cross-check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

pytest.importorskip("keras")

from densedepth_files import SIDE, make_weights, randomise

from fgbg.builder.depth.densedepth.model import DecoderSpec, build_model
from fgbg.builder.depth.densedepth.released import WeightsError, load_strict, read_released

pytestmark = pytest.mark.xdist_group("densedepth")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    d = tmp_path_factory.mktemp("weights")
    return {name: (d / f"{name}.h5", make_weights(d / f"{name}.h5", spec, seed))
            for name, spec, seed in (("released", DecoderSpec.released(), 1),
                                     ("repository", DecoderSpec.repository(), 2))}


def _inputs() -> np.ndarray:
    return np.random.default_rng(5).random((2, SIDE, SIDE, 3)).astype(np.float32)


def test_file_layout_is_the_released_one(files: dict[str, tuple[Path, Any]]) -> None:
    path, _ = files["released"]
    with h5py.File(path, "r") as f:
        text = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
        assert text["keras_version"] == "2.2.4" and text["backend"] == "tensorflow"
        config = json.loads(text["model_config"])
        assert config["class_name"] == "Model"
        names = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
        assert "conv1/conv" in names and "up1_upsampling2d" in names and "input_1" in names
        assert "model_weights/conv1/conv/conv1/conv/kernel:0" in f
        assert [n.decode() for n in f["model_weights/conv1/bn"].attrs["weight_names"]] == [
            "conv1/bn/gamma:0", "conv1/bn/beta:0", "conv1/bn/moving_mean:0", "conv1/bn/moving_variance:0"]
        assert f["model_weights/conv2/conv2/kernel:0"].shape == (1, 1, 1664, 1664)
    assert 172_000_000 < path.stat().st_size < 173_500_000


@pytest.mark.parametrize("variant", ["released", "repository"])
def test_loading_reproduces_the_generating_model(files: dict[str, tuple[Path, Any]], variant: str) -> None:
    path, original = files[variant]
    released = read_released(path)
    assert released.spec == getattr(DecoderSpec, variant)()
    assert released.parameters == original.count_params()
    model = build_model(released.spec, SIDE, SIDE)
    randomise(model, 99)  # start from other weights: everything must be overwritten
    load_strict(model, released)
    x = _inputs()
    assert np.array_equal(model.predict_on_batch(x), original.predict_on_batch(x))


def _edited(src: Path, dst: Path, edit: Any) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f["model_weights"])
    return dst


def test_missing_wrong_and_extra_layers_raise(files: dict[str, tuple[Path, Any]], tmp_path: Path) -> None:
    src = files["repository"][0]
    model = build_model(DecoderSpec.repository(), SIDE, SIDE)

    def drop(g: h5py.Group) -> None:
        del g["conv3_block5_1_bn"]
        g.attrs["layer_names"] = [n for n in g.attrs["layer_names"] if n != b"conv3_block5_1_bn"]

    def reshape(g: h5py.Group) -> None:
        name = "conv2_block1_1_conv/kernel:0"
        data = g["conv2_block1_1_conv"][name][...]
        del g["conv2_block1_1_conv"][name]
        g["conv2_block1_1_conv"].create_dataset(name, data=data[..., :64])

    def extra(g: h5py.Group) -> None:
        lg = g.create_group("extra_conv")
        lg.attrs["weight_names"] = [b"extra_conv/kernel:0"]
        lg.create_dataset("extra_conv/kernel:0", data=np.zeros((1, 1, 3, 3), np.float32))
        g.attrs["layer_names"] = [*g.attrs["layer_names"], b"extra_conv"]

    cases = [(drop, r"no weights for layer 'conv3_block5_1_bn'"),
             (reshape, r"'conv2_block1_1_conv' weight 'kernel' has shape \(1, 1, 64, 64\), the model needs "
                       r"\(1, 1, 64, 128\)"),
             (extra, r"weights for layers the model does not have: extra_conv")]
    for i, (edit, message) in enumerate(cases):
        path = _edited(src, tmp_path / f"bad{i}.h5", edit)
        with pytest.raises(WeightsError, match=message):
            load_strict(model, read_released(path))


def test_not_a_weights_file(tmp_path: Path) -> None:
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match=r"x\.h5: not a readable DenseDepth weights file"):
        read_released(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f.create_dataset("a", data=[1])
    with pytest.raises(WeightsError, match="not a Keras full-model save"):
        read_released(tmp_path / "y.h5")
    with pytest.raises(WeightsError, match="not found"):
        read_released(tmp_path / "nope.h5")


def _tf_keras_densedepth(spec: DecoderSpec) -> Any:
    """The original Keras 2 graph (DenseDepth's model.py, variant per ``spec``) in tf_keras."""
    tf = pytest.importorskip("tensorflow")
    tfk = pytest.importorskip("tf_keras")
    L = tfk.layers

    class BilinearUpSampling2D(L.Layer):  # as in DenseDepth's layers.py: TF1 resize, align_corners
        def __init__(self, size: Any = (2, 2), **kwargs: Any):
            super().__init__(**kwargs)
            self.size = tuple(size)

        def call(self, x: Any) -> Any:
            s = tf.shape(x)
            return tf.compat.v1.image.resize_bilinear(x, [s[1] * 2, s[2] * 2], align_corners=True)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "size": list(self.size)}

    base = tfk.applications.DenseNet169(input_shape=(None, None, 3), include_top=False, weights=None)
    x = L.Conv2D(spec.conv2_filters, 1, padding="same", name="conv2")(base.output)
    for i, (filters, skip) in enumerate(zip(spec.up_filters, ("pool3_pool", "pool2_pool", "pool1", "conv1/relu"),
                                            strict=True), start=1):
        x = BilinearUpSampling2D((2, 2), name=f"up{i}_upsampling2d")(x)
        x = L.Concatenate(name=f"up{i}_concat")([x, base.get_layer(skip).output])
        x = L.Conv2D(filters, 3, padding="same", name=f"up{i}_convA")(x)
        if spec.leaky_after_a:
            x = L.LeakyReLU(alpha=0.2)(x)
        x = L.Conv2D(filters, 3, padding="same", name=f"up{i}_convB")(x)
        x = L.LeakyReLU(alpha=0.2)(x)
    out = L.Conv2D(1, 3, padding="same", name="conv3")(x)
    return tfk.Model(base.input, out)


@pytest.mark.parametrize("variant", ["released", "repository"])
def test_cross_check_with_original_keras2_graph(tmp_path: Path, variant: str) -> None:
    """tf_keras builds DenseDepth's original graph and saves it as Keras 2 does; fgbg's Keras 3
    model loading that file must give the same depth (tolerance 1e-4 relative)."""
    spec = getattr(DecoderSpec, variant)()
    k2 = _tf_keras_densedepth(spec)
    randomise(k2, 7)
    path = tmp_path / "k2.h5"
    k2.save(path)  # a Keras 2 full-model HDF5 save, like the released files
    released = read_released(path)
    assert released.spec == spec
    model = build_model(released.spec, SIDE, SIDE)
    load_strict(model, released)
    x = _inputs()
    ref = k2.predict_on_batch(x)
    ours = model.predict_on_batch(x)
    assert ours.shape == ref.shape == (2, SIDE // 2, SIDE // 2, 1)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
