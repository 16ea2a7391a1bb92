"""Sources: read the user's background and foreground folders into the inputs a build uses.

Every input is decoded, checked and resized here, before anything is written to the
dataset, so that a bad file stops the build with a message naming it and an existing
dataset is never touched. The result is a list of :class:`PreparedInput`, each the image
exactly as the build will use it -- encoded once, as the lossless PNG ``inputs/`` stores,
into a local spool folder rather than kept in memory: 10,000 backgrounds held as pixels cost
1.5 GB before the first shard, spooled they cost a file each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .composite import mask_box
from .config import BuildConfig, scaled_size
from .encode import decode_png_color, encode_png, encode_png_color
from .errors import InputError
from .imageio import InputFile, list_images, read_image
from .resize import attach_mask, fit_box, resize_rgb, resize_rgba

__all__ = ["Mapper", "PreparedInput", "Spool", "file_sha256", "load_backgrounds", "load_foregrounds"]


#: ``map(function, items)``: the builtin (in this process) or a process pool's, which spreads
#: the per-file work (decode, resize, PNG encode, hash) over the build's workers
Mapper = Callable[[Callable[[Any], "PreparedInput"], Iterable[Any]], Iterable["PreparedInput"]]


class Spool:
    """A temporary local folder for the encoded inputs of one build (removed when the last
    input referring to it is gone, or at exit: tempfile's own finalizer). Workers preparing
    inputs write into it by name, so its path is all they need."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fgbg-inputs-")
        self.root = Path(self._dir.name)


@dataclass(frozen=True)
class PreparedInput:
    """One input as used by the build: its original name and hash, and its resized pixels as
    the PNG ``inputs/`` will hold (spooled to a local file; ``pixels`` decodes it)."""

    name: str
    source_sha256: str
    png: Path  # bg: (size, size, 3) RGB; fg: (h, w, 4) straight RGBA -- lossless
    png_sha256: str
    shape: tuple[int, ...]
    base_size: tuple[int, int]  # (w, h) of the fg box at scale 1 (bg: the composite size)
    mask_png: Path | None = None  # fg: its mask as stored (inputs/fg_mask/)
    spool: Spool | None = field(default=None, repr=False, compare=False)  # keeps the files alive

    @property
    def pixels(self) -> np.ndarray:
        return decode_png_color(self.png.read_bytes())


def _prepared(spool: Path, stem: str, name: str, digest: str, pixels: np.ndarray, base: tuple[int, int],
              mask: np.ndarray | None = None) -> PreparedInput:
    data = encode_png_color(pixels)
    png = spool / f"{stem}.png"
    png.write_bytes(data)
    mask_png = None
    if mask is not None:
        mask_png = spool / f"{stem}.mask.png"
        mask_png.write_bytes(encode_png(mask))
    return PreparedInput(name, digest, png, hashlib.sha256(data).hexdigest(), pixels.shape, base, mask_png)


def file_sha256(path: InputFile) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _in_order(mapper: Mapper, function: Callable[[Any], PreparedInput], tasks: list[Any],
              spool: Spool) -> list[PreparedInput]:
    """``function`` over ``tasks`` with ``mapper``, in task order, each result tied to ``spool``."""
    return [dataclasses.replace(p, spool=spool) for p in mapper(function, tasks)]


def _background(task: tuple[InputFile, int, Path, int]) -> PreparedInput:
    """One background as the build uses it (runs in any process: a pure function of the file)."""
    path, size, spool, i = task
    arr = read_image(path, "background")[..., :3]
    rgb = resize_rgb(np.ascontiguousarray(arr), size, size)
    return _prepared(spool, f"bg{i:07d}", path.name, file_sha256(path), rgb, (size, size))


def load_backgrounds(folder: str | Path, cfg: BuildConfig, skip_invalid: bool = False,
                     storage_options: dict[str, Any] | None = None, mapper: Mapper = map) -> list[PreparedInput]:
    """Read every background, drop any alpha, resize to ``size`` x ``size`` (per file with
    ``mapper``: 10,000 backgrounds are 10,000 independent decodes and PNG encodes)."""
    spool = Spool()
    paths = list_images(folder, "background", skip_invalid, storage_options)
    return _in_order(mapper, _background, [(p, cfg.size, spool.root, i) for i, p in enumerate(paths)], spool)


def _mask_for(fg_path: InputFile, mask_dir: str, masks: dict[str, list[InputFile]]) -> InputFile:
    matches = masks.get(fg_path.stem, [])
    if not matches:
        raise InputError(f"{fg_path}: no mask with stem {fg_path.stem!r} in {mask_dir}")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise InputError(f"{fg_path}: several masks match stem {fg_path.stem!r} in {mask_dir}: {names}")
    return matches[0]


def load_foregrounds(
    folder: str | Path, cfg: BuildConfig, mask_dir: str | Path | None = None, skip_invalid: bool = False,
    storage_options: dict[str, Any] | None = None, mapper: Mapper = map,
) -> list[PreparedInput]:
    """Read every foreground as RGBA (own alpha, or RGB + mask file with the same stem).

    The stored size is the box at the largest scale the plan can draw, so a per-sample
    scale only ever shrinks it (no upscaling blur); without scale jitter it is the box.
    """
    paths = list_images(folder, "foreground", skip_invalid, storage_options)
    stems: dict[str, InputFile] = {}
    for p in paths:
        if p.stem in stems and mask_dir is not None:
            raise InputError(f"{p}: stem {p.stem!r} also used by {stems[p.stem]}; masks are matched by stem")
        stems[p.stem] = p
    masks: dict[str, list[InputFile]] = {}
    if mask_dir is not None:
        for m in list_images(mask_dir, "foreground mask", skip_invalid, storage_options):
            masks.setdefault(m.stem, []).append(m)
    spool = Spool()
    tasks = [(p, _mask_for(p, str(mask_dir), masks) if mask_dir is not None else None, cfg, spool.root, i)
             for i, p in enumerate(paths)]  # every mask matched before any image is decoded
    return _in_order(mapper, _foreground, tasks, spool)


def _foreground(task: tuple[InputFile, InputFile | None, BuildConfig, Path, int]) -> PreparedInput:
    """One foreground as the build uses it: RGBA at its largest box, and its mask."""
    path, mpath, cfg, spool, i = task
    arr = read_image(path, "foreground")
    digest = file_sha256(path)
    if mpath is not None:
        mask = read_image(mpath, "foreground mask")
        if mask.shape[:2] != arr.shape[:2]:
            raise InputError(
                f"{mpath}: mask is {mask.shape[1]}x{mask.shape[0]} but foreground {path.name} "
                f"is {arr.shape[1]}x{arr.shape[0]}"
            )
        arr = attach_mask(arr, mask)
        digest = hashlib.sha256((digest + file_sha256(mpath)).encode()).hexdigest()
    elif arr.shape[2] != 4:
        raise InputError(
            f"{path}: foreground has no alpha channel; give RGBA images (PNG/WebP) or "
            "pass --fg-masks DIR with a mask per foreground (same file stem)"
        )
    if not arr[..., 3].any():
        raise InputError(f"{path}: foreground is fully transparent (alpha is 0 everywhere)")
    base = fit_box(arr.shape[1], arr.shape[0], cfg.fg_size[0], cfg.fg_size[1], cfg.keep_aspect)
    stored_w, stored_h = scaled_size(base, cfg.fg_scale[1])
    rgba = resize_rgba(np.ascontiguousarray(arr), stored_w, stored_h)
    return _prepared(spool, f"fg{i:07d}", path.name, digest, rgba, base,
                     mask_box(rgba[..., 3], cfg.mask_threshold, cfg.soft_mask))
