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


class _Draws:
    """A stand-in Generator replaying fixed draws, to pin torchvision's arithmetic."""

    def __init__(self, uniforms, integers):
        self._u, self._i = list(uniforms), list(integers)
        self.calls = []

    def uniform(self, low, high):
        self.calls.append(("uniform", low, high))
        return low + self._u.pop(0) * (high - low)

    def integers(self, low, high):
        self.calls.append(("integers", low, high))
        return low + self._i.pop(0)


def test_random_resized_crop_box_for_a_fixed_draw_follows_torchvision():
    # torchvision: target_area = area * U(scale); aspect = exp(U(log ratio));
    # w = int(round(sqrt(target_area * aspect))), h = int(round(sqrt(target_area / aspect)));
    # i = randint(0, H - h + 1), j = randint(0, W - w + 1) (high exclusive).
    draws = _Draws(uniforms=[0.5, 0.25], integers=[7, 11])
    box = transforms.random_resized_crop_box(draws, 375, 500, (0.2, 1.0), (3 / 4, 4 / 3))
    area = 375 * 500 * (0.2 + 0.5 * 0.8)
    aspect = np.exp(np.log(3 / 4) + 0.25 * (np.log(4 / 3) - np.log(3 / 4)))
    w, h = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
    assert box == (7, 11, h, w)
    assert draws.calls[2:] == [("integers", 0, 375 - h + 1), ("integers", 0, 500 - w + 1)]


def _reference_boxes(n, height, width, scale, ratio, seed):
    """torchvision's RandomResizedCrop distribution, written independently (vectorized
    rejection sampling over the 10 attempts), as (h, w) pairs."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(*scale, (n, 10)) * height * width
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (n, 10)))
    w, h = np.round(np.sqrt(area * aspect)), np.round(np.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = np.argmax(fits, axis=1)
    assert fits.any(axis=1).all()  # no fallback at these shapes
    rows = np.arange(n)
    return h[rows, first], w[rows, first]


def test_box_distribution_matches_torchvision_on_a_500x375_image():
    rng = np.random.default_rng(0)
    args = (375, 500, (0.2, 1.0), (3 / 4, 4 / 3))
    boxes = np.array([transforms.random_resized_crop_box(rng, *args) for _ in range(4000)])
    _, left, h, w = boxes.T
    ref_h, ref_w = _reference_boxes(20000, *args, seed=1)
    frac, ref_frac = h * w / (375 * 500), ref_h * ref_w / (375 * 500)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # same area and aspect distributions
        assert abs(np.quantile(frac, q) - np.quantile(ref_frac, q)) < 0.03
        assert abs(np.quantile(np.log(w / h), q) - np.quantile(np.log(ref_w / ref_h), q)) < 0.03
    # offsets are uniform over the free space: box centres cover the image
    centre_x = (left + w / 2) / 500
    assert centre_x.min() < 0.3 and centre_x.max() > 0.7


def _png(image):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def test_encoded_and_decoded_inputs_give_the_same_crop():
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    t = transforms.TrainTransform(size=24, channels=3)
    a = t.random_map({"image": image, "label": 1}, np.random.default_rng(5))
    b = t.random_map({"encoded": _png(image), "label": 1, "path": "x"}, np.random.default_rng(5))
    np.testing.assert_array_equal(a["image"], b["image"])
    e = transforms.EvalTransform(size=24, channels=3, crop_pct=0.875)
    np.testing.assert_array_equal(
        e.map({"image": image, "label": 1})["image"],
        e.map({"encoded": _png(image), "label": 1, "path": "x"})["image"],
    )


def test_reduced_dct_decode_is_close_to_the_full_decode():
    from mim_jax.data import decode
    from tests.data.image_tree import jpeg_bytes

    data = jpeg_bytes(0, h=480, w=640, quality=95)
    full = decode.decode(data)
    t = transforms.TrainTransform(size=32, channels=3, scale=(0.9, 1.0), flip=False)
    fast = t.random_map({"encoded": data, "label": 0, "path": "x"}, np.random.default_rng(2))
    slow = t.random_map({"image": full, "label": 0}, np.random.default_rng(2))
    diff = np.abs(fast["image"].astype(int) - slow["image"].astype(int))
    assert diff.mean() < 4  # 32 px from a 1/8-scale decode vs. from the full image


def test_an_undecodable_image_becomes_an_error_element():
    t = transforms.TrainTransform(size=8, channels=3)
    out = t.random_map(
        {"encoded": b"garbage", "label": 0, "path": "p.jpg"}, np.random.default_rng(0)
    )
    assert out["path"] == "p.jpg" and "error" in out
