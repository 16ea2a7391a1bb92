"""``fgbg compare DATASET``: layered depth against per-composite inference of the same model.

``--depth-layers`` trades the model's view of each composite for its view of the background
with people painted in as flat cut-outs at the depth of their feet. Whether that is a good
trade depends on the user's model and images, so this command measures it on a real build's
own samples: it runs the dataset's model on each chosen composite as a per-composite build
would (the JPEG decoded back, the same batches and 8-bit stretch), paints the layered map of
the same sample (from the dataset's stored predictions, or -- for a dataset built per
composite -- from predictions of its stored backgrounds made now), and reports how the two
8-bit maps agree outside the people (where both look at the same background) and inside them,
and the speed of each mode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from fgbg.readers import open_dataset

from ..depth import DepthBatch, make_backend
from ..depth.layers import LayeredDepth, model_output, person_labels
from ..errors import FgbgError
from ..inputs import load_inputs
from ..layer_inputs import LearnedBackend
from ..manifest import read_record
from ..shard import calibration_images, depth_settings, layered_depth
from ..storage import open_store

__all__ = ["LayerComparison", "Region", "compare_layers", "format_comparison"]


@dataclass(frozen=True)
class Region:
    """Agreement of the layered and per-composite 8-bit maps over one set of pixels."""

    pixels: int
    mean_levels: float  # mean |layered - per-composite|, in 8-bit levels
    within_16: float  # share of pixels that differ by at most 16 levels
    correlation: float  # Pearson correlation of the two maps' values (nan when one is flat)


@dataclass(frozen=True)
class LayerComparison:
    samples: int
    backgrounds: int
    outside: Region  # pixels no person covers (at the depth size)
    inside: Region  # the people's pixels
    composite_rate: float  # per-composite inference, samples/s (model forward + post-processing)
    layered_rate: float  # painting layered maps, samples/s (no model)
    background_seconds: float  # the model once per background, seconds per background
    stored: bool  # the layered maps came from the dataset's own stored predictions


def _region(a: np.ndarray, b: np.ndarray) -> Region:
    if a.size == 0:
        return Region(0, float("nan"), float("nan"), float("nan"))
    x, y = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(x - y)
    flat = x.std() == 0 or y.std() == 0
    corr = float("nan") if flat else float(np.corrcoef(x, y)[0, 1])
    return Region(int(a.size), float(diff.mean()), float((diff <= 16).mean()), corr)


def _people(meta: dict[str, Any], mask: np.ndarray,
            instances: np.ndarray | None) -> tuple[list[tuple[int, int, int, int]], list[np.ndarray]]:
    """A sample's people (boxes in paint order) and their layers, as the builder hands them."""
    people = meta.get("people", [meta])
    boxes = [(p["x"], p["y"], p["w"], p["h"]) for p in people]
    if instances is None:
        return boxes, [mask]
    return boxes, [np.where(instances == k + 1, 255, 0).astype(np.uint8) for k in range(len(boxes))]


def compare_layers(url: str, options: dict[str, Any], samples: int = 64,
                   storage_options: dict[str, Any] | None = None) -> LayerComparison:
    """Per-composite against layered maps on ``samples`` samples spread over the dataset at
    ``url``, with the model the dataset was built with (``options``: its weights or model file)."""
    store = open_store(url, storage_options)
    record = read_record(store)
    cfg = record.build_config
    if cfg.runtime is None:
        raise FgbgError(f"{url}: built with --depth {cfg.depth}; compare needs a dataset built with a learned model "
                        "(--depth densedepth or onnx, with or without --depth-layers)")
    run = dict(options)
    if cfg.depth_dtype == "int8":
        run["calibration"] = calibration_images(load_inputs(store, record.inputs), cfg)
    backend = make_backend(cfg.depth, cfg.depth_shape, **depth_settings(cfg, run))
    assert backend is not None
    if backend.describe() != record.depth:
        raise FgbgError(f"{url}: the model given is not the one this dataset was built with "
                        f"({backend.describe()} vs {record.depth}); give the same --depth-weights/--depth-model")
    fields = ["image", "mask", "meta"] + (["instances"] if cfg.people is not None else [])
    ds = open_dataset(store.url, fields=fields, storage_options=storage_options)
    picks = sorted(set(np.linspace(0, len(ds) - 1, max(1, min(samples, len(ds)))).astype(int).tolist()))
    items = [ds[i] for i in picks]
    images = np.stack([s["image"] for s in items])
    masks = np.stack([s["mask"] for s in items])
    boxes = np.array([[s["meta"][k] for k in ("x", "y", "w", "h")] for s in items], np.int64)
    crowds = [_people(s["meta"], s["mask"], s.get("instances")) for s in items]
    bgs = sorted({s["meta"]["bg"]["index"] for s in items})

    backend.predict(DepthBatch(images[:1], masks[:1], boxes[:1]))  # warm-up, as a build's first batch
    t = time.perf_counter()
    composite = backend.predict(DepthBatch(images, masks, boxes))
    composite_rate = len(items) / (time.perf_counter() - t)

    model = cast(LearnedBackend, backend)
    inputs = load_inputs(store, record.inputs)
    t = time.perf_counter()
    values = model.values(np.stack([inputs.bg[b] for b in bgs]))
    background_seconds = (time.perf_counter() - t) / len(bgs)
    backend.close()
    stored = bool(cfg.depth_layers)
    if stored:
        painter = layered_depth(store, record)
    else:
        predictions: dict[int, np.ndarray] = {b: v.astype(np.float32) for b, v in zip(bgs, values, strict=True)}
        painter = LayeredDepth(cfg.depth_shape, record.depth, model_output(cfg.depth, cfg.depth_preset,
                                                                             cfg.depth_input),
                               cast(Sequence[np.ndarray], predictions), (cfg.size, cfg.size))
    t = time.perf_counter()
    layered = np.stack([painter.paint_one(s["meta"]["bg"]["index"], *crowd) for s, crowd in zip(items, crowds,
                                                                                               strict=True)])
    layered_rate = len(items) / max(time.perf_counter() - t, 1e-9)
    people = np.stack([person_labels(layers, cfg.depth_shape) >= 0 for _, layers in crowds])
    return LayerComparison(
        samples=len(items), backgrounds=len(bgs),
        outside=_region(layered[~people], composite[~people]), inside=_region(layered[people], composite[people]),
        composite_rate=composite_rate, layered_rate=layered_rate, background_seconds=background_seconds,
        stored=stored)


def format_comparison(c: LayerComparison, url: str) -> str:
    def row(name: str, r: Region) -> str:
        return (f"{name:<16} {r.pixels:>9,} px  mean |diff| {r.mean_levels:6.2f} levels  within 16 levels "
                f"{100 * r.within_16:6.2f}%  correlation {r.correlation:.3f}")

    source = "the dataset's stored predictions" if c.stored else "predictions of its stored backgrounds made now"
    return "\n".join([
        f"fgbg compare {url}: {c.samples} samples on {c.backgrounds} backgrounds, layered maps (from {source}) "
        "against per-composite inference of the same model",
        row("outside people", c.outside),
        row("inside people", c.inside),
        f"speed            per composite {c.composite_rate:,.2f} samples/s; layered: painting "
        f"{c.layered_rate:,.0f} samples/s + the model once per background ({c.background_seconds:.3f} s each)",
    ])
