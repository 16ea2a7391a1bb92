"""TensorFlow's start-up noise on machines without a GPU, filtered -- and nothing else.

TensorFlow's CUDA build probes for CUDA on every start and logs, from C++ straight to file
descriptor 2, ``failed call to cuInit`` at ERROR level (plus notices about oneDNN and CPU
instructions) on every CPU-only machine: a user sees errors on every build. Raising
``TF_CPP_MIN_LOG_LEVEL`` to 3 would hide real errors too, so instead, where no NVIDIA device
exists, the descriptor is passed through a filter while TensorFlow starts and builds its
first graph: the known lines are dropped, every other line goes through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["NOISE", "quiet_tensorflow"]

#: lines TensorFlow prints on a machine without a GPU that say nothing wrong
NOISE = re.compile(
    r"failed call to cuInit|Could not find cuda drivers|cudart_stub|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|All log messages before absl::InitializeLog|oneDNN custom operations are on|cpu_feature_guard"
    r"|This TensorFlow binary is optimized|To enable the following instructions|TF-TRT Warning"
    r"|computation placer already registered|was built with CUDA but no GPU"
)


def _gpu_machine() -> bool:
    return Path("/dev/nvidiactl").exists()


@contextlib.contextmanager
def quiet_tensorflow(enabled: bool | None = None) -> Iterator[None]:
    """Drop TensorFlow's CUDA-probe noise from stderr in this block (on a machine without an
    NVIDIA device, unless ``enabled`` says otherwise); other output passes unchanged."""
    if not (enabled if enabled is not None else not _gpu_machine()):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not NOISE.search(line.decode("utf-8", "replace")):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="fgbg-quiet-tf", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees EOF
        thread.join(timeout=5)
        os.close(saved)
