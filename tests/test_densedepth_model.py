import numpy as np
import pytest

pytest.importorskip("keras")

from fgbg.builder.depth.densedepth.model import (
    DecoderSpec,
    align_corners_indices,
    bilinear_upsampling_layer,
    build_model,
)

pytestmark = pytest.mark.xdist_group("densedepth")


def test_align_corners_indices_by_hand() -> None:
    i0, i1, w = align_corners_indices(2, 4)  # source positions 0, 1/3, 2/3, 1
    assert i0.tolist() == [0, 0, 0, 1] and i1.tolist() == [1, 1, 1, 1]
    assert np.allclose(w, [0, 1 / 3, 2 / 3, 0])


def test_upsampling_hand_computed_example() -> None:
    layer = bilinear_upsampling_layer()()
    x = np.array([[0.0, 3.0], [6.0, 9.0]], np.float32).reshape(1, 2, 2, 1)
    out = np.asarray(layer(x))[0, :, :, 0]
    # align_corners=True: corners stay, interior rows/cols at thirds
    expected = np.array([[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]], np.float32)
    assert out.shape == (4, 4) and np.allclose(out, expected, atol=1e-6)


def test_upsampling_matches_tf1_resize_bilinear_align_corners() -> None:
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((2, 7, 5, 3)).astype(np.float32)
    ours = np.asarray(bilinear_upsampling_layer()()(x))
    ref = tf.compat.v1.image.resize_bilinear(x, [14, 10], align_corners=True).numpy()
    assert np.abs(ours - ref).max() < 1e-6


def test_parameter_counts_and_shapes() -> None:
    released = build_model(DecoderSpec.released(), 64, 96)
    assert released.count_params() == 42_816_089  # the released nyu.h5 (~173 MB)
    assert tuple(released.output.shape) == (None, 32, 48, 1)
    names = {layer.name for layer in released.layers}
    assert {"conv2", "up1_convA", "up4_convB", "conv3", "conv1_relu", "pool3_pool"} <= names
    assert not any(n.endswith("leakyA") for n in names)
    repo = build_model(DecoderSpec.repository(), 64, 64)
    assert repo.count_params() == 21_523_805 and "up2_leakyA" in {layer.name for layer in repo.layers}
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(DecoderSpec.released(), 100, 64)
