"""``--depth-layers``: the model runs once per background, before the first shard.

The predictions are inputs of the dataset (``inputs/bg_depth/NNNN.npy``, hashed in the build
record's background entries), so they are made where the other inputs are made: after the
backgrounds are prepared and before ``build.json`` is written. The model runs in its own
spawned processes (one per worker, each with cores / workers threads), which exit when the
predictions are done: the shard workers then paint maps without ever loading the model, and
no process carries the model's memory (GBs for DenseDepth on TensorFlow) through the build.

Backgrounds go to the model in fixed batches of ``batch`` counted from the first new
background (the last one zero-padded), so a prediction never depends on how many processes
ran the model. The model sees the stored background (``inputs/bg/NNNN.png``) at the same
input size and pre-processing as per-composite inference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol, cast

import msgspec
import numpy as np

from fgbg.readers.schema import InputEntry

from .config import BuildConfig
from .depth import make_backend
from .depth.layers import model_output
from .depth.stored import decode_prediction, depth_file, encode_prediction
from .encode import decode_png_color
from .errors import FgbgError
from .floor_fit import Floor, fit_floor
from .processes import spawn_executor, worker_count
from .record import Inputs
from .shard import CALIBRATION_IMAGES, depth_settings
from .sources import Spool

__all__ = ["Predictions", "carry_predictions", "first_backgrounds", "floors_of", "predict_backgrounds"]


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The records with every background's prediction entered, and the files to copy into
    ``inputs/`` (spooled in ``spool``, which must live until they are written)."""

    inputs: Inputs
    files: dict[str, Path]
    spool: Spool


class LearnedBackend(Protocol):
    """What a learned backend (densedepth, onnx) offers beyond predicting 8-bit maps."""

    output: str  # "metric" or "inverse": the convention of values()

    def values(self, images: np.ndarray) -> np.ndarray:
        """(N, h, w) float64 maps at the stored depth size, before the per-image stretch."""
        ...


_model: tuple[str, LearnedBackend] | None = None  # (settings key, backend): one model per prediction process


def _predict_chunk(cfg: BuildConfig, options: dict[str, Any], pngs: list[Path], outs: list[Path]) -> list[str]:
    """In a prediction process: the backgrounds ``pngs`` through the model as one batch; each
    prediction written to its ``outs`` file; their sha256s returned."""
    global _model
    key = repr((cfg, sorted((k, repr(v)) for k, v in options.items())))
    if _model is None or _model[0] != key:
        _model = (key, cast(LearnedBackend, make_backend(cfg.depth, cfg.depth_shape, **depth_settings(cfg, options))))
    backend = _model[1]
    images = np.stack([decode_png_color(p.read_bytes()) for p in pngs])
    digests = []
    for values, out in zip(backend.values(images), outs, strict=True):
        data = encode_prediction(values)
        out.write_bytes(data)
        digests.append(hashlib.sha256(data).hexdigest())
    return digests


def predict_backgrounds(cfg: BuildConfig, inputs: Inputs, pngs: Sequence[Path], depth_options: dict[str, Any],
                        workers: int | None, progress: bool | None, start: int = 0,
                        calibration: np.ndarray | None = None) -> Predictions:
    """Run the model on the backgrounds ``pngs`` (the stored PNGs of ``inputs.bg[start:]``)
    and enter each prediction in its record. ``calibration``: for int8, the dataset's first
    stored backgrounds (:func:`~.shard.calibration_images`: what a build's workers would use)."""
    from .build import _progress_bar

    spool = Spool()
    batch = max(1, int(depth_options.get("batch", 8)))
    chunks = [list(range(i, min(len(pngs), i + batch))) for i in range(0, len(pngs), batch)]
    procs = max(1, min(worker_count(workers), len(chunks)))
    options = {**depth_options, "batch": batch, "threads": depth_options.get("threads")
               or max(1, (os.cpu_count() or 1) // procs)}
    if cfg.depth_dtype == "int8":
        if calibration is None:
            raise FgbgError("--depth-dtype int8 needs calibration images")
        options["calibration"] = calibration
    outs = [spool.root / f"depth-{start + i:06d}.npy" for i in range(len(pngs))]
    digests: list[str] = [""] * len(pngs)
    bar = _progress_bar(len(pngs), progress, "fgbg depth layers")
    ex = spawn_executor(procs)
    try:
        futures = {ex.submit(_predict_chunk, cfg, options, [pngs[i] for i in c], [outs[i] for i in c]): c
                   for c in chunks}
        for done in as_completed(futures):
            for i, d in zip(futures[done], done.result(), strict=True):
                digests[i] = d
            bar.update(len(futures[done]))
    except BrokenProcessPool as e:
        raise FgbgError("a depth-layers process died (killed, or out of memory?) while running the model on the "
                        "backgrounds; nothing was written: rerun the same command") from e
    finally:
        bar.close()
        ex.shutdown(wait=True, cancel_futures=True)
    bg = list(inputs.bg)
    files = {}
    for i, digest in enumerate(digests):
        entry = bg[start + i]
        rel = depth_file(entry.index)
        bg[start + i] = _with_depth(entry, rel, digest)
        files[rel] = outs[i]
    return Predictions(Inputs(tuple(bg), inputs.fg), files, spool)


def floors_of(cfg: BuildConfig, inputs: Inputs, read: Callable[[str], bytes],
              start: int = 0) -> tuple[Floor, ...] | None:
    """``--depth-layers --position floor``: the floors of the backgrounds ``inputs.bg[start:]``,
    fitted from their predictions (``read(depth_file)``: the file's bytes, checked against the
    record's hash here); None when not placing people on floors, or when a background has no
    prediction entered (a resume that does not continue the dataset: its record will differ)."""
    if not (cfg.depth_layers and cfg.position == "floor"):
        return None
    entries = inputs.bg[start:]
    if any(e.depth_file is None or e.depth_sha256 is None for e in entries):
        return None
    output = model_output(cfg.depth, cfg.depth_preset, cfg.depth_input)
    out = []
    for e in entries:
        assert e.depth_file is not None
        data = read(e.depth_file)
        if hashlib.sha256(data).hexdigest() != e.depth_sha256:
            raise FgbgError(f"{e.depth_file}: stored depth prediction does not match its recorded sha256")
        out.append(fit_floor(decode_prediction(data, cfg.depth_shape, e.depth_file), output, cfg.size))
    return tuple(out)


def first_backgrounds(cfg: BuildConfig, pngs: Sequence[Path]) -> np.ndarray | None:
    """int8 only: the dataset's first backgrounds (spooled PNGs of a new build), which
    calibrate the quantized model -- the images :func:`~.shard.calibration_images` gives."""
    if cfg.depth_dtype != "int8":
        return None
    return np.stack([decode_png_color(p.read_bytes()) for p in pngs[:CALIBRATION_IMAGES]])


def carry_predictions(inputs: Inputs, existing: Inputs) -> Inputs:
    """``inputs`` with the predictions ``existing`` (the dataset's record) holds for the same
    stored backgrounds (same index, name, source and stored hashes): a resumed build proves it
    continues the dataset without running the model again (the predictions are a function of
    the background and the model, which the record's fingerprint also covers)."""
    bg = list(inputs.bg)
    for i, entry in enumerate(bg):
        old = existing.bg[i] if i < len(existing.bg) else None
        if old is not None and old.depth_file is not None and old.depth_sha256 is not None and (
                old.index, old.name, old.sha256, old.file_sha256) == (entry.index, entry.name, entry.sha256,
                                                                        entry.file_sha256):
            bg[i] = _with_depth(entry, old.depth_file, old.depth_sha256)
    return Inputs(tuple(bg), inputs.fg)


def _with_depth(entry: InputEntry, rel: str, digest: str) -> InputEntry:
    return msgspec.structs.replace(entry, depth_file=rel, depth_sha256=digest)
