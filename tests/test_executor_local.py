"""The local process-pool runner: a worker that cannot start is an error, not a hang."""

from __future__ import annotations

import pytest

from builder.build import run_shards
from builder.errors import FgbgError


class _Broken:
    def __init__(self) -> None:
        raise FgbgError("weights.h5: no weights for layer 'conv2'")


def test_worker_start_failure_surfaces_with_its_message() -> None:
    with pytest.raises(FgbgError, match="no weights for layer 'conv2'"):
        list(run_shards(_Broken, [0, 1, 2], workers=2))
    with pytest.raises(FgbgError, match="no weights for layer 'conv2'"):
        list(run_shards(_Broken, [0, 1], workers=1))
