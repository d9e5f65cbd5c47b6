import numpy as np
import pytest

from mim_jax.data import transforms


def test_random_resized_crop_box_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = transforms.random_resized_crop_box(
            rng, 100, 120, (0.2, 1.0), (3 / 4, 4 / 3)
        )
        assert 0 <= top <= 100 - h and 0 <= left <= 120 - w
        # rounding of sqrt(area * ratio) allows a little slack around the sampled values
        assert 0.2 * 0.9 <= h * w / (100 * 120) <= 1.0
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_random_resized_crop_falls_back_to_a_ratio_clamped_center_crop():
    # A 10 x 200 strip: no sampled box with ratio <= 4/3 fits, torchvision's fallback
    # keeps the full height and a width of round(10 * 4/3) = 13, centred.
    rng = np.random.default_rng(0)
    assert transforms.random_resized_crop_box(rng, 10, 200, (0.9, 1.0), (3 / 4, 4 / 3)) == (
        0,
        93,
        10,
        13,
    )


def test_train_transform_outputs_uint8_of_the_requested_size():
    t = transforms.TrainTransform(size=16, channels=3, scale=(0.3, 1.0))
    image = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    out = t.random_map({"image": image, "label": 4}, np.random.default_rng(1))
    assert out["image"].shape == (16, 16, 3) and out["image"].dtype == np.uint8
    assert out["label"] == 4


def test_full_crop_without_resize_and_flip_is_identity_or_mirror():
    t = transforms.TrainTransform(size=8, channels=1, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    image = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    seen = set()
    for seed in range(20):
        out = t.random_map({"image": image, "label": 0}, np.random.default_rng(seed))["image"]
        if np.array_equal(out, image):
            seen.add("same")
        else:
            np.testing.assert_array_equal(out, image[:, ::-1])
            seen.add("flipped")
    assert seen == {"same", "flipped"}


def test_eval_transform_resizes_shorter_side_then_center_crops():
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, 200:] = 255  # right half white
    out = transforms.EvalTransform(size=224, channels=3, crop_pct=0.875).map(
        {"image": image, "label": 1}
    )
    assert out["image"].shape == (224, 224, 3)
    # 300x400 -> 256x341, crop columns 58..282: the white edge stays near the centre
    assert out["image"][:, :100].mean() < 10 and out["image"][:, 124:].mean() > 245


@pytest.mark.parametrize(
    "shape,channels,expected",
    [
        ((5, 5, 1), 3, (5, 5, 3)),
        ((5, 5, 4), 3, (5, 5, 3)),
        ((5, 5, 3), 1, (5, 5, 1)),
        ((5, 5), 1, (5, 5, 1)),
    ],
)
def test_match_channels(shape, channels, expected):
    out = transforms.match_channels(np.zeros(shape, np.uint8), channels)
    assert out.shape == expected


def test_match_channels_rejects_unknown_layouts():
    with pytest.raises(ValueError, match="2-channel"):
        transforms.match_channels(np.zeros((4, 4, 2), np.uint8), 3)
