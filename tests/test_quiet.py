"""TensorFlow's CUDA-probe noise is dropped from stderr on GPU-less machines; nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fgbg.builder.depth.quiet import quiet_tensorflow


def test_noise_dropped_real_errors_kept(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_tensorflow(enabled=True):
        os.write(2, b"E0000 00:00:17 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n")
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n")
        os.write(2, b"E0000 op_kernel.cc:1] OOM when allocating tensor\n")
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'child: real problem\\n')"], check=True)
    err = capfd.readouterr().err
    assert err.splitlines() == ["E0000 op_kernel.cc:1] OOM when allocating tensor", "child: real problem"]
    os.write(2, b"failed call to cuInit after the block\n")  # the descriptor is back as it was
    assert "after the block" in capfd.readouterr().err


def test_disabled_passes_everything(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_tensorflow(enabled=False):
        os.write(2, b"failed call to cuInit\n")
    assert capfd.readouterr().err == "failed call to cuInit\n"
