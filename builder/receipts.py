"""Shard receipts (``shards/NNNNNN.json``): the proof that a shard is complete.

A receipt is written only after its shard has been committed under its final name, and
holds the shard's size, sha256 and exact statistic sums. A shard counts as done only when
its receipt exists, belongs to this dataset (fingerprint) and matches the shard's bytes;
the manifest is assembled from receipts alone, without reading shards again.
"""

from __future__ import annotations

import msgspec

from fgbg.readers.errors import MetadataError
from fgbg.readers.schema import ReceiptRecord, parse_receipt

from .storage import Store

__all__ = ["Receipt", "check_shard", "load_receipt", "receipt_name", "write_receipt"]


#: A receipt is the readers' checked record: the builder writes exactly what readers parse.
Receipt = ReceiptRecord


def receipt_name(shard_rel: str) -> str:
    """``shards/000000.tar`` -> ``shards/000000.tar.json`` (one receipt per shard file)."""
    return shard_rel + ".json"


def write_receipt(store: Store, receipt: Receipt) -> None:
    data = msgspec.json.encode(receipt, order="sorted")  # compact, keys sorted: canonical
    store.write_atomic(receipt_name(receipt.name), data)


def read_receipt(store: Store, shard_rel: str, size: int | None = None) -> tuple[Receipt | None, str]:
    """The receipt of a shard, parsed and checked (with the shard's real ``size``, its count
    and offsets are held to what the file can hold); or None and why not."""
    rel = receipt_name(shard_rel)
    if not store.exists(rel):
        return None, "receipt missing"
    try:
        record = parse_receipt(store.read_metadata(rel), rel, size=size)
    except MetadataError as e:
        return None, f"receipt unreadable: {str(e).removeprefix(rel + ': ')}"
    return record, ""


def load_receipt(store: Store, shard_rel: str) -> Receipt | None:
    """The receipt of a shard, or None if absent or invalid (then the shard is redone)."""
    size = store.size(shard_rel) if store.exists(shard_rel) else None
    return read_receipt(store, shard_rel, size)[0]


def check_shard(store: Store, shard_rel: str, fingerprint: str | set[str], full_hash: bool = True) -> Receipt | None:
    """The receipt if the shard is done (receipt matches the file's size and hash), else None.

    ``fingerprint`` may be a set: a dataset grown by ``append`` accepts the shards built
    under each of its earlier records (its lineage), which are never rewritten.
    """
    accepted = {fingerprint} if isinstance(fingerprint, str) else fingerprint
    receipt = load_receipt(store, shard_rel)
    if receipt is None or receipt.fingerprint not in accepted or receipt.name != shard_rel:
        return None
    if not store.exists(shard_rel) or store.size(shard_rel) != receipt.bytes:
        return None
    if full_hash and store.sha256(shard_rel) != receipt.sha256:
        return None
    return receipt
