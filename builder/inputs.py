"""The dataset's own copy of its inputs (``inputs/``), which makes a dataset self-contained.

Like the seeds' ``inp_bg/``, ``inp_fg/`` and ``inp_fg_masks/``: resized backgrounds (RGB
PNG), foregrounds as used (RGBA PNG) and their masks, named by index (``0007.png``) so any
original file name -- Unicode, spaces, duplicates across folders -- is safe; the original
names and content hashes are recorded in the manifest. Workers, resume, repair and append
read these files, never the user's folders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from fgbg.readers.schema import InputEntry

from .composite import mask_box
from .config import BuildConfig
from .encode import decode_png_color
from .errors import FgbgError
from .lru import LRU
from .record import Inputs
from .sources import PreparedInput
from .stats import PixelSums
from .storage import HashedInputs, Store

__all__ = ["InputSet", "StoredImages", "encode_inputs", "fg_boxes", "input_statistics", "load_inputs",
           "write_inputs"]


class StoredImages(Sequence[np.ndarray]):
    """The stored inputs of one kind, decoded on first use and kept in a bounded LRU.

    Why lazy: a build's memory must not grow with the number of inputs (10,000 backgrounds
    decoded up front cost 1.5 GB in every worker and a minute before the first shard). Each
    file is checked against its recorded sha256 whenever it is read, so a changed input is
    still an error naming it, never silently used.
    """

    def __init__(self, store: Store, records: Sequence[InputEntry], capacity: int = 64, fresh: bool = False):
        self.store = store
        self.records = records
        self._files = HashedInputs(store, [(r.file, r.file_sha256) for r in records
                                           if r.file is not None and r.file_sha256 is not None], fresh)
        self._cache: LRU[int, np.ndarray] = LRU(capacity)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self._cache.get_or_make(i, lambda k: self._load(self.records[k]))

    def _load(self, rec: InputEntry) -> np.ndarray:
        rel, expected = rec.file, rec.file_sha256
        if rel is None or expected is None:
            raise FgbgError(f"{self.store.url}: input {rec.name!r} has no stored file (an imported dataset's "
                            "input that was not given)")
        try:
            data = self._files.read(rel, expected)
        except FileNotFoundError:
            raise FgbgError(f"{self.store.url}/{rel}: stored input is missing") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise FgbgError(f"{self.store.url}/{rel}: stored input does not match its recorded sha256")
        img = decode_png_color(data)
        img.setflags(write=False)  # shared by every sample that uses it
        return img


@dataclass(frozen=True)
class InputSet:
    """Backgrounds and foregrounds as a build uses them, with their manifest records."""

    bg: Sequence[np.ndarray]  # (size, size, 3) RGB, loaded on demand
    fg: Sequence[np.ndarray]  # (h, w, 4) straight RGBA at the largest scale, loaded on demand
    fg_base: list[tuple[int, int]]  # (w, h) box at scale 1
    records: Inputs


def encode_inputs(
    cfg: BuildConfig, bgs: list[PreparedInput], fgs: list[PreparedInput], start: tuple[int, int] = (0, 0)
) -> tuple[Inputs, dict[str, Path]]:
    """The files of ``inputs/`` (their spooled PNGs, by dataset path) and the records that
    describe them, indexed from ``start`` (backgrounds, foregrounds): an append's inputs
    follow the dataset's.

    Nothing is written here, so a build can compare the records with an existing dataset
    before touching it; :func:`write_inputs` copies the files in, one at a time.
    """
    bg: list[InputEntry] = []
    fg: list[InputEntry] = []
    files: dict[str, Path] = {}
    for i, item in enumerate(bgs, start[0]):
        rel = f"inputs/bg/{i:04d}.png"
        files[rel] = item.png
        bg.append(InputEntry(index=i, name=item.name, sha256=item.source_sha256, file=rel,
                             file_sha256=item.png_sha256))
    for i, item in enumerate(fgs, start[1]):
        rel, mrel = f"inputs/fg/{i:04d}.png", f"inputs/fg_mask/{i:04d}.png"
        assert item.mask_png is not None
        files[rel], files[mrel] = item.png, item.mask_png
        h, w = item.shape[:2]
        fg.append(InputEntry(index=i, name=item.name, sha256=item.source_sha256, file=rel,
                             file_sha256=item.png_sha256, mask_file=mrel, base_size=list(item.base_size),
                             stored_size=[w, h]))
    return Inputs(tuple(bg), tuple(fg)), files


_COPY_THREADS = 16  # object stores: PUTs in flight (local folders: fsyncs)


def write_inputs(store: Store, files: dict[str, Path]) -> None:
    """Copy spooled input files into the dataset, a few at a time (memory: a few files).

    In threads because each write waits on its own fsync (or PUT, on object storage): 10,000
    backgrounds written one by one took 6.8 s before the first shard, most of it waiting."""
    def copy(item: tuple[str, Path]) -> None:
        store.write_input(item[0], item[1].read_bytes())

    with ThreadPoolExecutor(_COPY_THREADS, thread_name_prefix="fgbg-inputs") as ex:
        for _ in ex.map(copy, files.items()):
            pass


def load_inputs(store: Store, inputs: Inputs, fresh: bool = False) -> InputSet:
    """``inputs/`` as a lazily read, bounded set (each file checked against its hash when read).
    ``fresh``: from the stored objects themselves, for checks that prove them (verify); builds
    may read an object store's inputs from the host's verified local copy."""
    return InputSet(StoredImages(store, inputs.bg, fresh=fresh), StoredImages(store, inputs.fg, capacity=256,
                                                                              fresh=fresh),
                    fg_boxes(inputs), inputs)


def fg_boxes(inputs: Inputs) -> list[tuple[int, int]]:
    """The (w, h) box of each foreground at scale 1, as recorded (no image is read)."""
    boxes = []
    for r in inputs.fg:
        if r.base_size is None:
            raise FgbgError(f"foreground input {r.index} ({r.name!r}) has no recorded size")
        boxes.append((r.base_size[0], r.base_size[1]))
    return boxes


def input_statistics(inputs: InputSet, cfg: BuildConfig) -> dict[str, PixelSums]:
    """Exact statistics of the stored inputs (bg RGB, fg RGBA, fg masks)."""
    bg, fg, fg_mask = PixelSums(3), PixelSums(4), PixelSums(1)
    for img in inputs.bg:
        bg.add_pixels(img)
    for img in inputs.fg:
        fg.add_pixels(img)
        fg_mask.add_pixels(mask_box(img[..., 3], cfg.mask_threshold, cfg.soft_mask))
    return {"inputs_bg": bg, "inputs_fg": fg, "inputs_fg_mask": fg_mask}
