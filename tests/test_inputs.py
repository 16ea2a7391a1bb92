"""builder/inputs.py: the dataset's stored inputs, read lazily, hash-checked, in a bounded LRU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.errors import FgbgError
from fgbg.builder.inputs import StoredImages, load_inputs
from fgbg.builder.manifest import read_record
from fgbg.builder.storage import LocalStore


@pytest.fixture()
def store(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> LocalStore:
    build(tmp_path / "ds", BuildConfig(placements=1, shard_size=18), *demo_inputs, progress=False, workers=1)
    return LocalStore(tmp_path / "ds")


def test_lazy_bounded_and_equal_to_the_files(store: LocalStore) -> None:
    records = read_record(store).inputs
    images = StoredImages(store, records.bg, capacity=2)
    assert len(images) == 3 and not images._cache  # nothing read until used
    first = images[0]
    assert first.shape == (224, 224, 3) and not first.flags.writeable  # shared: read-only
    assert [np.array_equal(images[i], images[i]) for i in range(3)] == [True] * 3
    assert len(images._cache) == 2 and list(images._cache) == [1, 2]  # least recently used went first
    assert np.array_equal(images[0], first) and len(images[:]) == 3
    inputs = load_inputs(store, records)
    assert len(inputs.bg) == 3 and len(inputs.fg) == 3 and inputs.fg[1].shape[2] == 4


def test_a_changed_input_is_an_error_when_read(store: LocalStore) -> None:
    records = read_record(store).inputs
    path = store.root / str(records.bg[1].file)
    path.write_bytes(path.read_bytes() + b"\0")
    images = StoredImages(store, records.bg)
    assert images[0].shape == (224, 224, 3)  # the others stay usable
    with pytest.raises(FgbgError, match=r"inputs/bg/0001.png: stored input does not match its recorded sha256"):
        images[1]
    path.unlink()
    with pytest.raises(FgbgError, match=r"inputs/bg/0001.png: stored input is missing"):
        StoredImages(store, records.bg)[1]
