"""``fgbg export DATASET --coco OUT``: COCO instance annotations next to the composites.

``OUT/images/KEY.jpg`` (the stored JPEG bytes, not re-encoded) and ``OUT/annotations.json``
in the COCO detection format: image ids are the sample keys as integers; one category,
``person``; one annotation per person, its mask as COCO run-length encoding made by
pycocotools (so COCO's own API, detectron2, mmdet and torchvision's COCO loaders read it),
its box and area computed from that mask. With ``--people`` (an ``instances`` member) each
person is one annotation, its mask the pixels of its instance id where the stored mask is on
(at least 128: soft masks thresholded); otherwise the one person is the stored mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fgbg.readers.extras import require

from ..errors import FgbgError

__all__ = ["CATEGORY", "export_coco"]

CATEGORY = {"id": 1, "name": "person", "supercategory": "person"}


def export_coco(url: str, out: str | Path, storage_options: dict[str, Any] | None = None) -> int:
    """Write ``out``; returns the number of images. ``out`` must be new (or empty)."""
    from fgbg.readers import open_dataset

    mask_api = require("pycocotools.mask", "coco", "fgbg export --coco")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FgbgError(f"{root}: exists and is not empty; give a new folder for the COCO export")
    (root / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    with (open_dataset(url, storage_options=storage_options, decode=False, fields=("image", "meta")) as raw,
          open_dataset(url, storage_options=storage_options, fields=("mask",)) as masks):
        crowd = "instances" in masks.metadata.fields
        with open_dataset(url, storage_options=storage_options, fields=("instances",) if crowd else ("mask",)) as ids:
            for s, m, i in zip(raw, masks, ids, strict=True):
                key = s["key"]
                (root / "images" / f"{key}.jpg").write_bytes(bytes(s["image"]))
                on = m["mask"] >= 128
                h, w = on.shape
                images.append({"id": int(key), "file_name": f"images/{key}.jpg", "width": w, "height": h})
                ids_ = i["instances"] if crowd else None
                people = [on & (ids_ == k) for k in range(1, int(ids_.max()) + 1)] if ids_ is not None else [on]
                for person in people:
                    if not person.any():
                        continue  # a person wholly transparent at this size: no instance to annotate
                    rle = mask_api.encode(np.asfortranarray(person.astype(np.uint8)))
                    box = [float(v) for v in mask_api.toBbox(rle)]
                    rle["counts"] = rle["counts"].decode("ascii")
                    annotations.append({"id": len(annotations) + 1, "image_id": int(key),
                                        "category_id": CATEGORY["id"], "segmentation": rle,
                                        "area": float(mask_api.area(rle)), "bbox": box, "iscrowd": 0})
        fingerprint = raw.metadata.fingerprint
    info = {"description": f"fgbg dataset {url}", "version": fingerprint[:16], "contributor": "fgbg", "url": str(url)}
    doc = {"info": info, "images": images, "annotations": annotations, "categories": [CATEGORY], "licenses": []}
    (root / "annotations.json").write_text(json.dumps(doc))
    return len(images)
