"""``fgbg import``: turn a dataset laid out the seeds' way into shards.

Accepted layouts under SRC (SRC itself, or ``SRC/Dataset``, or ``SRC/Compressed_Dataset``):

* folders: ``{fg_bg,fg_bg_masks,depth_maps}/<bg>/<name>.jpg`` with the three trees sharing
  names, ``<name>`` = ``<bg>__<fg>_<k>`` or ``<bg>__flip_<fg>_<k>`` (k = 1..placements);
* zips: ``{fg_bg,fg_bg_masks,depth_maps}/<bg>.zip`` with flat member names;
* optionally ``inp_bg/``, ``inp_fg/``, ``inp_fg_masks/`` (stored under ``inputs/``).

Composites keep their JPEG bytes. Masks were often saved as lossy JPEG, so they are
decoded and re-thresholded at ``mask_threshold`` (default 127) to 0/255 and stored as PNG;
the placement box is recovered as the mask's bounding box. Depth maps are decoded to 8-bit
gray and stored as PNG. A composite without its mask or depth map (or the reverse) is
reported by name and left out, never silently. Imported shards are committed with receipts
and a manifest like built ones; a rerun resumes. They cannot be rebuilt from a plan
(``repair`` refuses them): re-import instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fgbg.readers.decode import DecodeError, check_pixels
from fgbg.readers.schema import DepthSource, InputEntry

from ..build import BuildResult, check_output
from ..card import write_card
from ..encode import encode_jpeg_bgr, encode_png, encode_png_color
from ..errors import FgbgError, InputError
from ..manifest import (
    ANNOTATION_COLUMNS,
    ANNOTATIONS,
    BUILD_RECORD,
    MANIFEST,
    TOOL_VERSION,
    annotation_line,
    make_manifest,
    manifest_bytes,
    read_record,
)
from ..receipts import Receipt, check_shard
from ..record import BuildRecord, ImportedConfig, Inputs
from ..shard import commit_shard
from ..shards import EncodedSample, ShardMeta, shard_name
from ..stats import PixelSums
from ..storage import open_store

__all__ = ["import_seed", "parse_name"]

TREES = ("fg_bg", "fg_bg_masks", "depth_maps")
_NAME = re.compile(r"^(?P<bg>.+?)__(?P<flip>flip_)?(?P<fg>.+)_(?P<k>\d+)$")


def parse_name(stem: str) -> tuple[str, str, int, int]:
    """``room__flip_person_3`` -> ("room", "person", 1, 2)  (bg, fg, flip, placement = k - 1)."""
    m = _NAME.match(stem)
    if m is None:
        raise InputError(f"{stem}: not a seed sample name (<bg>__[flip_]<fg>_<k>)")
    return m["bg"], m["fg"], int(m["flip"] is not None), int(m["k"]) - 1


@dataclass(frozen=True)
class _Source:
    """Where the members of one tree live: a folder per bg or a zip per bg. Archives read
    from stay open until :meth:`close` (opening a zip parses its whole directory: once per
    member read would be quadratic in the members of an archive)."""

    root: Path
    zipped: bool
    _open: dict[str, zipfile.ZipFile] = field(default_factory=dict, compare=False, repr=False)

    def listing(self, tree: str) -> dict[tuple[str, str], str]:
        """(bg, stem) -> location, for every image of ``tree``."""
        out: dict[tuple[str, str], str] = {}
        base = self.root / tree
        if not base.is_dir():
            return out
        for entry in sorted(base.iterdir()):
            if self.zipped and entry.suffix == ".zip":
                with zipfile.ZipFile(entry) as z:
                    for member in z.namelist():
                        if not member.endswith("/"):
                            stem = Path(member).stem
                            out[(entry.stem, stem)] = f"{entry}::{member}"
            elif entry.is_dir():
                for f in entry.iterdir():
                    if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                        out[(entry.name, f.stem)] = str(f)
        return out

    def read(self, location: str) -> bytes:
        if "::" in location:
            archive, member = location.split("::", 1)
            z = self._open.get(archive)
            if z is None:
                z = self._open[archive] = zipfile.ZipFile(archive)
            return z.read(member)
        return Path(location).read_bytes()

    def close(self) -> None:
        for z in self._open.values():
            z.close()
        self._open.clear()


def _find(src: Path) -> _Source:
    for root in (src, src / "Dataset", src / "Compressed_Dataset"):
        base = root / "fg_bg"
        if base.is_dir():
            return _Source(root, zipped=any(p.suffix == ".zip" for p in base.iterdir()))
    raise InputError(f"{src}: no fg_bg/ tree (looked in it, Dataset/ and Compressed_Dataset/)")


def _bounded(data: bytes, where: str) -> None:
    """The readers' pixel bound on every image of a seed folder, checked on its header."""
    try:
        check_pixels(data)
    except DecodeError as e:
        if data[:2] == b"\xff\xd8" or data[:8] == b"\x89PNG\r\n\x1a\n":  # other formats: OpenCV's own limits
            raise InputError(f"{where}: {e}") from None


def _member_gray(source: _Source, entry: str) -> np.ndarray:
    """A seed mask or depth map, decoded to 8-bit gray; errors name its file."""
    return _gray(source.read(entry), str(entry))


def _gray(data: bytes, where: str) -> np.ndarray:
    _bounded(data, where)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise InputError(f"{where}: not a readable image")
    return arr


def import_seed(src: str | Path, out: str | Path, *, shard_size: int = 1000, mask_threshold: int = 127,
                quality: int = 90, storage_options: dict[str, Any] | None = None) -> tuple[BuildResult, list[str]]:
    """Import the seed-layout dataset at ``src`` into a new dataset ``out``.

    Returns the build result and the report of samples left out (missing counterparts).
    """
    source = _find(Path(src))
    try:
        return _import(source, src, out, shard_size, mask_threshold, quality, storage_options)
    finally:
        source.close()


def _import(source: _Source, src: str | Path, out: str | Path, shard_size: int, mask_threshold: int, quality: int,
            storage_options: dict[str, Any] | None) -> tuple[BuildResult, list[str]]:
    t0 = time.monotonic()
    lists = {tree: source.listing(tree) for tree in TREES}
    keys = sorted(set().union(*lists.values()))
    complete = [k for k in keys if k in lists["fg_bg"] and k in lists["fg_bg_masks"]]
    has_depth = bool(lists["depth_maps"])
    if has_depth:
        complete = [k for k in complete if k in lists["depth_maps"]]
    done_keys = set(complete)
    left_out = []
    for bg, stem in keys:
        if (bg, stem) not in done_keys:
            missing = [t for t in TREES if (bg, stem) not in lists[t] and (t != "depth_maps" or has_depth)]
            left_out.append(f"{bg}/{stem}: missing {', '.join(missing)}")
    if not complete:
        raise InputError(f"{src}: no complete sample (composite + mask{' + depth' if has_depth else ''})")
    parsed = []
    for bg, stem in complete:
        b, f, flip, k = parse_name(stem)
        if b != bg:
            raise InputError(f"{src}: {bg}/{stem} is filed under {bg!r} but names background {b!r}")
        parsed.append((bg, f, flip, k, stem))
    bg_names = sorted({p[0] for p in parsed})
    fg_names = sorted({p[1] for p in parsed})
    first = _member_gray(source, lists["fg_bg"][(parsed[0][0], parsed[0][4])])
    size = int(first.shape[0])
    store = open_store(out, storage_options)
    check_output(store)
    store.create()
    inputs: dict[str, list[InputEntry]] = {"bg": [], "fg": []}
    files: dict[str, bytes] = {}
    for kind, names, folder in (("bg", bg_names, "inp_bg"), ("fg", fg_names, "inp_fg")):
        given = {p.stem: p for p in (source.root / folder).iterdir()} if (source.root / folder).is_dir() else {}
        for i, name in enumerate(names):
            rec = InputEntry(index=i, name=name)
            if name in given:
                data = given[name].read_bytes()
                _bounded(data, str(given[name]))
                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if img is not None:
                    img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.ndim == 3 and img.shape[2] == 4
                                       else cv2.COLOR_BGR2RGB) if img.ndim == 3 else np.dstack([img] * 3)
                    png = encode_png_color(img)
                    rel = f"inputs/{kind}/{i:04d}.png"
                    rec = InputEntry(index=i, name=name, sha256=hashlib.sha256(data).hexdigest(), file=rel,
                                     file_sha256=hashlib.sha256(png).hexdigest())
                    files[rel] = png
            inputs[kind].append(rec)
    placements = max(p[3] for p in parsed) + 1
    depth_size = None
    if has_depth:
        d0 = _member_gray(source, lists["depth_maps"][(parsed[0][0], parsed[0][4])])
        depth_size = (int(d0.shape[1]), int(d0.shape[0]))
    config = ImportedConfig(kind="imported", size=size, placements=placements, flips=1 + max(p[2] for p in parsed),
                            shard_size=shard_size, quality=quality, mask_threshold=mask_threshold, soft_mask=False,
                            depth="imported" if has_depth else "none", depth_size=depth_size, source=str(src),
                            samples=len(parsed))
    record = BuildRecord(config=config, inputs=Inputs(tuple(inputs["bg"]), tuple(inputs["fg"])),
                         depth=DepthSource(backend="imported" if has_depth else "none"), formats=("tar",),
                         hdf5_layout="encoded", key_width=max(8, len(str(len(parsed) - 1))),
                         tool={"fgbg": TOOL_VERSION}, left_out=tuple(left_out))
    bg_index = {n: i for i, n in enumerate(bg_names)}
    fg_index = {n: i for i, n in enumerate(fg_names)}
    rows: list[dict[str, Any]] = []
    receipts: list[Receipt] = []
    built = 0
    with store.lock():
        existing = read_record(store) if store.exists(BUILD_RECORD) else None
        if existing is not None and existing.fingerprint != record.fingerprint:
            raise FgbgError(f"{out}: already holds another dataset")
        store.remove_stale_temps()
        for rel, data in files.items():
            store.write_atomic(rel, data)
        store.write_atomic(BUILD_RECORD, record.to_bytes())
        width = record.key_width
        for shard, start in enumerate(range(0, len(parsed), shard_size)):
            chunk = parsed[start : start + shard_size]
            rel = shard_name(shard, "tar")
            done = check_shard(store, rel, record.fingerprint)  # a rerun: only the index rows are redone
            samples = []
            stats = {"image": PixelSums(3), "mask": PixelSums(1)} | ({"depth": PixelSums(1)} if has_depth else {})
            for j, (bg, fg, flip, k, stem) in enumerate(chunk):
                mask = np.where(_member_gray(source, lists["fg_bg_masks"][(bg, stem)]) > mask_threshold,
                                255, 0).astype(np.uint8)
                ys, xs = np.nonzero(mask)
                box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)) \
                    if len(xs) else (0, 0, 0, 0)
                meta = {"index": start + j, "bg": {"index": bg_index[bg], "name": bg},
                        "fg": {"index": fg_index[fg], "name": fg}, "flip": flip, "placement": k,
                        "x": box[0], "y": box[1], "w": box[2], "h": box[3], "scale": 1.0, "source": stem}
                rows.append(meta)
                if done is not None:
                    continue
                jpg = source.read(lists["fg_bg"][(bg, stem)])
                _bounded(jpg, str(lists["fg_bg"][(bg, stem)]))
                image = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise InputError(f"{lists['fg_bg'][(bg, stem)]}: not a readable image")
                if not jpg.startswith(b"\xff\xd8"):
                    jpg = encode_jpeg_bgr(image, quality)
                files_ = {"jpg": jpg, "mask.png": encode_png(mask)}
                stats["image"].add_pixels(image[..., ::-1])  # BGR -> RGB
                stats["mask"].add_pixels(mask)
                if has_depth:
                    depth = _member_gray(source, lists["depth_maps"][(bg, stem)])
                    files_["depth.png"] = encode_png(depth)
                    stats["depth"].add_pixels(depth)
                files_["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
                samples.append(EncodedSample(f"{start + j:0{width}d}", files_))
            if done is not None:
                receipts.append(done)
                continue
            meta_ = ShardMeta(shard, start, len(chunk), width, size, depth_size)
            receipts += commit_shard(store, record, meta_, ["tar"], iter(samples), stats)
            built += 1
        index = io.StringIO()
        index.write(",".join(ANNOTATION_COLUMNS) + "\n")
        index.writelines(annotation_line(width, m["index"], m["index"] // shard_size, m["bg"]["index"],
                                         m["fg"]["index"], m["flip"], m["placement"], m["x"], m["y"], m["w"],
                                         m["h"], m["scale"]) for m in rows)
        annotations = index.getvalue().encode("ascii")
        store.write_atomic(ANNOTATIONS, annotations)
        manifest = make_manifest(record, receipts, hashlib.sha256(annotations).hexdigest(), {})
        write_card(store, manifest)
        store.write_atomic(MANIFEST, manifest_bytes(manifest))
    n = len(receipts)
    return BuildResult(store.url, len(parsed), n, built, n - built, 0, time.monotonic() - t0, manifest), left_out

