"""ColorMAE noise banks: the spectra per colour, the windows and masks, the cache."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import color_noise, masking

SIZE = 64
RINGS = np.arange(SIZE // 2 + 1) / SIZE  # ring k holds radial frequencies nearest k / SIZE


def _ring_mean(power: np.ndarray) -> np.ndarray:
    """Radial average [SIZE // 2 + 1] of a [SIZE, SIZE] array in FFT order."""
    f = np.fft.fftfreq(SIZE)
    ring = np.round(np.hypot(f[:, None], f[None, :]) * SIZE).astype(int).ravel()
    return (np.bincount(ring, power.ravel()) / np.bincount(ring))[: len(RINGS)]


def _radial_power(bank: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of a bank [P, SIZE, SIZE]."""
    return _ring_mean((np.abs(np.fft.fft2(bank.astype(np.float64))) ** 2).mean(0))


@pytest.fixture(scope="module")
def spectra():
    return {c: _radial_power(color_noise.make_bank(c, 64, SIZE)) for c in color_noise.COLORS}


def _slope(profile: np.ndarray, lo: float, hi: float) -> float:
    """Log-log slope of the power over rings in [lo, hi] cycles/patch."""
    keep = (RINGS >= lo) & (RINGS <= hi)
    return np.polyfit(np.log(RINGS[keep]), np.log(profile[keep]), 1)[0]


def _peak(profile: np.ndarray) -> float:
    """Frequency of the maximum of the power, refined by a parabola through log power."""
    i = int(np.argmax(profile[1:])) + 1
    x, y = RINGS[i - 3 : i + 4], np.log(profile[i - 3 : i + 4])
    a, b, _ = np.polyfit(x, y, 2)
    return -b / (2 * a)


def test_red_noise_power_falls_with_frequency(spectra):
    red = spectra["red"]
    assert _slope(red, 0.05, 0.15) < -2.0
    assert (np.diff(red[1:12]) < 0).all()
    assert red[SIZE // 2] < 1e-6 * red[1]


def test_blue_noise_power_rises_with_frequency(spectra):
    blue = spectra["blue"]
    assert _slope(blue, 0.05, 0.3) > 2.0
    assert blue[1] < 0.01 * blue[SIZE // 2]


def test_green_noise_peaks_near_0_185_cycles_per_patch(spectra):
    green = spectra["green"]
    assert color_noise.green_peak_frequency() == pytest.approx(0.185, abs=0.002)
    assert _peak(green) == pytest.approx(0.185, abs=0.015)
    assert green[1] < 0.01 * green.max() and green[SIZE // 2] < 0.05 * green.max()


def test_purple_noise_has_a_notch_where_green_peaks(spectra):
    purple = spectra["purple"]
    notch = RINGS[int(np.argmin(purple[1:])) + 1]
    assert notch == pytest.approx(0.185, abs=0.03)
    low = purple[1:].min()
    assert low < 0.3 * purple[1] and low < 0.3 * purple[SIZE // 2]


@pytest.mark.parametrize("color", color_noise.COLORS)
def test_power_follows_the_filter_response(spectra, color):
    response = _ring_mean(color_noise.color_response(color, SIZE) ** 2)  # |H|^2
    # DC is removed by the standardisation; below 1e-6 of the peak float32 rounding rules
    keep = (RINGS > 0) & (response > 1e-6 * response.max())
    ratio = spectra[color][keep] / response[keep]
    assert ratio.std() < 0.15 * ratio.mean()


def test_bank_is_standardised_deterministic_and_prefix_stable():
    bank = color_noise.make_bank("green", 5, 16, seed=3)
    assert bank.dtype == np.float32 and bank.shape == (5, 16, 16)
    np.testing.assert_allclose(bank.mean((1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(bank.std((1, 2)), 1, atol=1e-4)
    np.testing.assert_array_equal(bank, color_noise.make_bank("green", 5, 16, seed=3))
    np.testing.assert_array_equal(bank, color_noise.make_bank("green", 9, 16, seed=3)[:5])
    assert not np.allclose(bank, color_noise.make_bank("green", 5, 16, seed=4))


def _match(bank: np.ndarray, windows: np.ndarray, grid: tuple[int, int]) -> list[tuple]:
    """Every (start, top, left, flip_h, flip_v) whose windows of a bank [P, S, S] are
    `windows` [n, gh * gw]: patterns start, start + 1, ... (cyclically), each window
    divided by its maximum if positive."""
    gh, gw = grid
    crops = np.lib.stride_tricks.sliding_window_view(bank, grid, axis=(1, 2))  # [P, T, L, gh, gw]
    found = []
    for fh in (False, True):
        for fv in (False, True):
            v = crops[..., ::-1] if fh else crops
            v = (v[..., ::-1, :] if fv else v).reshape(*crops.shape[:3], gh * gw)
            peak = v.max(-1, keepdims=True)
            v = v / np.where(peak > 0, peak, 1)
            for start in range(len(bank)):
                rows = np.roll(v, -start, axis=0)[: len(windows)]  # [n, T, L, gh * gw]
                diff = np.abs(rows - windows[:, None, None]).max(axis=(0, 3))  # [T, L]
                found += [(start, t, c, fh, fv) for t, c in zip(*np.nonzero(diff < 1e-6))]
    return found


def test_a_call_is_one_crop_and_flip_of_consecutive_patterns_normalised_by_max():
    bank = color_noise.make_bank("red", 4, 12) + 10.0  # positive: the max divides
    windows = np.asarray(
        color_noise.crop_windows(jnp.asarray(bank), jax.random.PRNGKey(1), 3, (5, 5))
    )
    assert windows.shape == (3, 25)
    np.testing.assert_allclose(windows.max(1), 1.0)
    assert len(_match(bank, windows, (5, 5))) == 1


def test_crops_flips_and_start_patterns_are_random_across_keys():
    bank = color_noise.make_bank("blue", 4, 8)
    crop = jax.jit(color_noise.crop_windows, static_argnums=(2, 3))
    draws = []
    for seed in range(12):
        windows = np.asarray(crop(jnp.asarray(bank), jax.random.PRNGKey(seed), 1, (3, 3)))
        (found,) = _match(bank, windows, (3, 3))
        draws.append(found)
    start, top, left, flip_h, flip_v = (set(d) for d in zip(*draws))
    assert len(start) >= 3  # a batch smaller than the bank still uses all of it
    assert len(top) >= 3 and len(left) >= 3
    assert flip_h == flip_v == {False, True}


def test_batches_larger_than_the_bank_take_every_pattern_once_per_group():
    bank = color_noise.make_bank("green", 4, 10)
    windows = np.asarray(
        color_noise.crop_windows(jnp.asarray(bank), jax.random.PRNGKey(2), 10, (4, 4))
    )
    assert windows.shape == (10, 16)
    first, second = _match(bank, windows[:4], (4, 4)), _match(bank, windows[4:8], (4, 4))
    assert len(first) == len(second) == 1 and first != second  # own crop, all 4 patterns
    assert len(_match(bank, windows[8:], (4, 4))) == 1  # the last, partial group


def test_windows_are_deterministic_per_key_and_differ_across_keys():
    bank = jnp.asarray(color_noise.make_bank("purple", 8, 32))
    a, b, c = (color_noise.crop_windows(bank, jax.random.PRNGKey(s), 8, (7, 7)) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("ratio", [0.75, 0.6])
def test_masks_keep_exactly_the_highest_values_visible(ratio):
    bank = jnp.asarray(color_noise.make_bank("green", 16, 32))
    key = jax.random.PRNGKey(0)
    windows = np.asarray(color_noise.crop_windows(bank, key, 8, (14, 14)))
    spec = color_noise.color_noise_masking(bank, key, 8, (14, 14), ratio)
    mask, keep = np.asarray(spec.mask), masking.num_kept(196, ratio)
    assert spec.ids_keep.shape == (8, keep) and (mask.sum(1) == 196 - keep).all()
    for w, m, ids in zip(windows, mask, np.asarray(spec.ids_keep)):
        assert w[m == 0].min() > w[m == 1].max()
        assert (np.diff(w[ids]) <= 0).all()  # highest first, as the official descending sort
        assert set(ids) == set(np.flatnonzero(m == 0))


def test_a_window_with_no_positive_value_still_keeps_its_highest():
    bank = -1.0 - jnp.arange(16.0).reshape(1, 4, 4)  # every value negative, crop = pattern
    windows = np.asarray(color_noise.crop_windows(bank, jax.random.PRNGKey(0), 1, (4, 4)))
    np.testing.assert_array_equal(np.sort(windows[0]), np.sort(np.asarray(bank).ravel()))
    spec = color_noise.color_noise_masking(bank, jax.random.PRNGKey(0), 1, (4, 4), 0.75)
    visible = windows[0][np.asarray(spec.mask[0]) == 0]
    np.testing.assert_array_equal(np.sort(visible), [-4.0, -3.0, -2.0, -1.0])


def test_bank_is_cached_and_a_corrupt_cache_is_regenerated(tmp_path, monkeypatch, caplog):
    first = color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path))
    (path,) = tmp_path.iterdir()  # no temporary file is left behind
    with monkeypatch.context() as m:
        m.setattr(color_noise, "make_bank", lambda *a: pytest.fail("cache not read"))
        np.testing.assert_array_equal(
            color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path)), first
        )
    path.write_bytes(path.read_bytes()[:100])  # a truncated write
    with caplog.at_level(logging.WARNING):
        again = color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again, first)
    assert "regenerating" in caplog.text
    np.testing.assert_array_equal(np.load(path), first)  # and rewritten
    assert list(tmp_path.iterdir()) == [path]


def test_a_cached_bank_of_the_wrong_shape_is_regenerated(tmp_path):
    first = color_noise.load_bank("red", 3, 8, cache_dir=str(tmp_path))
    (path,) = tmp_path.iterdir()
    np.save(path, np.zeros((2, 8, 8), np.float32))
    np.testing.assert_array_equal(
        color_noise.load_bank("red", 3, 8, cache_dir=str(tmp_path)), first
    )


def test_unknown_color_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="'red', 'blue', 'green', 'purple'"):
        color_noise.make_bank("pink", 1, 8)
    with pytest.raises(ValueError, match="'red', 'blue', 'green', 'purple'"):
        color_noise.load_bank("pink", 1, 8, cache_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_a_grid_larger_than_the_patterns_is_an_error():
    bank = jnp.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="must fit in the noise patterns"):
        color_noise.crop_windows(bank, jax.random.PRNGKey(0), 2, (14, 14))
