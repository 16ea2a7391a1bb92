"""The ``fgbg`` command line: build, and the lifecycle commands above it.

Errors a user can fix (``FgbgError``, ``DatasetError``, a missing optional extra) print as
one ``fgbg: error: ...`` line with exit status 2; anything else is a bug and keeps its
traceback. Every option's help shows its default.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgbg.readers.dataset import DatasetError
from fgbg.readers.extras import MissingExtra

from .build import BuildResult, build
from .commands.append import append
from .commands.convert import convert
from .commands.export import export
from .commands.importer import import_seed
from .commands.info import describe
from .commands.preview import preview
from .commands.repair import repair
from .commands.verify import verify
from .config import BuildConfig, parse_range, parse_size
from .demo import write_demo_inputs
from .depth import BACKENDS
from .depth.presets import CUSTOM_OPTIONS, PRESETS, custom_spec
from .depth.runtimes import RUNTIMES, resolve_runtime
from .errors import FgbgError
from .manifest import TOOL_VERSION
from .shards import HDF5_LAYOUTS, parse_formats
from .summary import human_bytes

__all__ = ["main"]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (when it has one worth showing); epilogs keep
    their line breaks. argparse's ArgumentDefaultsHelpFormatter would also print ``None`` and
    ``False`` defaults, which say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and action.option_strings
                and not (default is None or default is False or default is argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


def _add_storage_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for s3:// and other URLs (repeatable; dotted keys nest, values parsed "
                        "as JSON when they can be), e.g. client_kwargs.endpoint_url=http://127.0.0.1:9000")


def _add_workers(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")


def _add_no_progress(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


_BUILD_EPILOG = """what is required when:
  a new dataset        --out and either --bg and --fg (RGBA foregrounds, or RGB + --fg-masks) or --demo
  resume / finish one  --out alone: the dataset's own inputs/ and recorded settings are used; giving
                       the same inputs and settings again also resumes, other ones are refused
  --depth densedepth   needs --depth-weights (the released nyu.h5 or kitti.h5; nothing is downloaded)

examples:
  fgbg build --demo --out demo_dataset
  fgbg build --bg rooms/ --fg people/ --out s3://bucket/ds --format tar,hdf5
"""


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fgbg", formatter_class=_HelpFormatter,
                                description="Build fg-on-bg depth/mask datasets straight into verified shards, "
                                            "and check, repair, extend and convert them.")
    p.add_argument("--version", action="version", version=f"fgbg {TOOL_VERSION}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=epilog, formatter_class=_HelpFormatter)

    b = command("build", "build a dataset, or resume/finish one", _BUILD_EPILOG)
    b.add_argument("--out", required=True, help="dataset folder or URL (s3://bucket/prefix)")
    src = b.add_argument_group("inputs (a new dataset: --bg and --fg, or --demo)")
    src.add_argument("--bg", help="folder of background images (jpg/png/webp/bmp/tiff, any size)")
    src.add_argument("--fg", help="folder of foreground images (RGBA, or RGB with --fg-masks)")
    src.add_argument("--fg-masks", help="folder of masks for RGB foregrounds (matched by file stem)")
    src.add_argument("--demo", action="store_true", help="use the built-in synthetic rooms and people")
    src.add_argument("--demo-bg", type=int, default=8, help="number of demo backgrounds")
    src.add_argument("--demo-fg", type=int, default=8, help="number of demo foregrounds")
    src.add_argument("--skip-invalid", action="store_true", help="skip non-image files instead of failing")
    d = BuildConfig()
    g = b.add_argument_group("dataset")
    g.add_argument("--placements", type=int, default=d.placements, help="random placements per bg x fg x flip")
    g.add_argument("--flips", type=int, default=d.flips, choices=(1, 2), help="2 = also the mirrored fg")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the plan: same seed, same bytes")
    g.add_argument("--size", type=int, default=d.size, help="composite side in pixels")
    g.add_argument("--fg-size", default="100x70", help="foreground box WIDTHxHEIGHT")
    g.add_argument("--keep-aspect", action="store_true", help="fit fg inside --fg-size keeping its aspect")
    g.add_argument("--fg-scale", default="1", help="random per-sample scale range, e.g. 0.7-1.3")
    g.add_argument("--quality", type=int, default=d.quality, help="JPEG quality of composites")
    g.add_argument("--mask-threshold", type=int, default=d.mask_threshold, help="mask = 255 where fg alpha > this")
    g.add_argument("--soft-mask", action="store_true", help="store alpha in the mask instead of 0/255")
    g.add_argument("--blend", default="alpha", help="how the person's edge meets the room: alpha (straight alpha), "
                                                    "hard (a hard cut), feather:R (alpha softened R px inward), "
                                                    "poisson (OpenCV seamlessClone); the mask follows the alpha")
    g.add_argument("--rotate", type=int, metavar="DEG", help="turn each person by a whole angle in [-DEG, DEG] "
                                                              "degrees, drawn per sample (1..180)")
    g.add_argument("--people", metavar="MIN-MAX", help="people per composite, e.g. 1-3: painted farther first, "
                   "with an instance-id map (KEY.instances.png) and one annotation entry each (format 2)")
    g.add_argument("--max-occlusion", type=float, metavar="F", help="with --people: the largest share of a "
                   "person that nearer people may hide; a person hidden more is drawn again (default 0.5)")
    g.add_argument("--position", choices=("uniform", "floor"), default="uniform",
                   help="uniform: anywhere in the frame; floor: feet on the room's floor, sized by its distance "
                        "(the plane prior's room geometry; with --depth-layers each background's own floor, fitted "
                        "from its prediction, where it has a usable one)")
    g.add_argument("--person-height", metavar="LOW-HIGH", help="with --position floor: person height range in "
                   "metres (default 1.5-1.9)")
    g.add_argument("--harmonize", nargs="?", type=float, const=0.5, default=None, metavar="S",
                   help="move the person's colours toward the room's (Reinhard in Lab), strength S in (0, 1] "
                        "(default 0.5)")
    g.add_argument("--depth", default=d.depth, choices=BACKENDS,
                   help="depth backend: plane (a geometric prior, not a model), densedepth, onnx (your model), none")
    g.add_argument("--depth-size", help="stored depth map WIDTHxHEIGHT (default: half the composite size)")
    g.add_argument("--depth-weights", help="densedepth: path to the released nyu.h5 / kitti.h5 (required)")
    g.add_argument("--depth-model", help="onnx: path to the ONNX depth model (required; nothing is downloaded)")
    g.add_argument("--depth-preset", choices=(*sorted(PRESETS), "custom"),
                   help="onnx: the model's conventions (input size, normalisation, output kind); custom: "
                        "say them with --depth-layout/--depth-norm/--depth-output/--depth-resize and --depth-input")
    _add_custom_preset(g)
    g.add_argument("--depth-input", help="densedepth: model input WIDTHxHEIGHT, multiples of 32 "
                                         "(default: --size rounded to 32; 640x480 for sharper maps); "
                                         "onnx: overrides the preset's")
    g.add_argument("--depth-runtime", default="auto", choices=("auto", *RUNTIMES),
                   help="densedepth/onnx: what runs the model (auto: OpenVINO for densedepth on a CPU-only "
                        "machine when installed, else TensorFlow; onnxruntime for onnx)")
    g.add_argument("--depth-batch", type=int, default=32, help="densedepth/onnx: images per model call")
    g.add_argument("--depth-device", default="auto", choices=("auto", "cpu", "gpu"),
                   help="densedepth/onnx: where the model runs (auto: a GPU when the runtime sees one)")
    g.add_argument("--depth-dtype", default="float32", choices=("float32", "float16", "bfloat16", "int8"),
                   help="densedepth/onnx: precision; reduced ones change depth maps (fgbg depth-check measures "
                        "how much with your weights); int8 needs --depth-runtime openvino")
    g.add_argument("--depth-layers", action="store_true",
                   help="densedepth/onnx: run the model once per background instead of per composite; each map is "
                        "the background's prediction with every person a flat cut-out at the depth of its feet "
                        "(minutes instead of hours; see docs/depth-layers.md for what the maps then mean)")
    o = b.add_argument_group("output")
    o.add_argument("--shard-size", type=int, default=d.shard_size, help="samples per shard")
    o.add_argument("--format", default="tar", help="tar, tarzst (.tar.zst: one zstd frame per sample, ~22%% "
                                                   "smaller), hdf5, or several: tar,hdf5 (one pass)")
    o.add_argument("--hdf5-layout", default="encoded", choices=HDF5_LAYOUTS,
                   help="HDF5: encoded JPEG/PNG bytes (small) or raw Zstd pixels (no decoding)")
    o.add_argument("--members", default="png", choices=("png", "zstd"),
                   help="masks, depth and instance maps as PNG (every tool reads them) or as zstd-compressed .npy "
                        "(0.6x the bytes, ~5x faster to decode; fgbg's readers, or numpy + zstandard)")
    o.add_argument("--index", default="csv", choices=("csv", "parquet"),
                   help="annotations index: csv (annotations.csv, ~42 bytes a sample) or parquet "
                        "(annotations.parquet, 5-9 bytes a sample, read per shard; pip install \"fgbg[parquet]\")")
    _add_workers(o)
    o.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local process pool, or Ray tasks/actors (pip install \"fgbg[ray]\")")
    o.add_argument("--ray-address", help="existing Ray cluster, e.g. ray://head:10001 or auto (default: a local Ray)")
    _add_no_progress(o)
    _add_storage_option(o)

    c = command("convert", "write a dataset's samples in another shard format (no re-compositing)")
    c.add_argument("dataset", help="source dataset folder or URL")
    c.add_argument("--to", required=True, choices=("tar", "tarzst", "hdf5"), help="target format")
    c.add_argument("--out", required=True, help="new dataset folder or URL")
    c.add_argument("--hdf5-layout", default="encoded", choices=HDF5_LAYOUTS,
                   help="HDF5 target: encoded bytes (copied as they are) or raw pixels (decoded)")
    c.add_argument("--from", dest="source_format", choices=("tar", "tarzst", "hdf5"),
                   help="which copy to read when the source holds both (default: tar)")
    _add_workers(c)
    _add_no_progress(c)
    _add_storage_option(c)

    v = command("verify", "check sizes, hashes, receipts, layout, per-sample digests, counts and annotations "
                          "against the plan; exit 0 only when clean")
    v.add_argument("dataset", help="dataset folder or URL")
    v.add_argument("--decode", action="store_true",
                   help="also decode every sample (by default only samples without a digest to prove their "
                        "bytes by are decoded)")
    v.add_argument("--deep", action="store_true", help="also compare every mask with the one its annotation implies")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_workers(v)
    _add_storage_option(v)

    rp = command("repair", "rebuild missing or corrupt shards (byte-identical) and rewrite the manifest")
    rp.add_argument("dataset", help="dataset folder or URL")
    _add_workers(rp)
    _add_model_paths(rp)
    _add_no_progress(rp)
    _add_storage_option(rp)

    ap = command("append", "add the combinations of new backgrounds and/or foregrounds in new shards")
    ap.add_argument("dataset", help="dataset folder or URL")
    ap.add_argument("--bg", help="folder of new backgrounds (at least one of --bg/--fg)")
    ap.add_argument("--fg", help="folder of new foregrounds (at least one of --bg/--fg)")
    ap.add_argument("--fg-masks", help="masks for RGB foregrounds (matched by stem)")
    _add_workers(ap)
    _add_model_paths(ap)
    ap.add_argument("--skip-invalid", action="store_true", help="skip non-image files instead of failing")
    _add_no_progress(ap)
    _add_storage_option(ap)

    im = command("import", "turn a seed-layout dataset (folders or per-background zips) into shards")
    im.add_argument("source", help="folder with fg_bg/, fg_bg_masks/, depth_maps/ (or Dataset/, Compressed_Dataset/)")
    im.add_argument("--out", required=True, help="new dataset folder or URL")
    im.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    im.add_argument("--mask-threshold", type=int, default=127,
                    help="masks saved as lossy JPEG become 255 where value > this")
    _add_storage_option(im)

    ex = command("export", "write the dataset as loose folders in the seeds' layout, or as COCO annotations")
    ex.add_argument("dataset", help="dataset folder or URL")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", help="folder to write (fg_bg/, fg_bg_masks/, depth_maps/, inp_*)")
    what.add_argument("--coco", metavar="DIR", help="folder to write images/KEY.jpg and annotations.json (COCO "
                                                   "instances: RLE masks, boxes; pip install \"fgbg[coco]\")")
    _add_storage_option(ex)

    pv = command("preview", "a collage PNG: backgrounds, foregrounds, masks, composites, depth")
    pv.add_argument("dataset", help="dataset folder or URL")
    pv.add_argument("--out", required=True, help="PNG file to write")
    pv.add_argument("--columns", type=int, default=8, help="images per row")
    _add_storage_option(pv)

    vw = command("view", "browse a dataset in the web browser: grid, sample pages, overview (read-only)")
    vw.add_argument("dataset", help="dataset folder or URL")
    vw.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    vw.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    vw.add_argument("--format", choices=("tar", "tarzst", "hdf5"),
                    help="which copy to read when the dataset has several")
    vw.add_argument("--export", metavar="DIR", help="write a static site for a fixed sample instead of serving")
    vw.add_argument("--samples", type=int, default=200, help="--export: samples in the site (evenly spaced)")
    _add_storage_option(vw)

    i = command("info", "what a dataset holds: counts, shards, config, statistics")
    i.add_argument("dataset", help="dataset folder or URL")
    i.add_argument("--json", action="store_true", help="print the manifest")
    _add_storage_option(i)

    dc = command("depth-check", "compare a depth runtime/precision with the float32 reference on real composites: "
                               "agreement and speed, with your weights")
    dsrc = dc.add_argument_group("composites (default: the built-in demo rooms and people)")
    dsrc.add_argument("--bg", help="folder of background images")
    dsrc.add_argument("--fg", help="folder of foreground images (RGBA)")
    dsrc.add_argument("--images", type=int, default=16, help="composites to compare")
    dsrc.add_argument("--size", type=int, default=d.size, help="composite side in pixels")
    dm = dc.add_argument_group("model")
    dm.add_argument("--depth", default="densedepth", choices=("densedepth", "onnx"), help="which model backend")
    _add_model_paths(dm)
    dm.add_argument("--depth-preset", choices=(*sorted(PRESETS), "custom"), help="onnx: the model's conventions")
    _add_custom_preset(dm)
    dm.add_argument("--depth-input", help="model input WIDTHxHEIGHT (densedepth: multiples of 32)")
    dm.add_argument("--depth-runtime", default="auto", choices=("auto", *RUNTIMES), help="the candidate runtime")
    dm.add_argument("--depth-dtype", default="float32", choices=("float32", "float16", "bfloat16", "int8"),
                    help="the candidate precision")
    dm.add_argument("--depth-batch", type=int, default=8, help="images per model call")
    dm.add_argument("--depth-device", default="auto", choices=("auto", "cpu", "gpu"), help="where the models run")

    cl = command("compare", "layered depth (--depth-layers) against per-composite inference of the same model, "
                            "on a dataset's own samples: agreement outside and inside the people, and speed")
    cl.add_argument("dataset", help="dataset folder or URL, built with --depth densedepth or onnx")
    _add_model_paths(cl)
    cl.add_argument("--samples", type=int, default=64, help="samples compared, spread over the dataset")
    cl.add_argument("--depth-batch", type=int, default=8, help="images per model call")
    cl.add_argument("--depth-device", default="auto", choices=("auto", "cpu", "gpu"), help="where the model runs")
    _add_storage_option(cl)

    m = command("demo-inputs", "write the synthetic demo inputs to a folder")
    m.add_argument("--out", required=True, help="folder to write bg/ and fg/ into")
    m.add_argument("--bg", type=int, default=8, help="number of backgrounds")
    m.add_argument("--fg", type=int, default=8, help="number of foregrounds")
    m.add_argument("--seed", type=int, default=0, help="seed of the generator")
    return p


def parse_storage_options(items: Sequence[str]) -> dict[str, Any]:
    """``["client_kwargs.endpoint_url=http://h:9000", "anon=false"]`` -> nested fsspec options.

    Values are JSON when they parse as JSON (numbers, booleans), else strings.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FgbgError(f"--storage-option: expected KEY=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = options
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return options


def _add_custom_preset(g: argparse._ArgumentGroup) -> None:
    for name, what in (("layout", "input tensor layout"), ("norm", "normalisation of [0,1] RGB (imagenet: "
                       "ImageNet mean/std; unit: none; symmetric: to [-1,1])"), ("output", "what the first output "
                       "is: inverse (relative inverse depth), metric (metres), densedepth (its raw output)"),
                       ("resize", "how composites are resized to the input (default cubic)")):
        g.add_argument(f"--depth-{name}", choices=CUSTOM_OPTIONS[name], help=f"onnx, --depth-preset custom: {what}")


def _preset(a: argparse.Namespace) -> str | None:
    """The preset the config records: a name, or the canonical custom spec built from the flags."""
    custom = {k: getattr(a, f"depth_{k}") for k in CUSTOM_OPTIONS}
    given = [f"--depth-{k}" for k, v in custom.items() if v is not None]
    if a.depth != "onnx" or a.depth_preset is None:
        if given:
            raise FgbgError(f"{', '.join(given)} go with --depth onnx --depth-preset custom")
        return None
    if a.depth_preset != "custom":
        if given:
            raise FgbgError(f"{', '.join(given)} describe a custom model; --depth-preset {a.depth_preset} "
                            "already says its conventions")
        return str(a.depth_preset)
    missing = [f"--depth-{k}" for k in ("layout", "norm", "output") if custom[k] is None]
    if missing:
        raise FgbgError(f"--depth-preset custom needs {', '.join(missing)}")
    return custom_spec(custom["layout"], custom["norm"], custom["output"], custom["resize"] or "cubic")


def _storage_options(a: argparse.Namespace) -> dict[str, Any]:
    return parse_storage_options(a.storage_option or [])


def _config(a: argparse.Namespace) -> BuildConfig:
    return BuildConfig(
        size=a.size, fg_size=parse_size(a.fg_size, "--fg-size"), keep_aspect=a.keep_aspect,
        fg_scale=parse_range(a.fg_scale, "--fg-scale"), placements=a.placements, flips=a.flips,
        seed=a.seed, quality=a.quality, shard_size=a.shard_size, depth=a.depth,
        depth_size=parse_size(a.depth_size, "--depth-size") if a.depth_size else None,
        depth_input=parse_size(a.depth_input, "--depth-input") if a.depth_input else None, depth_dtype=a.depth_dtype,
        mask_threshold=a.mask_threshold, soft_mask=a.soft_mask,
        depth_runtime=resolve_runtime(a.depth, a.depth_runtime, a.depth_device, a.depth_dtype),
        depth_preset=_preset(a), blend=None if a.blend == "alpha" else a.blend, harmonize=a.harmonize,
        rotate=a.rotate, people=_people(a.people),
        max_occlusion=a.max_occlusion if a.max_occlusion is not None or a.people is None else 0.5,
        position=None if a.position == "uniform" else a.position,
        person_height=(parse_range(a.person_height, "--person-height") if a.person_height
                       else (1.5, 1.9) if a.position == "floor" else None),
        members=None if a.members == "png" else a.members, depth_layers=True if a.depth_layers else None,
    )


def _people(text: str | None) -> tuple[int, int] | None:
    """``--people 1-3`` (or ``2``) as (min, max)."""
    if text is None:
        return None
    parts = text.split("-")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise FgbgError(f"--people: expected MIN-MAX such as 1-3, got {text!r}")
    lo, hi = int(parts[0]), int(parts[-1])
    return lo, hi


def _cmd_build(a: argparse.Namespace) -> int:
    cfg = _config(a)
    progress = False if a.no_progress else None
    depth_options = {"batch": a.depth_batch, "device": a.depth_device}
    if a.depth_weights:
        depth_options["weights"] = a.depth_weights
    if a.depth_model:
        depth_options["model"] = a.depth_model
    opts = {"workers": a.workers, "progress": progress, "formats": parse_formats(a.format),
            "hdf5_layout": a.hdf5_layout, "depth_options": depth_options, "storage_options": _storage_options(a),
            "executor": a.executor, "ray_address": a.ray_address, "index": a.index}
    if (a.bg is None) != (a.fg is None) and not a.demo:
        raise FgbgError("--bg and --fg go together (a new dataset needs both; to resume one, give --out alone)")
    if a.demo:
        if a.bg or a.fg:
            raise FgbgError("--demo builds from the built-in inputs; drop --bg/--fg")
        with tempfile.TemporaryDirectory(prefix="fgbg-demo-") as tmp:
            bg, fg = write_demo_inputs(Path(tmp), a.demo_bg, a.demo_fg)
            r = build(a.out, cfg, bg, fg, **opts)
    elif a.bg is None and a.fg is None:
        r = build(a.out, None, **opts)  # resume from inputs/
    else:
        r = build(a.out, cfg, a.bg, a.fg, a.fg_masks, skip_invalid=a.skip_invalid, **opts)
    _summary(r)
    return 0


def _summary(r: BuildResult) -> None:
    size = human_bytes(sum(r.manifest.totals.bytes.values()))
    rate = f", {r.built_samples / r.seconds:.0f} samples/s" if r.built_samples and r.seconds > 0 else ""
    shards = f"{r.shards} shard{'' if r.shards == 1 else 's'}"
    print(f"fgbg: {r.samples} samples in {shards} ({r.built} built, {r.reused} already done), "
          f"{size}, {r.seconds:.1f} s{rate} -> {r.url}")


def _cmd_convert(a: argparse.Namespace) -> int:
    r = convert(a.dataset, a.out, a.to, hdf5_layout=a.hdf5_layout, source_format=a.source_format,
                workers=a.workers, progress=False if a.no_progress else None, storage_options=_storage_options(a))
    _summary(r)
    return 0


def _cmd_depth_check(a: argparse.Namespace) -> int:
    from .commands.depth_check import depth_check, format_report

    if (a.bg is None) != (a.fg is None):
        raise FgbgError("--bg and --fg go together (or neither: the demo inputs)")
    runtime = resolve_runtime(a.depth, a.depth_runtime, a.depth_device, a.depth_dtype)
    cfg = BuildConfig(size=a.size, fg_size=(a.size * 100 // 224, a.size * 70 // 224), placements=2, depth=a.depth,
                      depth_input=parse_size(a.depth_input, "--depth-input") if a.depth_input else None,
                      depth_dtype=a.depth_dtype, depth_runtime=runtime,
                      depth_preset=_preset(a))
    options = {**(_model_paths(a) or {}), "batch": a.depth_batch, "device": a.depth_device}
    print(format_report(depth_check(cfg, options, Path(a.bg) if a.bg else None, Path(a.fg) if a.fg else None,
                                    a.images)))
    return 0


def _add_model_paths(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--depth-weights", help="densedepth: the weights (the ones a dataset was built with)")
    p.add_argument("--depth-model", help="onnx: the model file (the one a dataset was built with)")


def _model_paths(a: argparse.Namespace) -> dict[str, Any] | None:
    """The model files given on the command line (their hashes must match what a dataset recorded)."""
    paths = {k: v for k, v in (("weights", a.depth_weights), ("model", a.depth_model)) if v}
    return paths or None


def _cmd_compare(a: argparse.Namespace) -> int:
    from .commands.compare_layers import compare_layers, format_comparison

    if a.samples < 1:
        raise FgbgError(f"--samples must be >= 1, got {a.samples}")
    options = {**(_model_paths(a) or {}), "batch": a.depth_batch, "device": a.depth_device}
    print(format_comparison(compare_layers(a.dataset, options, a.samples, _storage_options(a)), a.dataset))
    return 0


def _cmd_verify(a: argparse.Namespace) -> int:
    report = verify(a.dataset, deep=a.deep, storage_options=_storage_options(a), workers=a.workers, decode=a.decode)
    print(json.dumps(report.to_json(), indent=1) if a.json else report.text())
    return 0 if report.ok else 1


def _cmd_repair(a: argparse.Namespace) -> int:
    depth_options = _model_paths(a)
    before, result, after = repair(a.dataset, workers=a.workers, storage_options=_storage_options(a),
                                   depth_options=depth_options, progress=False if a.no_progress else None)
    for p in before.problems:
        print(f"found: {p.where}{f' sample {p.sample}' if p.sample else ''}: {p.what}")
    print(f"fgbg repair: rebuilt {result.built} of {result.shards} shards; "
          f"{'dataset verifies clean' if after.ok else 'still wrong:'}")
    if not after.ok:
        print(after.text())
    return 0 if after.ok else 1


def _cmd_append(a: argparse.Namespace) -> int:
    r = append(a.dataset, a.bg, a.fg, fg_mask_dir=a.fg_masks, workers=a.workers,
               progress=False if a.no_progress else None, storage_options=_storage_options(a),
               depth_options=_model_paths(a), skip_invalid=a.skip_invalid)
    _summary(r)
    return 0


def _cmd_import(a: argparse.Namespace) -> int:
    r, left_out = import_seed(a.source, a.out, shard_size=a.shard_size, mask_threshold=a.mask_threshold,
                              storage_options=_storage_options(a))
    for line in left_out:
        print(f"left out: {line}")
    _summary(r)
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    if a.coco:
        from .commands.coco import export_coco

        n = export_coco(a.dataset, a.coco, storage_options=_storage_options(a))
        print(f"fgbg export: {n} images with COCO annotations written to {a.coco}")
        return 0
    n = export(a.dataset, a.out, storage_options=_storage_options(a))
    print(f"fgbg export: {n} samples written to {a.out}")
    return 0


def _cmd_view(a: argparse.Namespace) -> int:
    from .view import export_site, serve

    if a.export:
        site = export_site(a.dataset, a.export, a.samples, a.format, _storage_options(a))
        print(f"fgbg view: {site}/index.html")
        return 0
    if not 0 <= a.port <= 65535:
        raise FgbgError(f"--port must be 0..65535, got {a.port}")

    def ready(server: Any) -> None:
        print(f"fgbg view: {server.url}  (Ctrl-C stops it)", flush=True)

    try:
        serve(a.dataset, a.host, a.port, a.format, _storage_options(a), ready)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise FgbgError(f"cannot serve on {a.host}:{a.port} ({e.strerror or e})") from None
    return 0


def _cmd_preview(a: argparse.Namespace) -> int:
    path = preview(a.dataset, a.out, a.columns, storage_options=_storage_options(a))
    print(f"fgbg preview: {path}")
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    from .manifest import MANIFEST, manifest_bytes, read_manifest
    from .storage import open_store

    store = open_store(a.dataset, _storage_options(a))
    manifest = read_manifest(store)  # checked: --json prints only what passed the schema
    if a.json:
        sys.stdout.write(manifest_bytes(manifest).decode("utf-8"))
    else:
        print(describe(manifest, f"{store.url}/{MANIFEST}"))
    return 0


def _cmd_demo_inputs(a: argparse.Namespace) -> int:
    bg, fg = write_demo_inputs(Path(a.out), a.bg, a.fg, a.seed)
    print(f"fgbg: wrote {a.bg} backgrounds to {bg} and {a.fg} foregrounds to {fg}")
    return 0


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C: ``with`` blocks unwind (the lock is
    released, worker processes are stopped), so a terminated build resumes cleanly."""


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM raise :class:`Terminated`; returns the previous handler (None off the
    main thread, where Python cannot set handlers)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    return signal.signal(signal.SIGTERM, on_term)


_OS_HINTS = {errno.ENOSPC: "the disk is full; free space, then rerun the same command to resume",
             errno.EDQUOT: "the disk quota is exceeded; free space, then rerun the same command to resume",
             errno.EROFS: "the file system is read-only", errno.EACCES: "no permission",
             errno.EPERM: "not permitted (immutable or protected file?)",
             errno.ENAMETOOLONG: "the name is longer than the file system allows"}


def os_error_text(e: OSError) -> str:
    """One line for an operating-system error: the file it concerns, what went wrong, and what
    to do about it where that is known."""
    where = f"{e.filename}: " if e.filename else ""
    hint = _OS_HINTS.get(e.errno or 0)
    what = e.strerror or str(e)
    return f"{where}{what}" + (f" ({hint})" if hint and hint.lower() != what.lower() else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    handlers = {"build": _cmd_build, "convert": _cmd_convert, "info": _cmd_info, "demo-inputs": _cmd_demo_inputs,
                "append": _cmd_append, "depth-check": _cmd_depth_check, "verify": _cmd_verify, "repair": _cmd_repair,
                "export": _cmd_export, "preview": _cmd_preview, "import": _cmd_import, "view": _cmd_view,
                "compare": _cmd_compare}
    handler = handlers[args.command]
    previous = _terminate_as_interrupt()
    try:
        status = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return status
    except (FgbgError, DatasetError, MissingExtra) as e:
        print(f"fgbg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fgbg: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Terminated:
        print("fgbg: terminated (SIGTERM); rerun the same command to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # The reader went away (``fgbg info DATASET | head -1``): nothing left to say to it. Point
        # stdout at /dev/null so Python's final flush does not fail again, and exit as a program
        # killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:  # disk full, read-only, permissions, names too long: the user's to fix
        print(f"fgbg: error: {os_error_text(e)}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

if __name__ == "__main__":
    sys.exit(main())
