import numpy as np

from mim_jax.data import moving_fmnist


def source(**kw):
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (20, 28, 28), dtype=np.uint8)
    return moving_fmnist.MovingFashionMNIST(images, np.arange(20) % 4, **kw)


def test_videos_are_deterministic_with_the_item_label():
    a, b = source(), source()
    for i in (0, 7, 19):
        np.testing.assert_array_equal(a[i]["video"], b[i]["video"])
        assert a[i]["label"] == i % 4
    assert a[0]["video"].shape == (32, 64, 64, 1) and a[0]["video"].dtype == np.uint8


def test_items_move_and_stay_whole_inside_the_canvas():
    s = source(max_items=1, num_frames=40)
    video = s[3]["video"][..., 0]
    item = s.images[3]
    for t in (0, 20, 39):  # the full item is somewhere in every frame
        rows, cols = np.nonzero(video[t])
        top, left = rows.min(), cols.min()
        np.testing.assert_array_equal(video[t, top : top + 28, left : left + 28], item)
    assert not np.array_equal(video[0], video[39])


def test_bounce_reflects_at_both_walls():
    path = moving_fmnist.bounce(np.array([1.0, 9.0]), np.array([-1.0, 1.0]), 4, 10.0)
    np.testing.assert_allclose(path, [[1, 9], [0, 10], [1, 9], [2, 8]])
