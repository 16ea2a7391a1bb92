"""DenseDepth (Alhashim & Wonka 2018) as a Keras 3 model, for any Keras backend.

Encoder: DenseNet-169 without top, ``weights=None`` (never a download), fed RGB in [0, 1].
Decoder: ``conv2`` (1x1) on the encoder's final ``relu``, then four up-blocks ``up1..up4``
-- 2x bilinear upsampling with align_corners=True semantics (TF1 ``resize_images``),
concatenation with the skips ``pool3_pool``, ``pool2_pool``, ``pool1``, ``conv1/relu``,
``upN_convA`` 3x3 and ``upN_convB`` 3x3 with LeakyReLU as the :class:`DecoderSpec` says --
then ``conv3`` 3x3 to one channel at half the input resolution.

The decoder's widths and activations are not hard-coded: the released ``nyu.h5`` has a
full-width decoder and one LeakyReLU per block (after convB), while the repository's
``model.py`` builds a half-width decoder with two; :mod:`.released` reads which one a file
holds. Only ``keras.ops`` is used, so the model runs on TensorFlow, JAX or PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SKIPS", "DecoderSpec", "align_corners_indices", "bilinear_upsampling_layer", "build_model"]

#: skip connection of each up-block, by its Keras 2 layer name (as in the released files)
SKIPS = ("pool3_pool", "pool2_pool", "pool1", "conv1/relu")


@dataclass(frozen=True)
class DecoderSpec:
    """The decoder facts that differ between DenseDepth files."""

    conv2_filters: int  # 1664 in the released nyu.h5, 832 in model.py
    up_filters: tuple[int, int, int, int]
    leaky_after_a: bool
    leaky_after_b: bool
    alpha: float = 0.2

    @classmethod
    def released(cls) -> DecoderSpec:
        """The layout of the published nyu.h5 / kitti.h5 (~42.8 M parameters)."""
        return cls(1664, (832, 416, 208, 104), leaky_after_a=False, leaky_after_b=True)

    @classmethod
    def repository(cls) -> DecoderSpec:
        """The layout the repository's current model.py builds (half-width decoder)."""
        return cls(832, (416, 208, 104, 52), leaky_after_a=True, leaky_after_b=True)


def keras3_name(keras2_name: str) -> str:
    """Keras 3's DenseNet renamed ``conv1/conv`` to ``conv1_conv`` (and bn, relu)."""
    return keras2_name.replace("/", "_")


def align_corners_indices(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output row: the two source rows and the weight of the second.

    align_corners=True maps output i to source ``i * (n_in - 1) / (n_out - 1)``, so the
    corner pixels of input and output coincide (TF1 ``resize_bilinear(align_corners=True)``).
    """
    if n_out == 1 or n_in == 1:
        src = np.zeros(n_out)
    else:
        src = np.arange(n_out, dtype=np.float64) * (n_in - 1) / (n_out - 1)
    i0 = np.floor(src).astype(np.int32)
    i1 = np.minimum(i0 + 1, n_in - 1).astype(np.int32)
    return i0, i1, (src - i0).astype(np.float32)


def bilinear_upsampling_layer() -> Any:
    """The ``BilinearUpSampling2D`` layer class (built lazily: importing keras is slow)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="fgbg")
    class BilinearUpSampling2D(keras.layers.Layer):  # type: ignore[misc]
        """2x bilinear upsampling, align_corners=True, channels last, static spatial size."""

        def __init__(self, size: tuple[int, int] = (2, 2), **kwargs: Any):
            super().__init__(**kwargs)
            self.size = tuple(size)

        def build(self, input_shape: tuple[int | None, ...]) -> None:
            h, w = input_shape[1], input_shape[2]
            if h is None or w is None:
                raise ValueError("BilinearUpSampling2D needs a static input height and width")
            self._rows = align_corners_indices(h, h * self.size[0])
            self._cols = align_corners_indices(w, w * self.size[1])

        def call(self, x: Any) -> Any:
            r0, r1, rw = self._rows
            c0, c1, cw = self._cols
            rw_t = ops.reshape(ops.cast(rw, x.dtype), (1, -1, 1, 1))
            cw_t = ops.reshape(ops.cast(cw, x.dtype), (1, 1, -1, 1))
            top, bottom = ops.take(x, r0, axis=1), ops.take(x, r1, axis=1)
            x = top + (bottom - top) * rw_t
            left, right = ops.take(x, c0, axis=2), ops.take(x, c1, axis=2)
            return left + (right - left) * cw_t

        def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            n, h, w, c = input_shape
            return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "size": list(self.size)}

    return BilinearUpSampling2D


def build_model(spec: DecoderSpec, height: int, width: int) -> Any:
    """The Keras 3 DenseDepth model for ``height`` x ``width`` inputs (multiples of 32)."""
    if height % 32 or width % 32:
        raise ValueError(f"DenseDepth input must be a multiple of 32, got {width}x{height}")
    import keras
    from keras import layers

    upsample = bilinear_upsampling_layer()
    base = keras.applications.DenseNet169(include_top=False, weights=None, input_shape=(height, width, 3))
    x = layers.Conv2D(spec.conv2_filters, 1, padding="same", name="conv2")(base.output)
    for i, (filters, skip) in enumerate(zip(spec.up_filters, SKIPS, strict=True), start=1):
        x = upsample(name=f"up{i}_upsampling2d")(x)
        x = layers.Concatenate(name=f"up{i}_concat")([x, base.get_layer(keras3_name(skip)).output])
        x = layers.Conv2D(filters, 3, padding="same", name=f"up{i}_convA")(x)
        if spec.leaky_after_a:
            x = layers.LeakyReLU(negative_slope=spec.alpha, name=f"up{i}_leakyA")(x)
        x = layers.Conv2D(filters, 3, padding="same", name=f"up{i}_convB")(x)
        if spec.leaky_after_b:
            x = layers.LeakyReLU(negative_slope=spec.alpha, name=f"up{i}_leakyB")(x)
    out = layers.Conv2D(1, 3, padding="same", name="conv3")(x)
    return keras.Model(base.input, out, name="densedepth")
