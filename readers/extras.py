"""Optional dependencies: import one, or say which ``fgbg[extra]`` brings it.

fgbg's core install reads and builds datasets; PyTorch, TensorFlow, Ray and s3fs are extras.
A bare ``No module named 'torch'`` tells a newcomer nothing about the fix, so every optional
import goes through :func:`require`, whose error names the feature and the install line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["PROTOCOL_EXTRAS", "MissingExtra", "filesystem_error", "require"]

# fsspec protocols whose implementation is a separate package, and the extra that brings it.
PROTOCOL_EXTRAS = {"s3": "s3", "s3a": "s3"}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``import module``, or raise :class:`MissingExtra` naming ``pip install "fgbg[extra]"``.

    Only the absence of ``module`` itself (or its top-level package) is translated: an import
    error from *inside* an installed package is a real fault and propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        if e.name not in (module, top):
            raise
        raise MissingExtra(f"{feature} needs {top}, which is not installed: pip install \"fgbg[{extra}]\"") from e


def filesystem_error(protocol: str, error: ImportError) -> MissingExtra:
    """fsspec's own error for a protocol whose package is missing, as a :class:`MissingExtra`."""
    extra = PROTOCOL_EXTRAS.get(protocol)
    fix = f"pip install \"fgbg[{extra}]\"" if extra else "install the fsspec implementation for it"
    return MissingExtra(f"{protocol}:// URLs need a package that is not installed ({error}): {fix}")
