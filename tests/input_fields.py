"""What the tests of the fields made from the stored inputs (``background``, ``foreground``)
share: every access path gives a sample the same value, reads of ``inputs/`` counted, the
values batched by PyTorch DataLoader workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fgbg.readers import open_dataset
from fgbg.readers.fs import Location


def every_access_path(path: Path, field: str) -> dict[str, Any]:
    """Each sample's ``field`` by key, read in key order, once proven the same from ``ds[i]``,
    ``get_many`` (repeats too), a rank's shuffled stream and ``check=True``; a sample's array
    is its own (writing to it changes no other sample's)."""
    want = {s["key"]: s[field] for s in open_dataset(path, fields=(field,))}
    d = open_dataset(path, fields=("mask", field))
    assert set(d[7]) == {"key", "mask", field}  # meta read for it, not handed out
    assert np.array_equal(d[7][field], want["00000007"])
    assert [np.array_equal(s[field], want[s["key"]]) for s in d.get_many([9, 2, 9])] == [True] * 3
    streamed = list(d.stream(shuffle=True, seed=4, rank=1, world=2))
    assert streamed and all(np.array_equal(s[field], want[s["key"]]) for s in streamed)
    checked = open_dataset(path, fields=(field,), check=True)  # digests proven, the field too
    assert np.array_equal(checked[7][field], want["00000007"])
    a, b = d[7][field], d[7][field]
    a[:] = 0
    assert np.array_equal(b, want["00000007"])  # each sample its own array: the cache is never written
    return want


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file a :class:`Location` reads from now on, by dataset path, in order."""
    reads: list[str] = []
    real = Location.read_bytes

    def counted(self: Location, rel: str, limit: int = 1 << 28) -> bytes:
        reads.append(rel)
        return real(self, rel, limit)

    monkeypatch.setattr(Location, "read_bytes", counted)
    return reads


def loader_batches(path: Path, field: str, shape: tuple[int, ...]) -> int:
    """Batches of ``field`` (with ``image``) from two DataLoader workers: each of ``shape``,
    each sample's value the one a plain read gives; returns how many samples came."""
    torch = pytest.importorskip("torch")
    want = {int(s["key"]): s[field] for s in open_dataset(path, fields=(field,))}
    data = open_dataset(path, fields=("image", field)).torch_dataset(shuffle=True)
    got = 0
    for batch in torch.utils.data.DataLoader(data, batch_size=8, num_workers=2):
        assert tuple(batch[field].shape[1:]) == shape
        for i, value in zip(batch["index"].tolist(), batch[field].numpy(), strict=True):
            assert np.array_equal(value, want[i])
            got += 1
    return got
