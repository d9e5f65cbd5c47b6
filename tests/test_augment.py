"""mixup_cutmix / random_erasing against the timm semantics they reproduce, all under jit."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import augment

B, H, W, C, K = 4, 16, 12, 3, 10


def _batch(seed: int = 0, shape: tuple[int, ...] = (B, H, W, C)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, np.float32)  # numpy: no compile


def _targets() -> np.ndarray:
    """Smoothed one-hot (s = 0.1) of distinct labels 0..B-1."""
    return np.full((B, K), 0.01, np.float32) + 0.9 * np.eye(B, K, dtype=np.float32)


def _rect(changed: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of a bool [H, W] that must be exactly one filled rectangle."""
    if not changed.any():
        return None
    ys, xs = np.nonzero(changed)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    expected = np.zeros_like(changed)
    expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(changed, expected)
    return int(y0), int(y1), int(x0), int(x1)


@functools.cache  # one compilation per configuration across tests
def _mix(**kwargs):
    return jax.jit(functools.partial(augment.mixup_cutmix, **kwargs))


def test_smooth_targets():
    s, labels = 0.1, jnp.array([3, 0, 9])
    t = np.asarray(jax.jit(augment.smooth_targets, static_argnums=(1, 2))(labels, K, s))
    assert t.shape == (3, K) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    for row, y in zip(t, [3, 0, 9]):
        np.testing.assert_allclose(row[y], 1 - s + s / K, rtol=1e-6)
        np.testing.assert_allclose(np.delete(row, y), s / K, rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_mixup_is_a_convex_mixture_with_the_flipped_batch(seed):
    x, t = _batch(seed), _targets()
    out, t_out, info = _mix(switch_prob=0.0)(jax.random.key(seed), x, t)
    lam = float(info["lam"])
    assert not bool(info["cutmix"]) and 0.0 < lam < 1.0
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t_out, lam * t + (1 - lam) * t[::-1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(t_out.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_pastes_one_box_of_the_flipped_batch(seed):
    x, t = _batch(seed), _targets()
    out, t_out, info = _mix(switch_prob=1.0)(jax.random.key(seed), x, t)
    x, out, lam = np.asarray(x), np.asarray(out), float(info["lam"])
    assert bool(info["cutmix"])
    changed = (out != x).any(-1)  # [B, H, W]; rows i and B-1-i differ everywhere
    for row in changed[1:]:
        np.testing.assert_array_equal(row, changed[0])  # one box for the whole batch
    box = _rect(changed[0])
    area = 0 if box is None else (box[1] - box[0]) * (box[3] - box[2])
    np.testing.assert_allclose(1 - lam, area / (H * W), rtol=1e-6, atol=1e-7)  # correct_lam
    np.testing.assert_array_equal(out[:, changed[0]], x[::-1][:, changed[0]])
    np.testing.assert_array_equal(out[:, ~changed[0]], x[:, ~changed[0]])
    # label weights: own label lam (+ smoothing), partner's 1 - lam
    labels = np.arange(B)
    own = np.asarray(t_out)[labels, labels]
    np.testing.assert_allclose(own, lam * (0.9 + 0.01) + (1 - lam) * 0.01, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(t_out).sum(1), 1.0, rtol=1e-5)


def test_cutmix_box_size_follows_rand_bbox():
    """Without correction lam is the Beta draw; an unclipped box spans cy -/+ cut // 2 with
    cut = int(side * sqrt(1 - lam)) (timm `rand_bbox`), so a clipped one is no larger."""
    x, t = _batch(), _targets()
    mix = _mix(switch_prob=1.0, correct_lam=False)
    seen_full = 0
    for seed in range(20):
        out, t_out, info = mix(jax.random.key(seed), x, t)
        lam = float(info["lam"])
        np.testing.assert_allclose(t_out, lam * t + (1 - lam) * t[::-1], rtol=1e-5, atol=1e-7)
        box = _rect(np.asarray((out != x).any(-1))[0])
        full_h = 2 * (int(H * math.sqrt(1 - lam)) // 2)
        full_w = 2 * (int(W * math.sqrt(1 - lam)) // 2)
        if box is None:
            assert full_h == 0 or full_w == 0  # a box with both halves > 0 keeps its centre
            continue
        y0, y1, x0, x1 = box
        assert y1 - y0 <= full_h and x1 - x0 <= full_w
        assert y1 - y0 == full_h or y0 == 0 or y1 == H
        assert x1 - x0 == full_w or x0 == 0 or x1 == W
        seen_full += y1 - y0 == full_h and x1 - x0 == full_w
    assert seen_full > 0


def test_cutmix_on_clips_uses_the_same_box_in_every_frame():
    x = _batch(shape=(B, 5, H, W, C))
    out, _, info = _mix(switch_prob=1.0)(jax.random.key(1), x, _targets())
    assert bool(info["cutmix"])
    changed = np.asarray((out != x).any(-1))  # [B, T, H, W]
    assert changed.any()
    np.testing.assert_array_equal(changed, np.broadcast_to(changed[0, 0], changed.shape))
    _rect(changed[0, 0])
    np.testing.assert_allclose(1 - float(info["lam"]), changed[0, 0].mean(), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "expect_cutmix"),
    [
        ({"switch_prob": 0.0}, False),
        ({"switch_prob": 1.0}, True),
        ({"cutmix_alpha": 0.0, "switch_prob": 1.0}, False),  # mixup only
        ({"mixup_alpha": 0.0, "switch_prob": 0.0}, True),  # cutmix only
    ],
)
def test_choice_of_mixup_or_cutmix(kwargs, expect_cutmix):
    x, t = _batch(), _targets()
    keys = jax.random.split(jax.random.key(0), 16)
    _, _, info = jax.vmap(_mix(**kwargs), in_axes=(0, None, None))(keys, x, t)
    assert (np.asarray(info["cutmix"]) == expect_cutmix).all()
    assert (np.asarray(info["lam"]) < 1.0).any()


def test_switch_prob_half_picks_both_and_mixup_lam_follows_beta():
    keys = jax.random.split(jax.random.key(0), 400)
    _, _, info = jax.vmap(_mix(), in_axes=(0, None, None))(keys, _batch(), _targets())
    cut, lam = np.asarray(info["cutmix"]), np.asarray(info["lam"])
    assert 0.4 < cut.mean() < 0.6
    assert abs(lam[~cut].mean() - 0.5) < 0.05  # Beta(0.8, 0.8) is symmetric about 1/2
    assert ((lam > 0) & (lam <= 1)).all()


@pytest.mark.parametrize("seed", range(3))
def test_prob_zero_is_identity(seed):
    x, t = _batch(seed), _targets()
    out, t_out, info = _mix(prob=0.0)(jax.random.key(seed), x, t)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(t_out, t)
    assert float(info["lam"]) == 1.0 and not bool(info["cutmix"])


def test_mixup_cutmix_rejects_no_alpha_and_odd_batches():
    with pytest.raises(ValueError, match="alpha"):
        augment.mixup_cutmix(jax.random.key(0), _batch(), _targets(), 0.0, 0.0)
    with pytest.raises(ValueError, match="even"):
        augment.mixup_cutmix(jax.random.key(0), _batch()[:3], _targets()[:3])


@functools.cache
def _erase(**kwargs):
    return jax.jit(functools.partial(augment.random_erasing, **kwargs))


def test_random_erasing_prob_zero_is_identity():
    x = _batch()
    np.testing.assert_array_equal(_erase(prob=0.0)(jax.random.key(0), x), x)


def test_random_erasing_one_box_per_image_within_bounds():
    n, side = 16, 32
    x = np.full((n, side, side, C), 5.0)
    out = np.asarray(_erase(prob=1.0)(jax.random.key(3), x))
    boxes = []
    for img in out:
        box = _rect((img != 5.0).any(-1))
        assert box is not None  # 10 tries virtually always find a box here
        y0, y1, x0, x1 = box
        h, w = y1 - y0, x1 - x0
        # h = round(sqrt(a r)), w = round(sqrt(a / r)): bounds up to the rounding
        assert (h + 0.5) * (w + 0.5) >= 0.02 * side * side
        assert (h - 0.5) * (w - 0.5) <= side * side / 3
        assert 0.3 <= (h + 0.5) / (w - 0.5) and (h - 0.5) / (w + 0.5) <= 1 / 0.3
        assert h < side and w < side
        boxes.append(box)
        noise = img[y0:y1, x0:x1]
        assert abs(noise.mean()) < 0.5 and 0.6 < noise.std() < 1.4  # per-pixel N(0, 1)
    assert len(set(boxes)) > n // 2


def test_random_erasing_is_deterministic_per_key():
    x, erase = _batch(), _erase(prob=1.0)
    a, b = erase(jax.random.key(7), x), erase(jax.random.key(7), x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, erase(jax.random.key(8), x))


def test_random_erasing_prob_is_per_image():
    x = np.full((64, 8, 8, 1), 5.0)
    out = np.asarray(_erase(prob=0.5)(jax.random.key(0), x))
    erased = (out != 5.0).any((1, 2, 3))
    assert 16 < erased.sum() < 48


@pytest.mark.parametrize("mode", ["rand", "const"])
def test_random_erasing_fill_modes(mode):
    x = np.full((8, H, W, C), 5.0)
    out = np.asarray(_erase(prob=1.0, mode=mode)(jax.random.key(0), x))
    for img in out:
        changed = (img != 5.0).any(-1)
        y0, y1, x0, x1 = _rect(changed)
        region = img[y0:y1, x0:x1]  # [h, w, C]
        np.testing.assert_array_equal(region, np.broadcast_to(region[:1, :1], region.shape))
        if mode == "const":
            np.testing.assert_array_equal(region, 0.0)
        else:
            assert len(set(region[0, 0].tolist())) == C  # one value per channel


def test_random_erasing_without_a_valid_try_leaves_the_image():
    # every try asks for round(sqrt(0.99 * 32 * 32)) = 32 = the side: never valid
    x = _batch(shape=(B, 32, 32, C))
    erase = _erase(prob=1.0, min_area=0.99, max_area=0.99, log_ratio=(0.0, 0.0))
    np.testing.assert_array_equal(erase(jax.random.key(0), x), x)


def test_random_erasing_on_clips_shares_the_box_but_not_the_noise_across_frames():
    # VideoMAE: timm RandomErasing(cube=True) on a [T, C, H, W] clip, one box per clip
    x = np.full((6, 4, H, W, C), 5.0)
    out = np.asarray(_erase(prob=1.0)(jax.random.key(0), x))
    assert out.shape == x.shape
    boxes = [{_rect((frame != 5.0).any(-1)) for frame in clip} for clip in out]
    assert all(len(b) == 1 for b in boxes)  # every frame of a clip: the same box
    assert len({next(iter(b)) for b in boxes}) > 1  # clips: their own boxes
    erased = out[0][:, (out[0, 0] != 5.0).any(-1)]  # [T, pixels, C]
    assert not np.allclose(erased[0], erased[1])  # noise drawn per frame


def test_random_erasing_rejects_unknown_mode():
    with pytest.raises(ValueError):
        augment.random_erasing(jax.random.key(0), _batch(), mode="nope")
