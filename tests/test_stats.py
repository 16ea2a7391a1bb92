import numpy as np

from fgbg.builder.stats import PixelSums, region_sums


def test_sums_merge_and_match_bruteforce() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (13, 17, 3), dtype=np.uint8) for _ in range(9)]
    a, b = PixelSums(3), PixelSums(3)
    for img in images[:4]:
        a.add_pixels(img)
    for img in images[4:]:
        b.add_pixels(img)
    merged = PixelSums.from_record(a.record())
    merged.merge(b)
    allpix = np.stack(images).reshape(-1, 3).astype(np.float64) / 255
    ms = merged.mean_std()
    assert np.allclose(ms["mean"], allpix.mean(0), atol=1e-13, rtol=0)
    assert np.allclose(ms["std"], allpix.std(0), atol=1e-13, rtol=0)


def test_region_sums_gray_and_empty() -> None:
    g = np.array([[1, 2], [3, 4]], np.uint8)
    s, q = region_sums(g)
    assert s.tolist() == [10] and q.tolist() == [30]
    assert PixelSums(1).mean_std() == {"mean": [0.0], "std": [0.0]}


def test_exact_for_large_counts() -> None:
    # 400k 224x224 composites of 255: sums beyond float64's exact range of products still exact.
    s = PixelSums(1)
    n = 400_000 * 224 * 224
    s.add(n, np.array([255 * n], dtype=object), np.array([255 * 255 * n], dtype=object))
    assert s.mean_std() == {"mean": [1.0], "std": [0.0]}


def test_float_sums_exact() -> None:
    from fgbg.builder.stats import float_sums

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    for x, y, w, h in ((0, 0, 224, 224), (13, 40, 100, 70), (223, 223, 1, 1)):
        s, q = float_sums(img[y : y + h, x : x + w], 3)
        rs, rq = region_sums(img[y : y + h, x : x + w])
        assert s.tolist() == rs.tolist() and q.tolist() == rq.tolist()
    depth = rng.integers(0, 256, (32, 112, 112), dtype=np.uint8)
    s, q = float_sums(depth, 1)
    rs, rq = region_sums(depth.reshape(-1, 112))
    assert int(s[0]) == int(rs.sum()) and int(q[0]) == int(rq.sum())



def test_opencv_sums_exact_on_views_and_large_regions() -> None:
    from fgbg.builder.stats import opencv_sums, square_table

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    sq = square_table(img)
    assert sq.dtype == np.uint16 and int(sq.max()) == int(img.max()) ** 2
    for _ in range(50):
        h, w = int(rng.integers(1, 224)), int(rng.integers(1, 224))
        y, x = int(rng.integers(0, 225 - h)), int(rng.integers(0, 225 - w))
        rs, rq = region_sums(img[y : y + h, x : x + w])
        for s, q in (opencv_sums(img[y : y + h, x : x + w]), opencv_sums(img[y : y + h, x : x + w],
                                                                          sq[y : y + h, x : x + w])):
            assert [int(v) for v in s[:3]] == rs.tolist() and [int(v) for v in q[:3]] == rq.tolist()
    full = np.full((3000, 3000, 4), 255, np.uint8)  # 9 million pixels at the top value, 4 channels
    s, q = opencv_sums(full)
    assert [int(v) for v in s] == [255 * 9_000_000] * 4 and [int(v) for v in q] == [255 * 255 * 9_000_000] * 4
