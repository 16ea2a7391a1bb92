"""Shared fixtures: small deterministic inputs and a helper that snapshots a dataset."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
# Hugging Face libraries (datasets, in the card and README tests) must never try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fgbg.builder.demo import write_demo_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # netem: the tests' network emulator


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """3 backgrounds and 3 foregrounds from the built-in generator (session-wide, read-only)."""
    return write_demo_inputs(tmp_path_factory.mktemp("demo"), n_bg=3, n_fg=3)


@pytest.fixture(scope="module")
def moto() -> Iterator[object]:
    """A real S3 endpoint (``moto_server`` on 127.0.0.1) for this test module."""
    pytest.importorskip("moto")
    from s3server import MotoServer, apply_env

    apply_env()
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture()
def bucket(moto: object, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on ``moto``, named after the test."""
    import boto3

    name = "b" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name
