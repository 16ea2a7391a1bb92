"""``fgbg depth-check``: how far a faster runtime or precision moves *your* depth maps, and how fast.

Reduced precision is always the user's explicit choice, and the choice needs numbers from
their own weights and images: random weights (all that can be generated offline) give nearly
flat maps, a poor test of precision. So this command composites a few batches exactly as a
build would (a small build without depth into a temporary folder; the model sees the JPEG
round trip, as in a build), runs the reference -- TensorFlow float32 for DenseDepth, ONNX
Runtime float32 for ``--depth onnx`` -- and the candidate on the same images, and reports
agreement of the raw predictions and of the stored 8-bit maps, and the speed of each.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from ..build import build
from ..config import BuildConfig
from ..demo import write_demo_inputs
from ..depth import DepthBatch, make_backend
from ..errors import FgbgError
from ..shard import depth_settings

__all__ = ["Agreement", "depth_check", "format_report"]


@dataclass(frozen=True)
class Agreement:
    """Candidate vs reference on the same composites."""

    images: int
    reference: str
    candidate: str
    max_rel_error: float  # max |candidate - reference| / max |reference| of the raw output
    mean_rel_error: float  # mean |candidate - reference| / mean |reference|
    pixels_differing: float  # share of 8-bit map pixels that differ
    max_levels: int  # largest difference of an 8-bit map pixel, in levels
    reference_rate: float  # raw forward images/s
    candidate_rate: float


def _composites(cfg: BuildConfig, bg: Path, fg: Path, n: int, work: Path) -> np.ndarray:
    """``n`` composites as the depth model sees them in a build (JPEG decoded back)."""
    from fgbg.readers import open_dataset

    flat = BuildConfig(size=cfg.size, fg_size=cfg.fg_size, keep_aspect=cfg.keep_aspect, fg_scale=cfg.fg_scale,
                       placements=max(1, cfg.placements), flips=cfg.flips, seed=cfg.seed, quality=cfg.quality,
                       shard_size=max(n, 1), depth="none")
    build(work / "composites", flat, bg, fg, progress=False, workers=1)
    ds = open_dataset(work / "composites", fields=["image"])
    if len(ds) < n:
        raise FgbgError(f"depth-check: the inputs make {len(ds)} composites, fewer than the {n} asked for")
    return np.stack([ds[i]["image"] for i in np.linspace(0, len(ds) - 1, n).astype(int)])


class ModelBackend(Protocol):
    """What the learned backends (densedepth, onnx) have beyond :class:`DepthBackend`."""

    def model_input(self, images: np.ndarray) -> np.ndarray: ...

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def predict(self, batch: DepthBatch) -> np.ndarray: ...


def _timed(backend: ModelBackend, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Raw output, 8-bit maps and raw forward images/s (after one warm-up batch)."""
    x = backend.model_input(images)
    backend.forward(x[: min(len(x), 2)])
    t = time.perf_counter()
    raw = np.asarray(backend.forward(x), np.float64)
    rate = len(x) / (time.perf_counter() - t)
    n, h, w = images.shape[:3]
    maps = backend.predict(DepthBatch(images, np.zeros((n, h, w), np.uint8), np.zeros((n, 4), np.int64)))
    return raw, maps, rate


def depth_check(cfg: BuildConfig, options: dict[str, Any], bg: Path | None = None, fg: Path | None = None,
                images: int = 16) -> Agreement:
    """Reference vs ``cfg``'s runtime and precision on ``images`` composites of ``bg``/``fg``
    (the built-in demo inputs when not given)."""
    if cfg.runtime is None:
        raise FgbgError("depth-check compares model runtimes: use --depth densedepth or --depth onnx")
    reference_cfg = BuildConfig(size=cfg.size, depth=cfg.depth, depth_size=cfg.depth_size,
                                depth_input=cfg.depth_input, depth_preset=cfg.depth_preset,
                                fg_size=cfg.fg_size, fg_scale=cfg.fg_scale, keep_aspect=cfg.keep_aspect)
    with tempfile.TemporaryDirectory(prefix="fgbg-depth-check-") as tmp:
        work = Path(tmp)
        if bg is None or fg is None:
            bg, fg = write_demo_inputs(work / "inputs", 4, 4)
        composites = _composites(cfg, bg, fg, images, work)
        ref = make_backend(reference_cfg.depth, reference_cfg.depth_shape, **depth_settings(reference_cfg, options))
        run = dict(options)
        if cfg.depth_dtype == "int8":
            run["calibration"] = composites
        cand = make_backend(cfg.depth, cfg.depth_shape, **depth_settings(cfg, run))
        assert ref is not None and cand is not None
        ref_raw, ref_maps, ref_rate = _timed(cast(ModelBackend, ref), composites)
        cand_raw, cand_maps, cand_rate = _timed(cast(ModelBackend, cand), composites)
    diff = np.abs(cand_raw - ref_raw)
    levels = np.abs(cand_maps.astype(np.int16) - ref_maps.astype(np.int16))
    return Agreement(
        images=len(composites), reference=f"{reference_cfg.runtime} float32",
        candidate=f"{cfg.runtime} {cfg.depth_dtype}",
        max_rel_error=float(diff.max() / max(np.abs(ref_raw).max(), 1e-12)),
        mean_rel_error=float(diff.mean() / max(np.abs(ref_raw).mean(), 1e-12)),
        pixels_differing=float((levels > 0).mean()), max_levels=int(levels.max()),
        reference_rate=ref_rate, candidate_rate=cand_rate)


def format_report(a: Agreement) -> str:
    return "\n".join([
        f"fgbg depth-check: {a.images} composites, {a.candidate} against the reference {a.reference}",
        f"raw prediction   max relative error {a.max_rel_error:.2e}, mean {a.mean_rel_error:.2e}",
        f"8-bit depth maps {100 * a.pixels_differing:.2f}% of pixels differ, by at most {a.max_levels} level(s)",
        f"speed            {a.candidate_rate:.2f} vs {a.reference_rate:.2f} images/s raw forward "
        f"({a.candidate_rate / a.reference_rate:.2f}x)",
    ])
