"""Shared fixtures: small deterministic inputs and a helper that snapshots a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
# Hugging Face libraries (datasets, in the card and README tests) must never try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fgbg.builder.demo import write_demo_inputs


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """3 backgrounds and 3 foregrounds from the built-in generator (session-wide, read-only)."""
    return write_demo_inputs(tmp_path_factory.mktemp("demo"), n_bg=3, n_fg=3)
