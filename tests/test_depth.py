import numpy as np
import pytest

from fgbg.builder.depth import DepthBatch, make_backend, to_seed_uint8
from fgbg.builder.depth.plane import HORIZON, WALL_M, PlaneDepth, floor_depth
from fgbg.builder.errors import FgbgError


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
    assert backend is not None and backend.describe().backend == "plane" and not backend.needs_pixels
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


def test_plane_fast_path_equals_full_map_post_processing() -> None:
    """predict() post-processes only the distinct values; it must equal to_seed_uint8 on full maps."""
    import cv2

    rng = np.random.default_rng(0)
    n = 40
    masks = np.zeros((n, 224, 224), np.uint8)
    boxes = []
    for i in range(n):
        w, h = int(rng.integers(20, 224)), int(rng.integers(20, 224))
        x, y = int(rng.integers(0, 225 - w)), int(rng.integers(0, 225 - h))
        masks[i, y : y + h, x : x + w] = 255 * (rng.random((h, w)) > 0.3)
        boxes.append((x, y, w, h))
    masks[0], boxes[0] = 255, (0, 0, 224, 224)  # a person covering every row
    masks[1], boxes[1] = 0, (0, 0, 10, 10)  # an empty mask
    got = PlaneDepth((112, 112)).predict(DepthBatch(np.zeros((n, 224, 224, 3), np.uint8), masks, np.array(boxes)))
    rows = (np.arange(112, dtype=np.float64) + 0.5) * 2
    scene = np.repeat(floor_depth(rows, 224)[:, None], 112, axis=1)
    full = np.stack([np.where(cv2.resize(masks[i], (112, 112), interpolation=cv2.INTER_AREA) > 127,
                              floor_depth(np.array([float(boxes[i][1] + boxes[i][3])]), 224)[0], scene)
                     for i in range(n)])
    assert np.array_equal(got, to_seed_uint8(full))
