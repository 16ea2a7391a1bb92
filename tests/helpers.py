"""Helpers shared by test modules."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the lock file excluded): a dataset's identity."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".fgbg.lock"
    }


def reference_snapshot(out: Path, cfg: Any, inputs: tuple[Path, Path]) -> dict[str, str]:
    """The snapshot of ``cfg`` built at ``out`` the plainest way (one process, local disk):
    what every other way of building the same dataset must reproduce byte for byte."""
    from fgbg.builder import build

    build(out, cfg, *inputs, progress=False, workers=1)
    return snapshot(out)


def start_fgbg(args: list[str], env: dict[str, str] | None = None, capture: bool = False) -> subprocess.Popen[str]:
    """``python -m builder ARGS`` in its own process group (so its workers can be killed with it)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "fgbg.builder", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=out, stderr=out, text=True)


def local_receipts(out: Path) -> int:
    """Receipts committed so far in the dataset at ``out`` (one per finished shard file)."""
    shards = out / "shards"
    return len(list(shards.glob("*.json"))) if shards.is_dir() else 0


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], group: bool = True, timeout: float = 60,
              poll: float = 0.002) -> None:
    """SIGKILL ``proc`` -- its whole process group, or with ``group=False`` the parent only,
    orphaning its workers -- as soon as ``ready()`` holds (or it ended, or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(poll)
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def sample_fingerprint(sample: dict[str, Any]) -> tuple[str, str]:
    """(key, sha256 of a decoded sample's pixels and annotation): equal only for the same sample."""
    import json

    import numpy as np

    h = hashlib.sha256()
    for field in ("image", "mask", "depth"):
        h.update(np.ascontiguousarray(sample[field]).tobytes())
    h.update(json.dumps(sample["meta"], sort_keys=True).encode())
    return sample["key"], h.hexdigest()
