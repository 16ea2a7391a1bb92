"""``fgbg repair``: rebuild exactly the wrong shards, from the plan, and rewrite the rest.

The dataset is self-contained (``inputs/`` + ``build.json``), so repair needs no original
folders. What every shard must hold is the build record's plan (its fingerprint checked)
over the stored inputs (their sha256 re-checked: a changed input is a clear error, never
silently used). Receipts and the manifest are claims, not proofs: verify checks every shard
the plan implies against the plan itself (its range, keys and members, each sample's digest,
each annotation), whatever the manifest and the receipts say, so a shard damaged together
with consistent lies in both is still found. Every shard found wrong in any way -- bytes,
receipt, offsets, member layout, keys, annotations, or unreadable -- loses its receipt and
is rebuilt by the same deterministic plan (byte-identical to the original), and so is every
shard whose receipt has no per-sample digests (nothing but a fresh build can prove it);
stale temporaries are removed; index, card and manifest are rewritten from what was built or
proven (which also undoes a hand-edited manifest). Only damage to ``build.json`` (recovered
from the manifest's copy when that one is intact) or to the inputs stops a repair, with a
message naming the file.
"""

from __future__ import annotations

import json
from typing import Any

from fgbg.readers.schema import INDEX_FILES, BuildRecordSchema, shard_position

from ..build import BuildResult, build
from ..errors import FgbgError
from ..manifest import BUILD_RECORD, MANIFEST, read_record
from ..receipts import load_receipt, receipt_name
from ..record import BuildRecord
from ..shards import shard_name
from ..storage import Store, open_store
from .shard_check import plan_of
from .verify import INDEX_FINDINGS, VerifyReport, verify

__all__ = ["repair"]


def _record_in_manifest(store: Store) -> BuildRecord | None:
    """The build record the manifest carries, if that part of it is intact (its fingerprint
    checked); the rest of a damaged manifest does not matter here, it is rewritten."""
    try:
        manifest = json.loads(store.read_metadata(MANIFEST))
        if not isinstance(manifest, dict):
            return None
        body = {k: v for k, v in manifest.items() if k in BuildRecordSchema.__struct_fields__}
        return BuildRecord.parse(json.dumps(body).encode(), f"{store.url}/{MANIFEST}")
    except (OSError, ValueError):  # unreadable, not JSON, or a record that does not check out
        return None


def _intact_record(store: Store) -> bool:
    if not store.exists(BUILD_RECORD):
        return False
    try:
        read_record(store)
    except FgbgError:
        return False
    return True


def _recover_record(url: str, storage_options: dict[str, Any] | None) -> None:
    """Make sure ``build.json`` is intact: from the manifest's copy when it is missing or damaged."""
    store = open_store(url, storage_options)
    if _intact_record(store):
        return
    state = "damaged (its fingerprint does not match its content)" if store.exists(BUILD_RECORD) else "missing"
    record = _record_in_manifest(store) if store.exists(MANIFEST) else None
    if record is None:
        raise FgbgError(f"{store.url}/{BUILD_RECORD} is {state} and the manifest holds no intact copy: "
                        "repair cannot know what the shards must hold (restore build.json from a backup)")
    store.write_atomic(BUILD_RECORD, record.to_bytes())


def _distrust(url: str, storage_options: dict[str, Any] | None, before: VerifyReport) -> list[str]:
    """Remove the receipt of every shard the plan implies that is not proven -- found wrong in
    any way, or with no per-sample digests to prove it by -- so the build redoes it from the
    plan; returns those shards. Per-sample index mismatches are the index's fault when the
    index itself is damaged (it is rewritten), not the shards'."""
    store = open_store(url, storage_options)
    index_damaged = any(p.where in INDEX_FILES.values() for p in before.problems)
    shards = set()
    for p in before.problems:
        name = p.where.removesuffix(".json")
        if shard_position(name) is None or (index_damaged and p.what.startswith(INDEX_FINDINGS)):
            continue
        shards.add(name)
    for name in _planned_shards(store, read_record(store)):
        receipt = load_receipt(store, name) if name not in shards else None
        if receipt is not None and not receipt.digests:
            shards.add(name)
    for name in sorted(shards):
        if store.exists(receipt_name(name)):
            store.remove(receipt_name(name))
    return sorted(shards)


def _planned_shards(store: Store, record: BuildRecord) -> list[str]:
    """The shard files in ``shards/`` that the plan of a built dataset makes (none for an
    imported one): looked up from the listing, so a plan's size costs nothing."""
    plan = plan_of(record)
    if plan is None:
        return []
    out = []
    for entry in store.listdir("shards"):
        name = f"shards/{entry}"
        position = shard_position(name)
        if position is not None and position[0] in record.formats and position[1] < plan.n_shards \
                and shard_name(position[1], position[0]) == name:
            out.append(name)
    return out


def repair(url: str, *, workers: int | None = None, storage_options: dict[str, Any] | None = None,
           depth_options: dict[str, Any] | None = None, progress: bool | None = None
           ) -> tuple[VerifyReport, BuildResult, VerifyReport]:
    """Verify, rebuild what is broken, verify again. Returns (before, build result, after)."""
    before = verify(url, storage_options=storage_options)
    _recover_record(url, storage_options)
    _distrust(url, storage_options, before)
    result = build(url, None, workers=workers, storage_options=storage_options, depth_options=depth_options,
                   progress=progress)
    after = verify(url, storage_options=storage_options)
    return before, result, after
