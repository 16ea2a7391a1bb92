"""``python -m fgbg.builder.depth.densedepth.export WEIGHTS W H OUT THREADS``: the ONNX export
in a process of its own (see :func:`.backend.exported_onnx` for why)."""

from __future__ import annotations

import sys
from pathlib import Path

from .backend import export_onnx


def main(argv: list[str]) -> int:
    weights, w, h, out, threads = argv
    export_onnx(Path(weights), (int(w), int(h)), Path(out), int(threads) or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
