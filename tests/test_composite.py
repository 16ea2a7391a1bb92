import numpy as np
import pytest

from fgbg.builder.composite import blend_box, composite, div255, mask_box


def test_div255_is_exact_rounding() -> None:
    t = np.arange(255 * 255 + 1, dtype=np.uint16)
    expected = np.floor(t.astype(np.float64) / 255 + 0.5).astype(np.uint8)
    assert np.array_equal(div255(t), expected)


def test_blend_matches_straight_alpha_formula() -> None:
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    fg = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    a = fg[..., 3:4] / 255.0
    ref = np.floor(a * fg[..., :3] + (1 - a) * bg + 0.5 - 1e-9)
    assert np.abs(blend_box(bg, fg).astype(int) - ref).max() <= 1
    assert np.array_equal(blend_box(bg, fg)[fg[..., 3] == 255], fg[..., :3][fg[..., 3] == 255])
    assert np.array_equal(blend_box(bg, fg)[fg[..., 3] == 0], bg[fg[..., 3] == 0])


def test_composite_outside_box_is_background_and_mask_is_box() -> None:
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    fg = np.zeros((10, 12, 4), np.uint8)
    fg[..., :3] = 200
    fg[2:8, 3:9, 3] = 255
    fg[0, 0, 3] = 1  # faint pixel: in the mask at threshold 0, not at threshold 1
    image, mask = composite(bg, fg, x=40, y=5)
    outside = np.ones((64, 64), bool)
    outside[5:15, 40:52] = False
    assert np.array_equal(image[outside], bg[outside])
    assert set(np.unique(mask).tolist()) == {0, 255}
    ys, xs = np.nonzero(mask)
    assert (ys.min(), xs.min(), ys.max(), xs.max()) == (5, 40, 12, 48)
    _, mask1 = composite(bg, fg, x=40, y=5, threshold=1)
    assert mask1[5, 40] == 0 and mask1.sum() == 36 * 255
    _, soft = composite(bg, fg, x=40, y=5, soft=True)
    assert soft[5, 40] == 1 and soft[8, 44] == 255


def test_composite_rejects_box_outside() -> None:
    import pytest

    with pytest.raises(ValueError, match="does not fit"):
        composite(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5, 4), np.uint8), 6, 0)


def test_mask_box_threshold() -> None:
    alpha = np.array([[0, 1, 128, 255]], np.uint8)
    assert mask_box(alpha, 0, False).tolist() == [[0, 255, 255, 255]]
    assert mask_box(alpha, 128, False).tolist() == [[0, 0, 0, 255]]
    assert mask_box(alpha, 0, True).tolist() == [[0, 1, 128, 255]]


def test_prepared_composite_is_byte_identical() -> None:
    """The edge-only paste equals the full-box blend for any alpha mix and any position."""
    from fgbg.builder.composite import composite_prepared, prepare

    rng = np.random.default_rng(7)
    bg = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    fg = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    # alpha mostly 0 / 255 with a soft band, as in real cut-outs
    fg[..., 3] = rng.choice(np.array([0, 0, 255, 255, 255, 1, 128, 254], np.uint8), size=(20, 30))
    for threshold, soft in ((0, False), (100, False), (0, True)):
        p = prepare(fg, threshold, soft, canvas_width=64)
        for x, y in ((0, 0), (11, 9), (34, 28), (0, 28), (34, 0)):
            a = composite(bg, fg, x, y, threshold, soft)
            b = composite_prepared(bg, p, x, y)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert p.mask_count == int(np.count_nonzero(a[1]))
        assert p.mask_sum == int(a[1].sum(dtype=np.int64))
    for alpha in (0, 255):  # no edge at all / nothing opaque
        flat = fg.copy()
        flat[..., 3] = alpha
        p = prepare(flat, 0, False, canvas_width=64)
        assert np.array_equal(composite_prepared(bg, p, 5, 6)[0], composite(bg, flat, 5, 6)[0])


def test_prepared_checks_the_canvas() -> None:
    from fgbg.builder.composite import composite_prepared, prepare

    fg = np.full((4, 4, 4), 255, np.uint8)
    with pytest.raises(ValueError, match="canvas 32 wide, background is 40 wide"):
        composite_prepared(np.zeros((40, 40, 3), np.uint8), prepare(fg, canvas_width=32), 0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        composite_prepared(np.zeros((40, 32, 3), np.uint8), prepare(fg, canvas_width=32), 30, 0)
    with pytest.raises(ValueError, match="uint8 \\(h, w, 4\\)"):
        prepare(np.zeros((4, 4, 3), np.uint8))
