import numpy as np

from fgbg.builder.resize import attach_mask, fit_box, resize_rgb, resize_rgba


def test_premultiplied_resize_has_no_dark_halo() -> None:
    # A red disc on fully transparent *black*: straight-alpha resizing bleeds black into the edge.
    yy, xx = np.mgrid[0:200, 0:200]
    inside = (yy - 100) ** 2 + (xx - 100) ** 2 < 80**2
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[inside] = (255, 0, 0, 255)
    small = resize_rgba(rgba, 37, 29)
    edge = (small[..., 3] > 0) & (small[..., 3] < 255)
    assert edge.sum() > 10
    assert (small[edge, 0] >= 250).all() and (small[edge, 1:3] == 0).all()
    naive = resize_rgb(np.ascontiguousarray(rgba[..., :3]), 37, 29)
    assert naive[edge, 0].min() < 200  # what the halo would have been


def test_resize_identity_and_shapes() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (7, 9, 4), dtype=np.uint8)
    assert np.array_equal(resize_rgba(rgba, 9, 7), rgba)
    assert resize_rgba(rgba, 20, 15).shape == (15, 20, 4)
    assert resize_rgb(rgba[..., :3].copy(), 4, 3).shape == (3, 4, 3)


def test_fit_box() -> None:
    assert fit_box(200, 100, 100, 70, keep_aspect=False) == (100, 70)
    assert fit_box(200, 100, 100, 70, keep_aspect=True) == (100, 50)
    assert fit_box(100, 200, 100, 70, keep_aspect=True) == (35, 70)


def test_attach_mask() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    mask = np.full((2, 2, 3), 9, np.uint8)
    assert attach_mask(rgb, mask)[..., 3].tolist() == [[9, 9], [9, 9]]
