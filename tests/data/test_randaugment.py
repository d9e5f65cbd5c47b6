import numpy as np
import pytest

from mim_jax.data import randaugment as ra

IMAGENET_MEAN = (0.485, 0.456, 0.406)


def _images(shape, count=4, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8))


class _Signs:
    """A stand-in Generator whose random() returns fixed values (drives timm's sign flips)."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_same_seed_same_output_and_dtype_shape_kept(shape):
    aug = ra.RandAugment()
    for image in _images(shape):
        a = aug(image, np.random.default_rng(7))
        b = aug(image, np.random.default_rng(7))
        assert a.dtype == np.uint8 and a.shape == shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_different_seeds_give_different_outputs(shape):
    aug = ra.RandAugment(prob=1.0)
    for image in _images(shape):
        outs = {aug(image, np.random.default_rng(seed)).tobytes() for seed in range(6)}
        assert len(outs) > 1


def test_ops_are_drawn_with_replacement_and_applied_with_prob():
    image = _images((8, 8, 3), count=1)[0]
    # With replacement: Invert can be drawn twice (identity) or three times (inverted).
    twice = ra.RandAugment(num_ops=2, prob=1.0, ops=("Invert",))
    thrice = ra.RandAugment(num_ops=3, prob=1.0, ops=("Invert",))
    np.testing.assert_array_equal(twice(image, np.random.default_rng(0)), image)
    np.testing.assert_array_equal(thrice(image, np.random.default_rng(0)), 255 - image)
    once = ra.RandAugment(num_ops=1, prob=0.5, ops=("Invert",))
    inverted = [
        np.array_equal(once(image, np.random.default_rng(s)), 255 - image) for s in range(400)
    ]
    assert 0.4 < np.mean(inverted) < 0.6
    assert np.array_equal(ra.RandAugment(prob=0.0)(image, np.random.default_rng(0)), image)


def test_invert():
    image = _images((9, 7, 3), count=1)[0]
    np.testing.assert_array_equal(ra.apply_op(image, "Invert"), 255 - image)


def test_rotate_90_and_180_with_fill():
    square = _images((16, 16, 3), count=1)[0]
    np.testing.assert_array_equal(ra.apply_op(square, "Rotate", 180.0), square[::-1, ::-1])
    np.testing.assert_array_equal(ra.apply_op(square, "Rotate", 90.0), np.rot90(square))
    # A 16 x 32 image rotated 90 degrees about its centre: the central 16 x 16 square turns
    # counter-clockwise, the columns it leaves are filled.
    wide = _images((16, 32, 1), count=1)[0]
    out = ra.apply_op(wide, "Rotate", 90.0, fill=(7,))
    np.testing.assert_array_equal(out[:, 8:24], np.rot90(wide[:, 8:24]))
    assert (out[:, :8] == 7).all() and (out[:, 24:] == 7).all()
    rgb = ra.apply_op(np.zeros((16, 32, 3), np.uint8), "Rotate", 90.0, fill=(124, 116, 104))
    np.testing.assert_array_equal(rgb[0, 0], (124, 116, 104))


@pytest.mark.parametrize("bits", [0, 1, 4])
def test_posterize_keeps_top_bits(bits):
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    mask = (0xFF << (8 - bits)) & 0xFF
    np.testing.assert_array_equal(ra.apply_op(image, "PosterizeIncreasing", bits), image & mask)
    # timm's increasing mapping: 4 bits at magnitude 0, 1 bit at 9, 0 bits at 10
    assert [ra.level_to_arg("PosterizeIncreasing", m, None) for m in (0, 9, 10)] == [4, 1, 0]


def test_solarize_inverts_pixels_at_or_above_threshold():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    out = ra.apply_op(image, "SolarizeIncreasing", 100)
    np.testing.assert_array_equal(out, np.where(image >= 100, 255 - image, image))
    # magnitude 9 -> threshold 256 - int(0.9 * 256) = 26; magnitude 0 -> 256 (no change)
    assert ra.level_to_arg("SolarizeIncreasing", 9.0, None) == 26
    assert ra.level_to_arg("SolarizeIncreasing", 0.0, None) == 256


def test_solarize_add_brightens_only_below_128():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    add = ra.level_to_arg("SolarizeAdd", 9.0, None)
    assert add == 99  # int(0.9 * 110)
    want = np.where(image < 128, np.minimum(image.astype(int) + add, 255), image)
    np.testing.assert_array_equal(ra.apply_op(image, "SolarizeAdd", add), want)


def _dot(shape, y, x):
    image = np.zeros(shape, np.uint8)
    image[y, x] = 255
    return image


def test_translate_moves_a_bright_pixel():
    image = _dot((32, 32, 1), 10, 20)
    # output(x) samples input(x + 0.25 * 32): content moves 8 pixels left, vacated side filled
    out = ra.apply_op(image, "TranslateXRel", 0.25, fill=(0,))
    np.testing.assert_array_equal(out, _dot((32, 32, 1), 10, 12))
    out = ra.apply_op(image, "TranslateYRel", -0.25, fill=(0,))
    np.testing.assert_array_equal(out, _dot((32, 32, 1), 18, 20))
    filled = ra.apply_op(image, "TranslateXRel", 0.25, fill=(9,))
    assert (filled[:, 24:] == 9).all() and (filled[:, :24] != 9).all()


def test_shear_x_moves_a_bright_pixel_by_factor_times_row():
    # PIL samples at pixel centres: input x = x_out + 0.2 * (y + 0.5) -> row 9.5 shifts by 2
    out = ra.apply_op(_dot((32, 32, 1), 9, 20), "ShearX", 0.2, fill=(0,))
    assert np.unravel_index(out.argmax(), out.shape) == (9, 18, 0)
    out = ra.apply_op(_dot((32, 32, 1), 20, 9), "ShearY", -0.2, fill=(0,))
    assert np.unravel_index(out.argmax(), out.shape) == (22, 9, 0)


def test_level_to_arg_ranges_and_signs():
    assert ra.level_to_arg("Rotate", 10.0, _Signs(0.2)) == pytest.approx(30.0)
    assert ra.level_to_arg("Rotate", 10.0, _Signs(0.8)) == pytest.approx(-30.0)
    assert ra.level_to_arg("ShearX", 9.0, _Signs(0.2)) == pytest.approx(0.27)
    assert ra.level_to_arg("TranslateYRel", 10.0, _Signs(0.8)) == pytest.approx(-0.45)
    assert ra.level_to_arg("TranslateX", 5.0, _Signs(0.2), translate_const=100) == 50.0
    assert ra.level_to_arg("ColorIncreasing", 9.0, _Signs(0.2)) == pytest.approx(1.81)
    assert ra.level_to_arg("ContrastIncreasing", 9.0, _Signs(0.8)) == pytest.approx(0.19)
    assert ra.level_to_arg("Brightness", 0.0, None) == pytest.approx(0.1)  # non-increasing
    with pytest.raises(ValueError, match="Cutout"):
        ra.level_to_arg("Cutout", 1.0, None)


@pytest.mark.parametrize("name", ["Color", "Contrast", "Brightness", "Sharpness"])
@pytest.mark.parametrize("channels", [1, 3])
def test_increasing_enhance_is_identity_at_magnitude_0(name, channels):
    image = _images((12, 12, channels), count=1)[0]
    factor = ra.level_to_arg(name + "Increasing", 0.0, _Signs(0.9))
    assert factor == 1.0
    np.testing.assert_array_equal(ra.apply_op(image, name + "Increasing", factor), image)
    # and a real change away from it (Color is a no-op on greyscale in PIL)
    changed = ra.apply_op(image, name + "Increasing", 0.19)
    assert np.array_equal(changed, image) == (name == "Color" and channels == 1)


def test_contrast_factor_blends_towards_mean_grey():
    image = np.array([[0, 100, 200, 100]], np.uint8).reshape(1, 4, 1)  # mean 100
    np.testing.assert_array_equal(
        ra.apply_op(image, "ContrastIncreasing", 0.5)[..., 0], [[50, 100, 150, 100]]
    )


def test_autocontrast_and_equalize_stretch_a_narrow_range():
    # 64 x 64 so PIL's equalize has enough pixels per level to act (it skips tiny images)
    image = np.repeat(np.arange(100, 116, dtype=np.uint8), 256).reshape(64, 64, 1)
    for name in ("AutoContrast", "Equalize"):
        out = ra.apply_op(image, name)
        assert out.min() == 0 and out.max() == 255 and (np.diff(out.ravel()) >= 0).all()


def test_sample_magnitude_mean_and_clip():
    rng = np.random.default_rng(0)
    draws = np.array([ra.sample_magnitude(rng, 9.0, 0.5) for _ in range(4000)])
    assert abs(draws.mean() - 9.0) < 0.05 and 0.4 < draws.std() < 0.5
    assert draws.max() == 10.0  # ~2% of N(9, 0.5) lies above 10
    wide = np.array([ra.sample_magnitude(rng, 9.0, 5.0) for _ in range(2000)])
    assert wide.min() == 0.0 and wide.max() == 10.0
    assert ra.sample_magnitude(rng, 9.0, 0.0) == 9.0
    uniform = np.array([ra.sample_magnitude(rng, 9.0, np.inf) for _ in range(2000)])
    assert 0 <= uniform.min() < 0.5 and 8.5 < uniform.max() <= 9.0


def test_parse_mae_spec():
    aug = ra.parse("rand-m9-mstd0.5-inc1", 224, IMAGENET_MEAN)
    assert (aug.num_ops, aug.magnitude, aug.magnitude_std, aug.prob) == (2, 9.0, 0.5, 0.5)
    assert aug.fill == (124, 116, 104) and aug.translate_const == 100
    assert aug.ops == ra.RAND_INCREASING_OPS and aug.interpolation == "bicubic"
    video = ra.parse("rand-m7-n4-mstd0.5-inc1", 160, (0.5,))
    assert (video.num_ops, video.magnitude, video.fill) == (4, 7.0, (128,))
    plain = ra.parse("rand-m9-p0.3-mmax12", 32, (1.0,))
    assert plain.ops == ra.RAND_OPS and plain.magnitude_std == 0.0
    assert (plain.prob, plain.magnitude_max, plain.fill) == (0.3, 12.0, (255,))
    assert ra.parse("rand-mstd101", 32, (0.5,)).magnitude_std == np.inf
    assert ra.parse("", 224, IMAGENET_MEAN) is None
    assert ra.parse("none", 224, IMAGENET_MEAN) is None


@pytest.mark.parametrize(
    "spec",
    [
        "v0",
        "rand-m9-inc0",
        "rand-m9-x3",
        "rand-m9-mstd",
        "rand-m9.5",
        "rand-m9-m8",
        "rand-tweights",
    ],
)
def test_parse_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match=spec):
        ra.parse(spec, 224, IMAGENET_MEAN)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        ra.RandAugment(ops=("Cutout",))
    with pytest.raises(ValueError):
        ra.RandAugment()(np.zeros((4, 4, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="1-channel"):
        ra.RandAugment(fill=(1, 2, 3))(np.zeros((4, 4, 1), np.uint8), np.random.default_rng(0))


def test_a_clip_gets_the_same_ops_on_every_frame():
    aug = ra.RandAugment(num_ops=4, magnitude=9)
    frames = np.stack(_images((16, 16, 3), count=3))
    for seed in range(5):
        out = aug(frames, np.random.default_rng(seed))
        ops = aug.sample(np.random.default_rng(seed))
        for frame, result in zip(frames, out, strict=True):
            np.testing.assert_array_equal(result, aug.apply(frame, ops))
