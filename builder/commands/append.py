"""``fgbg append``: grow a dataset with new backgrounds and/or foregrounds.

The new combinations -- every new background with every foreground, and every old
background with every new foreground -- become one new plan segment whose samples go to
new shards after the existing ones; existing shards, receipts and keys are never touched.
The build record gains the new inputs, the segment, and the previous fingerprint in its
``lineage`` (so the old shards' receipts stay valid); the index and manifest (with merged
statistics) are rewritten last, atomically, like after any build.

Append is resumable: rerunning the same command after a crash finds the new inputs
already recorded as the last segment and just finishes the missing shards.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgbg.readers.schema import InputEntry

from ..build import BuildResult, run_record
from ..errors import FgbgError
from ..inputs import encode_inputs, load_inputs, write_inputs
from ..layer_inputs import floors_of, predict_backgrounds
from ..manifest import BUILD_RECORD, read_record
from ..shard import calibration_images
from ..sources import PreparedInput, load_backgrounds, load_foregrounds
from ..storage import open_store

__all__ = ["append"]


def _same_inputs(a: Sequence[InputEntry], b: list[PreparedInput]) -> bool:
    return [(r.name, r.sha256) for r in a] == [(p.name, p.source_sha256) for p in b]


def append(
    url: str | Path, bg_dir: str | Path | None = None, fg_dir: str | Path | None = None, *,
    fg_mask_dir: str | Path | None = None, workers: int | None = None, progress: bool | None = None,
    storage_options: dict[str, Any] | None = None, depth_options: dict[str, Any] | None = None,
    skip_invalid: bool = False,
) -> BuildResult:
    """Append the combinations of new ``bg_dir``/``fg_dir`` inputs to the dataset at ``url``."""
    t0 = time.monotonic()
    if bg_dir is None and fg_dir is None:
        raise FgbgError("append needs --bg and/or --fg with the new inputs")
    store = open_store(url, storage_options)
    if not store.exists(BUILD_RECORD):
        raise FgbgError(f"{url}: no dataset to append to (no {BUILD_RECORD})")
    with store.lock():
        record = read_record(store)
        cfg = record.build_config
        new_bg = load_backgrounds(bg_dir, cfg, skip_invalid, storage_options) if bg_dir else []
        new_fg = load_foregrounds(fg_dir, cfg, fg_mask_dir, skip_invalid, storage_options) if fg_dir else []
        inputs = record.inputs
        segments = record.segments or (((0, len(inputs.bg)), (0, len(inputs.fg))),)
        (b0, b1), (f0, f1) = segments[-1]
        resuming = len(segments) > 1 and _same_inputs(inputs.bg[b0:b1], new_bg) and _same_inputs(
            inputs.fg[f0:f1], new_fg)
        if not resuming:
            known = {(r.name, r.sha256) for r in inputs.bg + inputs.fg}
            dupes = [p.name for p in new_bg + new_fg if (p.name, p.source_sha256) in known]
            if dupes:
                raise FgbgError(f"{url}: already holds {', '.join(dupes[:5])}; append only new inputs")
            n_bg, n_fg = len(inputs.bg), len(inputs.fg)
            added, files = encode_inputs(cfg, new_bg, new_fg, start=(n_bg, n_fg))
            grown, spool = inputs + added, None
            if cfg.depth_layers and new_bg:  # the model once per new background, as a build does
                made = predict_backgrounds(cfg, grown, [p.png for p in new_bg], dict(depth_options or {}), workers,
                                           progress, start=n_bg,
                                           calibration=calibration_images(load_inputs(store, inputs), cfg))
                grown, spool = made.inputs, made.spool
                files.update(made.files)
            config = record.config
            if cfg.floors is not None and new_bg:  # the new backgrounds' floors, fitted from their predictions
                more = floors_of(cfg, grown, lambda rel: files[rel].read_bytes(), start=n_bg)
                config = dataclasses.replace(cfg, floors=cfg.floors + (more or ()))
            record = record.with_changes(
                config=config,
                inputs=grown,
                segments=(*segments, ((n_bg, n_bg + len(new_bg)), (n_fg, n_fg + len(new_fg)))),
                lineage=(*(record.lineage or ()), record.fingerprint))
            write_inputs(store, files)
            del spool  # the spooled predictions are in the dataset now
            store.write_atomic(BUILD_RECORD, record.to_bytes())  # from here on, a rerun resumes
        store.remove_stale_temps()
        return run_record(store, record, depth_options=depth_options, workers=workers, progress=progress,
                          t0=t0, desc="fgbg append")
