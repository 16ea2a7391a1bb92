#!/usr/bin/env bash
# DenseDepth on one GPU, measured in one short run (a few minutes) on a fresh GPU machine.
#
#   tools/device_check.sh prepare   # here, with PyPI reachable: wheels the GPU image lacks -> .whl/
#   tools/device_check.sh run       # there (the device tool, carry [".whl"]): prints the figures
#
# The GPU image has Python 3.12 with PyTorch, JAX and ONNX Runtime (CPU) but no TensorFlow, and
# nothing can be fetched there. fgbg's DenseDepth is a Keras 3 model written with keras.ops only,
# so there it runs on Keras' PyTorch backend (KERAS_BACKEND=torch, on the GPU): the same loader,
# the same weights file (a released-layout nyu.h5 with random weights made on the spot: speed
# does not depend on the values). It prints, at 224x224:
#   1. raw batched forward images/s, float32 and bfloat16, batch 64 and 256;
#   2. end to end: `fgbg build --depth densedepth --depth-device gpu` with 8 CPU worker
#      processes compositing and encoding, samples/s (each worker holds a model copy on the one
#      GPU: Ray, whose depth actors put one copy per GPU, is not on that image and too large to
#      carry; that layout is tested on CPU with Ray's custom GPU resources).
# Goal on one H100/H200: >= 2,000 samples/s end to end with DenseDepth at 224.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS="keras==3.15.1 namex==0.1.0 optree==0.19.0 msgspec==0.19.0 hdf5plugin==6.0.0"

case "${1:-run}" in
prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl $WHEELS
    du -sh .whl
    ;;
run)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    mkdir -p /tmp/fgbgsrc/fgbg && ln -sfn "$PWD/builder" /tmp/fgbgsrc/fgbg/builder && ln -sfn "$PWD/readers" /tmp/fgbgsrc/fgbg/readers
    export PYTHONPATH=/tmp/site:/tmp/fgbgsrc KERAS_BACKEND=torch PYTHONUNBUFFERED=1
    WORK=$(mktemp -d)
    python3 - "$WORK" <<'EOF'
import sys, time
from pathlib import Path
import numpy as np
import keras
from fgbg.builder.depth.densedepth.model import DecoderSpec, build_model
from fgbg.builder.depth.densedepth.released import load_strict, read_released
from fgbg.builder.depth.densedepth.synthetic import make_random_weights

work = Path(sys.argv[1])
weights = work / "nyu_layout_random.h5"
make_random_weights(weights, DecoderSpec.released(), side=64)
released = read_released(weights)
print(f"keras {keras.__version__} on {keras.backend.backend()}")
for dtype in ("float32", "bfloat16"):
    keras.config.set_dtype_policy("float32" if dtype == "float32" else "mixed_bfloat16")
    model = build_model(released.spec, 224, 224)
    load_strict(model, released)
    for batch in (64, 256):
        x = np.random.default_rng(0).random((batch, 224, 224, 3)).astype(np.float32)
        model.predict_on_batch(x)
        t = time.perf_counter()
        for _ in range(5):
            model.predict_on_batch(x)
        print(f"raw forward {dtype:9s} batch {batch:3d}: {5 * batch / (time.perf_counter() - t):8.1f} images/s")
EOF
    python3 -m fgbg.builder build --demo --demo-bg 16 --demo-fg 16 --placements 8 --out "$WORK/warm" \
        --depth densedepth --depth-weights "$WORK/nyu_layout_random.h5" --depth-device gpu --depth-batch 64 \
        --workers 2 --no-progress --shard-size 256
    python3 -m fgbg.builder build --demo --demo-bg 16 --demo-fg 16 --placements 8 --out "$WORK/e2e" \
        --depth densedepth --depth-weights "$WORK/nyu_layout_random.h5" --depth-device gpu --depth-batch 64 \
        --workers 8 --no-progress --shard-size 256
    ;;
*)
    echo "usage: tools/device_check.sh prepare|run" >&2
    exit 2
    ;;
esac
