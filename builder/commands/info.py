"""Human-readable summary of a manifest (``fgbg info``)."""

from __future__ import annotations

from typing import Any

from ..summary import human_bytes, statistics_table

__all__ = ["describe"]


def _layout(m: dict[str, Any], fmt: str) -> str:
    return f" ({m['hdf5_layout']} layout)" if fmt == "hdf5" else ""


def describe(m: dict[str, Any]) -> str:
    c = m["config"]
    if c.get("kind") == "imported":
        return "\n".join([
            f"fgbg dataset v{m['format_version']} (fgbg {m['tool']['fgbg']}), imported from {c['source']}",
            f"samples   {m['totals']['samples']} ({len(m.get('left_out', []))} left out: missing counterparts)",
            *(f"shards    {m['totals']['shards']} {fmt}, {human_bytes(size)}"
              for fmt, size in m["totals"]["bytes"].items()),
            "", statistics_table(m["statistics"])])
    t = m["totals"]
    n_bg, n_fg = len(m["inputs"]["bg"]), len(m["inputs"]["fg"])
    lines = [
        f"fgbg dataset v{m['format_version']} (fgbg {m['tool']['fgbg']})",
        f"samples   {t['samples']} = {n_bg} bg x {n_fg} fg x {c['flips']} flips x {c['placements']} placements",
        *(f"shards    {t['shards']} {fmt}{_layout(m, fmt)} x up to {c['shard_size']} samples, "
          f"{human_bytes(size)}" for fmt, size in t["bytes"].items()),
        f"image     {c['size']}x{c['size']} JPEG q{c['quality']}; fg box {c['fg_size'][0]}x{c['fg_size'][1]}"
        f"{' (aspect kept)' if c['keep_aspect'] else ''}, scale {c['fg_scale'][0]}-{c['fg_scale'][1]}",
        f"mask      {'alpha' if c['soft_mask'] else '0/255'} where alpha > {c['mask_threshold']}",
        f"depth     {m['depth'].get('backend')}"
        + (f" {c['depth_size'][0]}x{c['depth_size'][1]}" if m["depth"].get("backend") != "none" else ""),
        f"seed      {c['seed']}",
        "",
        statistics_table(m["statistics"]),
    ]
    return "\n".join(lines)
