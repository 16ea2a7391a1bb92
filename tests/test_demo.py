import numpy as np

from fgbg.builder.demo import make_person, make_room, write_demo_inputs


def test_demo_is_deterministic_and_varied() -> None:
    assert np.array_equal(make_room(3), make_room(3))
    assert not np.array_equal(make_room(3), make_room(4))
    assert np.array_equal(make_person(5), make_person(5))


def test_person_alpha_is_soft_and_touches_edges() -> None:
    for seed in range(6):
        p = make_person(seed)
        a = p[..., 3]
        assert a[0].any() and a[-1].any() and a[:, 0].any() and a[:, -1].any()
        soft = ((a > 0) & (a < 255)).sum()
        assert soft > 50 and (a == 255).sum() > 1000
        assert (p[a == 0, :3] == 0).all()


def test_write_demo_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bg, fg = write_demo_inputs(tmp_path, 2, 3)
    assert sorted(p.name for p in bg.iterdir()) == ["room_000.jpg", "room_001.jpg"]
    assert len(list(fg.iterdir())) == 3
