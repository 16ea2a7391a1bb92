"""Dataset stores: a local folder or any fsspec URL, behind one :class:`Store` interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import LOCK_NAME, TMP_MARK, HashedInputs, Store, Upload
from .local import DatasetLock, LocalStore
from .remote import ObjectLock, ObjectStore

__all__ = ["LOCK_NAME", "TMP_MARK", "DatasetLock", "HashedInputs", "LocalStore", "ObjectLock", "ObjectStore", "Store",
           "Upload", "is_url", "open_store"]


def is_url(location: str | Path) -> bool:
    text = str(location)
    return "://" in text and not text.startswith("file://")


def open_store(location: str | Path, storage_options: dict[str, Any] | None = None) -> Store:
    """``LocalStore`` for paths and ``file://``, ``ObjectStore`` for other fsspec URLs."""
    if is_url(location):
        return ObjectStore(str(location), storage_options)
    text = str(location)
    return LocalStore(text[len("file://"):] if text.startswith("file://") else text)
