"""``fgbg view DATASET --export DIR``: the viewer's pages as a static site for a fixed sample.

The same front end, with its data in ``data.js`` (a script, so the pages work from
``file://`` where browsers refuse ``fetch``) and every image a file at the path the pages
ask for: share the folder, or attach it to a CI run.
"""

from __future__ import annotations

import json
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..errors import FgbgError
from .data import THUMB_MODES, Filters, ViewData, evenly_spaced
from .server import STATIC_FILES, static_file

__all__ = ["export_site"]

_MARKER = b"<!-- fgbg:static-data -->"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export_site(url: str, out: str | Path, samples: int = 200, format: str | None = None,
                storage_options: dict[str, Any] | None = None, verify_report: dict[str, Any] | None = None) -> Path:
    """Write the site for ``samples`` samples evenly spaced over the dataset; returns ``out``."""
    if samples < 1:
        raise FgbgError(f"--samples must be >= 1, got {samples}")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FgbgError(f"{root}: exists and is not empty; give a new folder for the site")
    data = ViewData(url, format, storage_options)
    picks = evenly_spaced(len(data.ds), samples)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    items, details = [], {}
    for i in picks:
        detail = data.sample(i, Filters())
        items.append({k: detail[k] for k in ("index", "key", "bg", "fg", "flip", "placement")})
        details[str(i)] = {**detail, "prev": None, "next": None}
        for mode in THUMB_MODES if detail["depth"] else ("plain", "mask"):
            _write(staging / "img" / "thumb" / f"{i}-{mode}.jpg", data.thumbnail(i, mode))
        sample_dir = staging / "img" / "sample" / str(i)
        _write(sample_dir / "image.jpg", data.stored(i, "image"))
        _write(sample_dir / "mask.png", data.served(i, "mask"))
        if detail["depth"]:
            _write(sample_dir / "depth.png", data.served(i, "depth"))
            _write(sample_dir / "depth-colour.png", data.depth_colour(i))
        if detail["instances"]:
            _write(sample_dir / "instances.png", data.served(i, "instances"))
            _write(sample_dir / "instances-colour.png", data.instances_colour(i))
    for kind in ("bg", "fg"):
        for it in items:
            target = staging / "img" / "input" / kind / f"{it[kind]['index']}.png"
            if not target.exists():
                with suppress(IndexError):  # an imported dataset may not store its inputs
                    _write(target, data.input_image(kind, it[kind]["index"]))
    overview = {**data.overview(), "verify": {"state": "done" if verify_report else "idle", "report": verify_report,
                                              "error": None}}
    site = {"overview": overview, "items": items, "samples": details}
    _write(staging / "data.js", b"window.FGBG_STATIC = " + json.dumps(site).encode() + b";\n")
    for name in STATIC_FILES:
        body = static_file(name)
        if name == "index.html":
            _write(staging / name, body.replace(_MARKER, b'<script src="data.js"></script>'))
        _write(staging / "static" / name, body)
    data.ds.close()
    data.raw.close()
    if root.exists():
        root.rmdir()
    staging.rename(root)
    return root
