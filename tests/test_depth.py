import numpy as np
import pytest

from builder.depth import DepthBatch, make_backend, to_seed_uint8
from builder.depth.plane import HORIZON, WALL_M, floor_depth
from builder.errors import FgbgError


def test_seed_postprocessing_minmax() -> None:
    d = np.array([[[0.05, 1.0], [5.0, 20.0]]])  # metres; clipped to 0.1..10 m
    out = to_seed_uint8(d)
    # 0.05 m -> clip 0.01; 1 m -> 0.1; 5 m -> 0.5; 20 m -> clip 1.0; then min-max
    expected = np.rint((np.array([0.01, 0.1, 0.5, 1.0]) - 0.01) / 0.99 * 255).reshape(1, 2, 2)
    assert np.array_equal(out, expected.astype(np.uint8))
    assert to_seed_uint8(np.full((1, 3, 3), 2.0)).max() == 0  # flat map stays defined


def test_floor_model_monotone() -> None:
    rows = np.arange(224, dtype=float)
    d = floor_depth(rows, 224)
    assert (np.diff(d) <= 1e-12).all() and d[0] == WALL_M and d[-1] < 2.0
    assert HORIZON < 0.55


def test_plane_backend_person_at_foot_depth() -> None:
    backend = make_backend("plane", (112, 112))
    assert backend is not None and backend.describe()["backend"] == "plane" and not backend.needs_pixels
    masks = np.zeros((2, 224, 224), np.uint8)
    masks[0, 150:220, 50:150] = 255  # standing near the camera
    masks[1, 130:200, 50:150] = 255  # standing further back
    boxes = np.array([[50, 150, 100, 70], [50, 130, 100, 70]])
    out = backend.predict(DepthBatch(np.zeros((2, 224, 224, 3), np.uint8), masks, boxes))
    assert out.shape == (2, 112, 112) and out.dtype == np.uint8
    assert out[0, 0].min() == 255  # the wall is the farthest
    person0 = out[0, 80:105, 30:70]
    assert person0.min() == person0.max()  # an upright plane: one depth
    assert out[1, 70:95, 30:70].max() > person0.max()  # further back = brighter
    assert out[0, 111, 0] < out[0, 80, 0]  # floor: bottom nearer than higher rows


def test_unknown_and_none() -> None:
    assert make_backend("none", (112, 112)) is None
    with pytest.raises(FgbgError, match="unknown depth backend 'magic'"):
        make_backend("magic", (1, 1))
