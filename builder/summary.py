"""How fgbg prints numbers and statistics, in one place: ``info``, the build line and the
dataset card all say sizes and statistics the same way."""

from __future__ import annotations

from collections.abc import Mapping

from fgbg.readers.schema import Statistic

__all__ = ["human_bytes", "statistics_table"]


def human_bytes(n: float) -> str:
    """Sizes the one way fgbg prints them: binary units, one decimal (``36.4 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def statistics_table(stats: Mapping[str, Statistic]) -> str:
    """One row per field: channel means and stds on the [0, 1] scale."""
    rows = [f"{'field':<16} {'mean':<28} std"]
    for name in sorted(stats):
        s = stats[name]
        mean = " ".join(f"{v:.4f}" for v in s.mean)
        std = " ".join(f"{v:.4f}" for v in s.std)
        rows.append(f"{name:<16} {mean:<28} {std}")
    return "\n".join(rows)
