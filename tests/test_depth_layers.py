"""``builder/depth/layers.py``: layered maps painted from a background's prediction, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest

from fgbg.builder.depth import DepthBatch, to_seed_uint8
from fgbg.builder.depth.layers import LayeredDepth, feet_pixel, model_output, paint, person_labels
from fgbg.builder.depth.presets import stretch
from fgbg.readers.schema import DepthSource


def test_feet_are_the_bottom_centre_of_the_box_in_depth_pixels() -> None:
    # 224 composite, 112 map: row y+h-1/2 and column x+w/2, halved and rounded down
    assert feet_pixel((10, 20, 30, 40), (224, 224), (112, 112)) == ((2 * 60 - 1) * 112 // 448, (20 + 30) * 112 // 448)
    assert feet_pixel((10, 20, 30, 40), (224, 224), (112, 112)) == (29, 12)
    # a box reaching the bottom and right edges stands on the last row and column, no clamping
    assert feet_pixel((124, 124, 100, 100), (224, 224), (112, 112)) == (111, 87)
    assert feet_pixel((223, 223, 1, 1), (224, 224), (112, 112)) == (111, 111)
    assert feet_pixel((0, 0, 1, 1), (224, 224), (112, 112)) == (0, 0)
    # other depth sizes: the same rule
    assert feet_pixel((0, 0, 64, 64), (64, 64), (7, 5)) == (4, 3)


def test_labels_follow_the_plane_rule_and_paint_order() -> None:
    far = np.zeros((8, 8), np.uint8)
    far[2:8, 0:4] = 255
    near = np.zeros((8, 8), np.uint8)
    near[4:8, 2:6] = 255
    labels = person_labels([far, near], (4, 4))  # 2x2 blocks, area-resized, > 127
    assert labels.tolist() == [[-1, -1, -1, -1], [0, 0, -1, -1], [0, 1, 1, -1], [0, 1, 1, -1]]
    edge = np.zeros((8, 8), np.uint8)
    edge[0:1, 0:2] = 255  # half of a 2x2 block: OpenCV rounds 127.5 up to 128 -> a person pixel
    edge[0:1, 2:3] = 255  # a quarter: 64 -> not
    assert person_labels([edge], (4, 4))[0].tolist() == [0, -1, -1, -1]


def test_paint_sets_each_person_to_the_background_at_its_feet() -> None:
    background = np.arange(16, dtype=np.float32).reshape(4, 4) + 1.0  # value = 4*row + col + 1
    labels = np.array([[-1, -1, -1, -1], [0, 0, -1, -1], [0, 1, 1, -1], [0, 1, 1, -1]])
    boxes = [(0, 2, 4, 6), (2, 4, 4, 4)]  # feet: (3, 1) and (3, 2) on a 4x4 map of an 8x8 frame
    out = paint(background, boxes, labels, (8, 8))
    want = background.astype(np.float64)
    want[labels == 0] = 14.0  # background[3, 1]
    want[labels == 1] = 15.0  # background[3, 2]
    assert out.dtype == np.float64 and np.array_equal(out, want)
    assert np.array_equal(paint(background, [], np.full((4, 4), -1), (8, 8)), background.astype(np.float64))


def _source() -> DepthSource:
    return DepthSource(backend="onnx", size=[4, 4])


def test_layered_backend_stretches_as_the_model_does() -> None:
    rng = np.random.default_rng(0)
    predictions = [rng.uniform(0.5, 9.0, (4, 4)).astype(np.float32) for _ in range(3)]
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 2:8, 0:4] = 255
    masks[1, 0:2, 6:8] = 255
    boxes = np.array([[0, 2, 4, 6], [6, 0, 2, 2]])
    for output in ("metric", "inverse"):
        backend = LayeredDepth((4, 4), _source(), output, predictions, (8, 8))
        got = backend.predict(DepthBatch(np.empty((2, 0, 0, 3), np.uint8), masks, boxes,
                                         backgrounds=np.array([2, 0])))
        want = []
        for j, b in enumerate((2, 0)):
            values = predictions[b].astype(np.float64)
            labels = person_labels([masks[j]], (4, 4))
            row, col = feet_pixel(tuple(boxes[j]), (8, 8), (4, 4))  # type: ignore[arg-type]
            values[labels == 0] = values[row, col]
            want.append(values)
        stack = np.stack(want)
        expected = to_seed_uint8(stack) if output == "metric" else np.rint(
            255 * (stack.max(axis=(1, 2), keepdims=True) - stack)
            / (stack.max(axis=(1, 2), keepdims=True) - stack.min(axis=(1, 2), keepdims=True))).astype(np.uint8)
        assert np.array_equal(got, expected)
        assert np.array_equal(got, stretch(stack, output))
        assert np.array_equal(backend.paint_one(2, [(0, 2, 4, 6)], [masks[0]]), got[0])
        assert backend.describe() == _source()


def test_layered_backend_paints_nearer_people_over_farther_ones() -> None:
    background = np.arange(16, dtype=np.float32).reshape(4, 4)
    ids = np.zeros((8, 8), np.uint8)
    ids[2:8, 0:4] = 1  # farther person (paint order 1)
    ids[4:8, 2:6] = 2  # nearer person covers it where they overlap
    boxes = np.array([[0, 2, 4, 6], [2, 4, 4, 4]])
    backend = LayeredDepth((4, 4), _source(), "metric", [background], (8, 8))
    got = backend.predict(DepthBatch(np.empty((1, 0, 0, 3), np.uint8), (ids > 0).astype(np.uint8) * 255,
                                     boxes[:1], [(boxes, ids)], np.array([0])))
    values = background.astype(np.float64)
    values[[1, 2, 3, 1], [0, 0, 0, 1]] = 13.0  # far person's blocks: background[3, 1]
    values[[2, 2, 3, 3], [1, 2, 1, 2]] = 14.0  # near person's: background[3, 2]
    assert np.array_equal(got[0], to_seed_uint8(values[None])[0])


def test_model_output_and_bad_settings() -> None:
    assert model_output("densedepth", None, None) == "metric"
    assert model_output("onnx", "midas-v21-small", None) == "inverse"
    assert model_output("onnx", "densedepth", None) == "metric"
    assert model_output("onnx", "custom:layout=nchw,norm=unit,output=metric,resize=area", (32, 32)) == "metric"
    with pytest.raises(ValueError, match="needs a learned depth backend"):
        model_output("plane", None, None)
    with pytest.raises(ValueError, match="output must be one of"):
        LayeredDepth((4, 4), _source(), "disparity", [], (8, 8))
    with pytest.raises(ValueError, match="background index"):
        LayeredDepth((4, 4), _source(), "metric", [], (8, 8)).predict(
            DepthBatch(np.empty((1, 0, 0, 3), np.uint8), np.zeros((1, 8, 8), np.uint8), np.zeros((1, 4), np.int64)))


@pytest.mark.parametrize("output", ["metric", "inverse"])
def test_fast_painting_is_bit_for_bit_the_definition(output: str) -> None:
    """paint_one reuses each background's 8-bit map unless people hide all of its nearest or
    farthest pixels; either way it must equal stretch(paint(...)) exactly."""
    rng = np.random.default_rng(7)
    backgrounds = [rng.uniform(0.05, 12.0, (6, 6)).astype(np.float32) for _ in range(40)]
    backgrounds[0][:] = 2.0  # flat
    backgrounds[1][5, 2] = 0.01  # the single nearest pixel, under the first person's feet below
    backgrounds[2][3:6, 0:3] = 20.0  # the farthest pixels, all covered by the first person
    backend = LayeredDepth((6, 6), _source(), output, backgrounds, (12, 12))
    slow_paths = 0
    for b in range(40):
        for _ in range(5):
            k = int(rng.integers(0, 3))
            boxes, layers = [], []
            for _ in range(k):
                x, y = int(rng.integers(0, 8)), int(rng.integers(0, 8))
                w, h = int(rng.integers(1, 13 - x)), int(rng.integers(1, 13 - y))
                layer = np.zeros((12, 12), np.uint8)
                layer[y:y + h, x:x + w] = 255
                boxes.append((x, y, w, h))
                layers.append(layer)
            if b in (1, 2):
                boxes, layers = [(0, 6, 6, 6)], [np.pad(np.full((6, 6), 255, np.uint8), ((6, 0), (0, 6)))]
            labels = person_labels(layers, (6, 6))
            want = stretch(paint(backgrounds[b], boxes, labels, (12, 12))[None], output)[0]
            assert np.array_equal(backend.paint_one(b, boxes, layers), want), (b, boxes)
            plain = backend._plain(b)
            slow_paths += bool(boxes) and bool((labels >= 0)[plain.lowest].all() or (labels >= 0)[plain.highest].all())
    assert slow_paths >= 2  # the covered-extreme cases took the general path


@pytest.mark.parametrize("output", ["metric", "inverse"])
def test_batch_painting_is_paint_one(output: str) -> None:
    """predict() paints a one-person batch at once; every map must be paint_one's, including
    the images whose person hides all of its background's nearest or farthest pixels."""
    rng = np.random.default_rng(3)
    backgrounds = [rng.uniform(0.5, 9.0, (6, 8)).astype(np.float32) for _ in range(6)]  # none clipped
    backgrounds[0][5, 2:4] = 0.2  # the nearest pixels, low in the frame: a person there hides them all
    backgrounds[1][:] = 3.0  # flat
    backend = LayeredDepth((8, 6), _source(), output, backgrounds, (16, 12))
    n = 64
    masks = np.zeros((n, 12, 16), np.uint8)
    boxes = np.zeros((n, 4), np.int64)
    for j in range(n):
        x, y = int(rng.integers(0, 12)), int(rng.integers(0, 9))
        w, h = int(rng.integers(1, 17 - x)), int(rng.integers(1, 13 - y))
        if j % 8 == 0:
            x, y, w, h = 2, 8, 8, 4  # covers background 0's nearest pixels
        masks[j, y:y + h, x:x + w] = 255
        boxes[j] = (x, y, w, h)
    bgs = rng.integers(0, 6, n).astype(np.int64)
    bgs[::8] = 0
    got = backend.predict(DepthBatch(np.empty((n, 0, 0, 3), np.uint8), masks, boxes, backgrounds=bgs))
    for j in range(n):
        want = backend.paint_one(int(bgs[j]), [tuple(int(v) for v in boxes[j])], [masks[j]])  # type: ignore[list-item]
        assert np.array_equal(got[j], want), j
    plain = backend._plain(0)
    assert (np.stack([m[::2, ::2] for m in masks[::8]]) > 127).reshape(8, -1)[:, plain.lowest_at].all()
