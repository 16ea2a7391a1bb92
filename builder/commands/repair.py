"""``fgbg repair``: rebuild exactly the missing or corrupt shards, from the dataset itself.

The dataset is self-contained (``inputs/`` + ``build.json``), so repair needs no original
folders: the stored inputs are re-checked against their recorded sha256 (a changed input
is a clear error, never silently used), every shard whose receipt does not match its bytes
-- missing, truncated, flipped, receipt lost -- is rebuilt by the same deterministic plan
(so byte-identical to the original), stale temporaries are removed, and the annotations
index and manifest are rewritten from the receipts (which also undoes a hand-edited
manifest). A missing ``build.json`` is recovered from the manifest when that is intact.
"""

from __future__ import annotations

from typing import Any

from ..build import BuildResult, build
from ..errors import FgbgError
from ..manifest import BUILD_RECORD, MANIFEST, dumps, fingerprint, read_json, record_from_manifest
from ..storage import open_store
from .verify import VerifyReport, verify

__all__ = ["repair"]

def _recover_record(url: str, storage_options: dict[str, Any] | None) -> None:
    store = open_store(url, storage_options)
    if store.exists(BUILD_RECORD):
        return
    if not store.exists(MANIFEST):
        raise FgbgError(f"{url}: neither {BUILD_RECORD} nor {MANIFEST}: nothing to repair from")
    record = record_from_manifest(read_json(store, MANIFEST))
    if fingerprint(record) != record.get("fingerprint"):
        raise FgbgError(f"{url}: {BUILD_RECORD} is missing and the manifest's copy does not match its fingerprint")
    store.write_atomic(BUILD_RECORD, dumps(record))


def repair(url: str, *, workers: int | None = None, storage_options: dict[str, Any] | None = None,
           depth_options: dict[str, Any] | None = None, progress: bool | None = None
           ) -> tuple[VerifyReport, BuildResult, VerifyReport]:
    """Verify, rebuild what is broken, verify again. Returns (before, build result, after)."""
    before = verify(url, storage_options=storage_options)
    _recover_record(url, storage_options)
    result = build(url, None, workers=workers, storage_options=storage_options, depth_options=depth_options,
                   progress=progress)
    after = verify(url, storage_options=storage_options)
    return before, result, after
