"""``builder/depth/stored.py``: background predictions as ``.npy`` inputs, exact and strictly read."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from fgbg.builder.depth.stored import StoredPredictions, decode_prediction, depth_file, encode_prediction
from fgbg.builder.errors import FgbgError
from fgbg.builder.storage import LocalStore
from fgbg.readers.schema import InputEntry


def test_round_trip_is_exact_float32_npy() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, (5, 7))
    data = encode_prediction(values)
    assert data == encode_prediction(values)  # deterministic bytes
    assert np.array_equal(np.load(io.BytesIO(data), allow_pickle=False), values.astype(np.float32))
    got = decode_prediction(data, (7, 5), "x.npy")
    assert got.dtype == np.float32 and got.shape == (5, 7) and np.array_equal(got, values.astype(np.float32))
    assert len(data) == 128 + 5 * 7 * 4  # the 1.0 header, then the values
    assert depth_file(7) == "inputs/bg_depth/0007.npy"


@pytest.mark.parametrize(("data", "message"), [
    (b"not an npy file", "x.npy: not a depth prediction"),
    (encode_prediction(np.zeros((5, 6))), r"x.npy: holds a float32 array of shape \(5, 6\); expected float32 of "
                                          r"shape \(5, 7\)"),
    (encode_prediction(np.zeros((5, 7)))[:-4], "x.npy: holds 136 bytes of values, expected 140"),
    (encode_prediction(np.full((5, 7), np.inf)), "x.npy: holds values that are not finite"),
])
def test_bad_files_are_refused_naming_them(data: bytes, message: str) -> None:
    with pytest.raises(FgbgError, match=message):
        decode_prediction(data, (7, 5), "x.npy")


def test_other_dtypes_and_pickles_are_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((5, 7), np.float64))
    with pytest.raises(FgbgError, match="holds a float64 array"):
        decode_prediction(buf.getvalue(), (7, 5), "x.npy")
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FgbgError, match=r"x\.npy: holds a object array"):
        decode_prediction(buf.getvalue(), (7, 5), "x.npy")


def _store(tmp_path: Path, values: np.ndarray) -> tuple[LocalStore, InputEntry]:
    data = encode_prediction(values)
    (tmp_path / "inputs" / "bg_depth").mkdir(parents=True)
    (tmp_path / depth_file(0)).write_bytes(data)
    entry = InputEntry(index=0, name="room.jpg", depth_file=depth_file(0),
                       depth_sha256=hashlib.sha256(data).hexdigest())
    return LocalStore(tmp_path), entry


def test_stored_predictions_are_checked_against_their_hash(tmp_path: Path) -> None:
    values = np.arange(35, dtype=np.float32).reshape(5, 7)
    store, entry = _store(tmp_path, values)
    stored = StoredPredictions(store, [entry], (7, 5))
    assert len(stored) == 1 and np.array_equal(stored[0], values) and not stored[0].flags.writeable
    stored.check_all()
    (tmp_path / depth_file(0)).write_bytes(encode_prediction(values + 1))
    with pytest.raises(FgbgError, match=r"inputs/bg_depth/0000.npy: stored depth prediction does not match its "
                                        "recorded sha256"):
        StoredPredictions(store, [entry], (7, 5))[0]
    (tmp_path / depth_file(0)).unlink()
    with pytest.raises(FgbgError, match=r"0000\.npy: stored depth prediction is missing"):
        StoredPredictions(store, [entry], (7, 5)).check_all()
    with pytest.raises(FgbgError, match=r"background 0 \('room.jpg'\) has no stored depth prediction"):
        StoredPredictions(store, [InputEntry(index=0, name="room.jpg")], (7, 5))[0]
