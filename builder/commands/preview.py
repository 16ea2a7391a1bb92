"""``fgbg preview``: write a dataset's collage (see :mod:`fgbg.builder.collage`) to a PNG file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..collage import collage
from ..storage import ObjectStore, open_store

__all__ = ["preview"]


def preview(url: str, out: str | Path, columns: int = 8, storage_options: dict[str, Any] | None = None) -> Path:
    """Write the collage PNG to ``out`` and return its path."""
    from fgbg.readers import open_dataset

    store = open_store(url, storage_options)
    options = store.storage_options if isinstance(store, ObjectStore) else None
    path = Path(out)
    path.write_bytes(collage(store, open_dataset(url, storage_options=options), columns))
    return path
