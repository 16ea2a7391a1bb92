"""``fgbg export``: a dataset as loose folders in the seeds' layout, for folder-based loaders.

``OUT/fg_bg/<bg>/<name>.jpg`` (the stored JPEG bytes, not re-encoded), ``OUT/fg_bg_masks/
<bg>/<name>.png`` and ``OUT/depth_maps/<bg>/<name>.png`` (lossless, unlike the seeds'
JPEG masks), where ``<name>`` is ``<bg>__<fg>_<k>`` or ``<bg>__flip_<fg>_<k>`` with
``k = placement + 1`` -- plus ``inp_bg/``, ``inp_fg/``, ``inp_fg_masks/`` from the dataset's
inputs and ``annotations.csv`` (made from the Parquet index for a dataset built with
``--index parquet``: the bytes a CSV build writes). ``<bg>``/``<fg>`` are the inputs' file stems, made
path-safe; stems that repeat get ``-<index>`` appended so no file overwrites another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgbg.readers.decode import ZSTD_MAGIC, decode_member
from fgbg.readers.index import ANNOTATIONS, read_index
from fgbg.readers.schema import InputEntry

from ..encode import encode_png
from ..errors import OutputError
from ..manifest import index_csv
from ..storage import ObjectStore, open_store

__all__ = ["export", "safe_stems", "sample_name"]


def safe_stems(records: Sequence[InputEntry]) -> list[str]:
    """Path-safe, unique stems of the inputs' original names."""
    stems = [re.sub(r"[/\\:\x00]", "_", r.name.rsplit(".", 1)[0]).lstrip(".") or "input" for r in records]
    return [f"{s}-{i}" if stems.count(s) > 1 else s for i, s in enumerate(stems)]


def sample_name(bg: str, fg: str, flip: int, placement: int) -> str:
    return f"{bg}__{'flip_' if flip else ''}{fg}_{placement + 1}"


def export(url: str, out: str | Path, storage_options: dict[str, Any] | None = None) -> int:
    """Write the seed layout under ``out``; returns the number of samples written."""
    from fgbg.readers import Dataset, DatasetError
    from fgbg.readers.dataset import read_manifest
    from fgbg.readers.fs import Location

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"{out}: export needs a new or empty folder")
    store = open_store(url, storage_options)
    options = store.storage_options if isinstance(store, ObjectStore) else None
    location = Location(url, options)
    manifest = read_manifest(location)  # read once, checked: input names included
    ds = Dataset(location, manifest, format="tar" if "tar" in manifest.shards else None)
    inputs: dict[str, list[InputEntry]] = {"bg": manifest.inputs.get("bg", []), "fg": manifest.inputs.get("fg", [])}
    bg_names, fg_names = safe_stems(inputs["bg"]), safe_stems(inputs["fg"])
    # An imported dataset keeps only the inputs its source had (and no foreground masks):
    # the folders hold what the dataset stores.
    for kind, names in (("bg", bg_names), ("fg", fg_names)):
        for rec, name in zip(inputs[kind], names, strict=True):
            for folder, rel in ((out / f"inp_{kind}", rec.file), (out / "inp_fg_masks", rec.mask_file)):
                if rel is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{name}.png").write_bytes(store.read_bytes(rel))
    out.mkdir(parents=True, exist_ok=True)
    if manifest.annotations.file == ANNOTATIONS:
        (out / ANNOTATIONS).write_bytes(store.read_bytes(ANNOTATIONS))
    else:  # a Parquet index, exported as the CSV a --index csv build writes (the same bytes)
        index = read_index(location, manifest)
        with open(out / ANNOTATIONS, "wb") as f:
            f.writelines(index_csv(index, manifest.key_width))
    trees = {"image": ("fg_bg", "jpg"), "mask": ("fg_bg_masks", "png"), "depth": ("depth_maps", "png")}
    n = 0
    for s in range(len(ds.shards)):
        for key, members in ds.iter_members(s):
            try:  # the annotation is the shard's word: names come from it only if it holds
                meta = json.loads(members["meta"])  # type: ignore[arg-type]
                bg = bg_names[meta["bg"]["index"]]
                name = sample_name(bg, fg_names[meta["fg"]["index"]], int(meta["flip"]), int(meta["placement"]))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise DatasetError(f"{ds.shards[s].name}: sample {key}: annotation does not name the stored "
                                   f"inputs ({type(e).__name__}: {e})") from None
            for field, (tree, ext) in trees.items():
                if field in members:
                    folder = out / tree / bg
                    folder.mkdir(parents=True, exist_ok=True)
                    data = members[field]
                    if not isinstance(data, bytes):
                        raise OutputError(f"{url}: export needs encoded shards (tar or HDF5 encoded layout)")
                    if data[:4] == ZSTD_MAGIC:  # --members zstd: the seed layout's files are PNGs
                        data = encode_png(decode_member(field, data))
                    (folder / f"{name}.{ext}").write_bytes(data)
            n += 1
    return n

