"""Human-readable summary of a manifest (``fgbg info``)."""

from __future__ import annotations

from collections.abc import Sequence

from fgbg.readers.schema import InputEntry, Manifest

from ..config import BuildConfig
from ..floor_fit import describe_floor
from ..manifest import record_from_manifest
from ..record import ImportedConfig
from ..summary import human_bytes, statistics_table

__all__ = ["describe"]


def describe(m: Manifest, where: str = "manifest.json") -> str:
    """The summary ``fgbg info`` prints: counts, settings, sizes and statistics."""
    record = record_from_manifest(m, where, check_fingerprint=False)  # shown as stored: verify judges it
    c = record.config
    t = m.totals
    head = f"fgbg dataset v{m.format_version} (fgbg {m.tool.get('fgbg', '?')})"
    if isinstance(c, ImportedConfig):
        return "\n".join([
            f"{head}, imported from {c.source}",
            f"samples   {t.samples} ({len(record.left_out or ())} left out: missing counterparts)",
            *(f"shards    {t.shards} {fmt}, {human_bytes(size)}" for fmt, size in t.bytes.items()),
            "", statistics_table(m.statistics)])
    layout = {"hdf5": f" ({m.hdf5_layout} layout)"}
    lines = [
        head,
        f"samples   {t.samples} = {len(record.inputs.bg)} bg x {len(record.inputs.fg)} fg x {c.flips} flips "
        f"x {c.placements} placements",
        *(f"shards    {t.shards} {fmt}{layout.get(fmt, '')} x up to {c.shard_size} samples, {human_bytes(size)}"
          for fmt, size in t.bytes.items()),
        f"image     {c.size}x{c.size} JPEG q{c.quality}; fg box {c.fg_size[0]}x{c.fg_size[1]}"
        f"{' (aspect kept)' if c.keep_aspect else ''}, scale {c.fg_scale[0]}-{c.fg_scale[1]}",
        f"mask      {'alpha' if c.soft_mask else '0/255'} where alpha > {c.mask_threshold}",
        f"depth     {record.depth.backend}"
        + (f" {c.depth_shape[0]}x{c.depth_shape[1]}" if record.has_depth else ""),
        f"seed      {c.seed}",
        *([f"compose   {', '.join(options)}"] if (options := _options(c)) else []),
        f"index     {m.annotations.file}",
        *_floor_lines(c, record.inputs.bg),
        "",
        statistics_table(m.statistics),
    ]
    return "\n".join(lines)


_FLOORS_SHOWN = 50  # backgrounds listed one per line; the card lists them all


def _floor_lines(c: BuildConfig, bgs: Sequence[InputEntry]) -> list[str]:
    """--depth-layers --position floor: each background's fitted floor, or its fallback."""
    if c.floors is None:
        if c.depth_layers and c.position == "floor":
            return ["floors    the plane prior's room (made before floors were fitted from the predictions)"]
        return []
    found = sum(f.found for f in c.floors)
    lines = [f"floors    fitted from the predictions: {found} of {len(c.floors)} backgrounds have a usable floor; "
             f"the others fall back to the plane prior's room"]
    for i, f in enumerate(c.floors[:_FLOORS_SHOWN]):
        name = bgs[i].name if i < len(bgs) else "?"
        lines.append(f"  bg {i} {name}: {describe_floor(f)}")
    if len(c.floors) > _FLOORS_SHOWN:
        lines.append(f"  ... {len(c.floors) - _FLOORS_SHOWN} more (the card, README.md, lists every background)")
    return lines


def _options(c: BuildConfig) -> list[str]:
    """The compositing options set (none for a default build)."""
    out = []
    if c.blend:
        out.append(f"blend {c.blend}")
    if c.harmonize is not None:
        out.append(f"harmonize {c.harmonize}")
    if c.rotate is not None:
        out.append(f"rotate ±{c.rotate}°")
    if c.people is not None:
        out.append(f"people {c.people[0]}-{c.people[1]} (hidden at most {c.max_occlusion:.0%})")
    if c.position == "floor" and c.person_height is not None:
        out.append(f"on the floor, {c.person_height[0]}-{c.person_height[1]} m tall")
    if c.members == "zstd":
        out.append("grey fields as zstd .npy")
    return out
