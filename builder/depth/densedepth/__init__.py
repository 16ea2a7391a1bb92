"""DenseDepth: the released weights loaded strictly into a Keras 3 model (see submodules)."""

from .backend import DTYPES, DenseDepthBackend, describe_weights, pred_to_metres
from .model import DecoderSpec, build_model

__all__ = ["DTYPES", "DecoderSpec", "DenseDepthBackend", "build_model", "describe_weights", "pred_to_metres"]
