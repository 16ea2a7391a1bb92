"""The dataset card: ``README.md`` in every dataset, so the tools people have open it as it is.

Its YAML front matter tells Hugging Face ``datasets`` (``load_dataset(DATASET_DIR)``, or the
same folder pushed to a dataset hub) which files are the samples -- the tar shards, read by
its WebDataset loader -- so it never falls back to loading the stored *input* images as an
image folder. The body is for people: counts, config, statistics, provenance, the preview
collage and how to read the dataset with fgbg, stock webdataset, ``datasets``, PyTorch and
h5py.

The card is a pure function of the manifest (no dates, no paths of the machine), written just
before the manifest at every commit, so a resumed or repaired build writes it byte for byte
again and ``verify`` can prove it current.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fgbg.readers.schema import FieldSpec, Manifest

from .collage import collage
from .floor_fit import describe_floor
from .manifest import record_from_manifest
from .record import BuildRecord, ImportedConfig
from .storage import ObjectStore, Store
from .summary import human_bytes, statistics_table

__all__ = ["CARD", "PREVIEW", "dataset_card", "draw_preview", "write_card"]

CARD = "README.md"
PREVIEW = "preview.png"

# Hugging Face's size buckets (the hub's `size_categories` tag).
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                 (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def _size_category(n: int) -> str:
    return next((label for bound, label in _SIZE_BUCKETS if n < bound), "n>1T")


def front_matter(manifest: Manifest) -> str:
    """YAML for ``datasets``: the tar shards are the default (and only) config.

    ``datasets`` picks one loader for a whole folder, so ``annotations.csv`` cannot be a second
    config read as CSV (it would go through the WebDataset loader); the card points to pandas for
    it. A dataset with HDF5 shards alone still names a config -- the index -- so that
    ``load_dataset`` never falls back to loading the stored *input* images as an image folder
    (the CSV reader's dtype comes only from features in code, not from the card: keys come back
    as integers there, which the card says).
    """
    n = manifest.totals.samples
    data = "shards/*.tar" if "tar" in manifest.shards else manifest.annotations.file
    lines = ["---", "pretty_name: fgbg composites", "task_categories:", "- depth-estimation",
             "- image-segmentation", "tags:", "- fgbg", "- synthetic", "- webdataset", "size_categories:",
             f"- {_size_category(n)}", "configs:", "- config_name: default", "  data_files:", "  - split: train",
             f"    path: {data}"]
    lines.append("---")
    return "\n".join(lines) + "\n"


_FIELD_ORDER = ("image", "mask", "depth", "instances", "meta")


def _fields(manifest: Manifest) -> list[tuple[str, FieldSpec]]:
    """The manifest's fields in reading order (image, mask, depth, instances, meta)."""
    return [(n, manifest.fields[n]) for n in _FIELD_ORDER if n in manifest.fields]


def _fields_table(manifest: Manifest) -> list[str]:
    what = {"image": "composite, RGB uint8 (JPEG)", "mask": "foreground mask, uint8 (lossless PNG)",
            "depth": "depth map, uint8, far = bright (PNG)",
            "instances": "instance ids, uint8: 0 background, i = the i-th of meta.people (PNG)",
            "mask.npy.zst": "foreground mask, uint8 (zstd-compressed .npy)",
            "depth.npy.zst": "depth map, uint8, far = bright (zstd-compressed .npy)",
            "instances.npy.zst": "instance ids, uint8: 0 background, i = the i-th of meta.people (zstd .npy)",
            "meta": "the annotation (JSON)"}
    rows = ["| field | tar member | `datasets` column | shape | content |", "|---|---|---|---|---|"]
    for name, spec in _fields(manifest):
        shape = "×".join(str(v) for v in spec.shape or []) or "-"
        rows.append(f"| {name} | `KEY.{spec.member}` | `{spec.member}` | {shape} | "
                    f"{what.get(spec.member, what.get(name, ''))} |")
    return rows


def _config_lines(record: BuildRecord) -> list[str]:
    c = record.config
    if isinstance(c, ImportedConfig):
        return [f"Imported from the seed layout at `{c.source}` by `fgbg import` "
                f"({len(record.left_out or ())} samples left out for a missing counterpart)."]
    depth = record.depth
    lines = [
        f"- composites {c.size}×{c.size}, JPEG quality {c.quality}; foreground box "
        f"{c.fg_size[0]}×{c.fg_size[1]}{' (aspect kept)' if c.keep_aspect else ''}, "
        f"scale {c.fg_scale[0]}–{c.fg_scale[1]}",
        f"- {c.flips} flip(s) × {c.placements} placements per background × foreground; seed {c.seed}",
        f"- masks: {'alpha' if c.soft_mask else '0/255'} where foreground alpha > {c.mask_threshold}",
        f"- depth: `{depth.backend}`"
        + ("" if depth.backend == "none" else f", stored {c.depth_shape[0]}×{c.depth_shape[1]}"),
    ]
    if depth.backend == "plane":
        lines.append("  (a non-learned geometric prior, not a model: it ignores the pixels)")
    if c.people is not None:
        lines.append(f"- {c.people[0]}–{c.people[1]} people per composite, painted farther first, "
                     f"none hidden beyond {c.max_occlusion:.0%}")
    if c.position == "floor" and c.person_height is not None and c.floors is not None:
        found = sum(f.found for f in c.floors)
        lines.append(f"- people stand on each background's floor as fitted from its depth prediction "
                     f"({found} of {len(c.floors)} backgrounds; the others on the plane prior's room, see Floors "
                     f"below), {c.person_height[0]}–{c.person_height[1]} m tall, sized by their distance")
    elif c.position == "floor" and c.person_height is not None:
        lines.append(f"- people stand on the floor of the plane prior's room, {c.person_height[0]}–"
                     f"{c.person_height[1]} m tall, sized by their distance")
    if depth.weights_sha256:
        lines.append(f"  weights sha256 `{depth.weights_sha256}`, input {depth.input}, dtype {depth.dtype}")
    return lines


def _floors(record: BuildRecord) -> list[str]:
    """--depth-layers --position floor: every background's fitted floor, or its fallback."""
    c = record.config
    if isinstance(c, ImportedConfig) or c.floors is None:
        return []
    lines = ["## Floors", "", "Where people stand on each background: the floor fitted from the background's stored "
             "depth prediction (horizon and feet rows in composite rows, depth-map rows on the fitted line, their "
             "median relative residual), or no usable floor and the plane prior's room instead.", "",
             "| bg | name | floor |", "|---|---|---|"]
    bgs = record.inputs.bg
    lines += [f"| {i} | {_cell(bgs[i].name) if i < len(bgs) else ''} | {_cell(describe_floor(f))} |"
              for i, f in enumerate(c.floors)]
    return [*lines, ""]


def _cell(text: str) -> str:
    """A file name as a Markdown table cell: pipes escaped, line breaks flattened."""
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _provenance(record: BuildRecord, fingerprint: str) -> list[str]:
    tool = ", ".join(f"{k} {v}" for k, v in sorted(record.tool.items()))
    lines = [f"Built by {tool}; format version {record.format_version}; build fingerprint "
             f"`{fingerprint}`. Same inputs, config and seed give byte-identical shards.", ""]
    for kind, label in (("bg", "backgrounds"), ("fg", "foregrounds")):
        entries = record.inputs.of(kind)
        lines += [f"<details><summary>{len(entries)} {label} (original name, sha256 of the original file)"
                  "</summary>", "", "| index | name | sha256 |", "|---|---|---|"]
        lines += [f"| {e.index} | {_cell(e.name)} | `{e.sha256 or ''}` |" for e in entries]
        lines += ["", "</details>", ""]
    return lines


def _reading(manifest: Manifest) -> list[str]:
    lines = ["```python", "from fgbg.readers import open_dataset   # pip install fgbg",
             'ds = open_dataset(".")                 # this folder, or its s3:// URL',
             'sample = ds[0]                         # image, mask, depth (NumPy uint8), meta (dict)',
             "for sample in ds.stream(shuffle=True, seed=0, epoch=0):  # exactly once per epoch, resumable",
             "    ...", "```", ""]
    if manifest.shards.get("tar"):
        last = manifest.shards["tar"][-1].name.rsplit("/", 1)[-1].removesuffix(".tar")
        members = ", ".join(f'"{spec.member}"' for _, spec in _fields(manifest))
        lines += ["Stock WebDataset (`rgb8` keeps masks and depth maps single-channel):", "", "```python",
                  "import webdataset as wds",
                  f'ds = wds.WebDataset("shards/{{000000..{last}}}.tar", shardshuffle=False).decode("rgb8")'
                  f".to_tuple({members})",
                  "```", "", "Hugging Face `datasets` (the front matter of this card names the shards):", "",
                  "```python", "from datasets import load_dataset",
                  'ds = load_dataset("path/to/this/folder", split="train")   # columns as in the table above',
                  "```", ""]
    elif manifest.shards.get("tarzst"):
        last = manifest.shards["tarzst"][-1].name.rsplit("/", 1)[-1].removesuffix(".tar.zst")
        members = ", ".join(f'"{spec.member}"' for _, spec in _fields(manifest))
        lines += ["The `.tar.zst` shards decompress to plain WebDataset tars (`zstd -dc shards/000000.tar.zst "
                  "| tar t`; `tar --zstd -xf`). Stock WebDataset through a pipe:", "", "```python",
                  "import webdataset as wds",
                  f'urls = [f"pipe:zstd -dc shards/{{i:06d}}.tar.zst" for i in range({int(last) + 1})]',
                  f'ds = wds.WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple({members})',
                  "```", "", "Hugging Face `datasets` does not read `.tar.zst` shards: `load_dataset(folder)` gives "
                  "the annotation index; `fgbg convert . --to tar --out DIR` makes a copy it loads whole.", ""]
    else:
        lines += ["Hugging Face `datasets` reads tar shards, not these HDF5 ones: `load_dataset(folder)` gives the "
                  "annotation index (its CSV reader makes the key `00000042` the number 42, the sample's index); "
                  "`fgbg convert . --to tar --out DIR` makes a copy it loads whole.", ""]
    if "hdf5" in manifest.shards:
        layout = manifest.hdf5_layout
        lines += [f"h5py (HDF5 shards, {layout} layout"
                  + ("; `import hdf5plugin` first for the Zstd filter" if layout == "raw" else "") + "):", "",
                  "```python", "import h5py", 'with h5py.File("shards/000000.h5") as f:',
                  '    print(f.attrs["count"], list(f))', "```", ""]
    if any(spec.member.endswith(".npy.zst") for spec in manifest.fields.values()):
        lines += ["Masks, depth and instance maps are zstd-compressed `.npy` arrays (`--members zstd`): fgbg's "
                  "readers decode them; elsewhere `np.load(io.BytesIO(zstandard.ZstdDecompressor()"
                  ".decompress(data)))`.", ""]
    lines += ["PyTorch: `ds.torch_dataset()` (an `IterableDataset` split across ranks and loader workers; "
              'needs `pip install "fgbg[torch]"`).', "",
              *(["The index `annotations.csv` has one row per sample; read its `key` column as text "
                 '(pandas: `dtype={"key": str}`).'] if manifest.annotations.file == "annotations.csv" else
                ["The index `annotations.parquet` has one row per sample, row groups of whole shards: "
                 '`pandas.read_parquet("annotations.parquet")`, polars `pl.read_parquet`, DuckDB '
                 "`SELECT * FROM 'annotations.parquet'`; `key` is the sample's position as an integer."]), ""]
    return lines


def dataset_card(manifest: Manifest, has_preview: bool, where: str = "manifest.json") -> bytes:
    """The dataset's ``README.md`` for ``manifest`` (a pure function of it: the same text
    whether made from the in-memory manifest at commit or from ``manifest.json`` later)."""
    record = record_from_manifest(manifest, where, check_fingerprint=False)  # shown as stored; verify judges
    t = manifest.totals
    n_bg, n_fg = len(record.inputs.bg), len(record.inputs.fg)
    shards = ", ".join(f"{len(manifest.shards[fmt])} {fmt} ({human_bytes(t.bytes.get(fmt, 0))})"
                       for fmt in sorted(manifest.shards, key=lambda f: (f != "tar", f)))
    lines = [front_matter(manifest).rstrip("\n"), "",
             f"# fgbg dataset: {t.samples:,} samples",
             "",
             f"Foregrounds (people, {n_fg}) pasted onto backgrounds ({n_bg}), each sample a composite, its mask, "
             "a depth map and an annotation; written by fgbg straight into "
             f"shards: {shards}. `fgbg verify .` proves every byte against `manifest.json`.",
             "", "## Samples", "", *_fields_table(manifest), "",
             "KEY is the zero-padded sample position (`00000042`); `ds[i]` is the sample with KEY i.", "",
             "## Config", "", *_config_lines(record), "", *_floors(record)]
    if has_preview:
        lines += ["## Preview", "", f"![rows: backgrounds, foregrounds, masks, composites, depth]({PREVIEW})", ""]
    lines += ["## Statistics", "", "Exact per-channel mean and std on the [0, 1] scale, over every pixel:", "",
              "```", statistics_table(manifest.statistics), "```", "",
              "## Provenance", "", *_provenance(record, manifest.fingerprint),
              "## Reading it", "", *_reading(manifest)]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")


def draw_preview(store: Store, manifest: Manifest) -> bytes:
    """The ``preview.png`` of the dataset in ``store`` that ``manifest`` describes (drawn from
    its shards and inputs; the manifest need not be written yet)."""
    from fgbg.readers import Dataset
    from fgbg.readers.fs import Location

    options = store.storage_options if isinstance(store, ObjectStore) else None
    return collage(store, Dataset(Location(store.url, options), manifest))


def write_card(store: Store, manifest: Manifest) -> None:
    """Store ``preview.png`` and ``README.md`` for ``manifest`` (called just before the manifest
    itself is written, with every shard done)."""
    with ThreadPoolExecutor(2, thread_name_prefix="fgbg-card") as ex:  # two round trips at once on a bucket
        card = ex.submit(store.write_atomic, CARD, dataset_card(manifest, has_preview=True))
        store.write_atomic(PREVIEW, draw_preview(store, manifest))
        card.result()
