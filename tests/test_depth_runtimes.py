"""DenseDepth on ONNX Runtime and OpenVINO (cases in runtime_cases.py), run in a child pytest.

Why a child process: with OpenVINO, NNCF and TensorFlow loaded together, a later test that
starts tracemalloc in the same xdist worker took that worker down (seen twice in the full
suite, never in isolation); the cases themselves are unchanged and their output is shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("densedepth")


def test_runtime_cases_in_their_own_process() -> None:
    pytest.importorskip("tf2onnx")
    here = Path(__file__).parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                           str(here / "runtime_cases.py")], cwd=here.parent, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "8 passed" in done.stdout.splitlines()[-1], done.stdout[-2000:]
