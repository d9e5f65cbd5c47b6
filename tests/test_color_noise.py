"""ColorMAE noise banks: the spectra per colour, the windows and masks, the cache."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import color_noise


def _radial_power(bank: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of a bank [P, S, S] in bins of cycles/patch."""
    power = (np.abs(np.fft.fft2(bank)) ** 2).mean(0)
    f = np.fft.fftfreq(bank.shape[-1])
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    rings = itertools.pairwise(edges)
    return np.array([power[(radius >= a) & (radius < b)].mean() for a, b in rings])


EDGES = np.linspace(0.02, 0.5, 13)  # 0.04-wide rings, DC excluded
CENTERS = (EDGES[:-1] + EDGES[1:]) / 2


@pytest.fixture(scope="module")
def spectra():
    return {c: _radial_power(color_noise.make_bank(c, 64, 64), EDGES) for c in color_noise.COLORS}


def _slope(profile: np.ndarray, lo: float, hi: float) -> float:
    keep = (CENTERS >= lo) & (CENTERS <= hi)
    return np.polyfit(np.log(CENTERS[keep]), np.log(profile[keep]), 1)[0]


def test_red_noise_power_falls_with_frequency(spectra):
    assert _slope(spectra["red"], 0.04, 0.15) < -2.0
    assert (np.diff(spectra["red"][:6]) < 0).all()


def test_blue_noise_power_rises_with_frequency(spectra):
    assert _slope(spectra["blue"], 0.05, 0.3) > 2.0
    assert spectra["blue"][0] < 0.05 * spectra["blue"][-1]


def test_green_noise_is_a_band_around_0_185_cycles_per_patch(spectra):
    g = spectra["green"]
    assert 0.15 <= CENTERS[np.argmax(g)] <= 0.22
    assert g[0] < 0.5 * g.max() and g[-1] < 0.1 * g.max()


def test_purple_noise_has_a_notch_where_green_peaks(spectra):
    p, peak = spectra["purple"], np.argmax(spectra["green"])
    assert p[peak] < 0.5 * p[0] and p[peak] < 0.5 * p[-1]


def test_masks_keep_exactly_the_highest_values_visible():
    bank = jnp.asarray(color_noise.make_bank("green", 16, 32))
    key = jax.random.PRNGKey(0)
    windows = np.asarray(color_noise.crop_windows(bank, key, 8, (14, 14)))
    spec = color_noise.color_noise_masking(bank, key, 8, (14, 14), 0.75)
    mask = np.asarray(spec.mask)
    assert (mask.sum(1) == 196 - 49).all()
    for w, m in zip(windows, mask):
        assert w[m == 0].min() > w[m == 1].max()


def test_windows_are_crops_of_the_patterns_in_order():
    bank = color_noise.make_bank("red", 4, 16)
    windows = np.asarray(
        color_noise.crop_windows(jnp.asarray(bank), jax.random.PRNGKey(1), 4, (5, 5))
    )
    crops = [
        np.stack([t[r : r + 5, c : c + 5] for t in bank]) for r in range(12) for c in range(12)
    ]
    views = [v for c in crops for v in (c, c[:, ::-1], c[:, :, ::-1], c[:, ::-1, ::-1])]
    match = [np.allclose(v.reshape(4, 25), windows) for v in views]
    assert sum(match) == 1  # one crop and flip shared by the call, sample i = pattern i


def test_batches_larger_than_the_bank_get_another_crop_per_group():
    bank = jnp.asarray(color_noise.make_bank("blue", 4, 32))
    windows = np.asarray(color_noise.crop_windows(bank, jax.random.PRNGKey(2), 12, (6, 6)))
    assert windows.shape == (12, 36)
    assert not np.allclose(windows[:4], windows[4:8])  # same patterns, other crops


def test_bank_is_cached_and_a_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    first = color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path))
    (path,) = tmp_path.iterdir()
    monkeypatch.setattr(color_noise, "make_bank", lambda *a: pytest.fail("not cached"))
    np.testing.assert_array_equal(
        color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path)), first
    )
    monkeypatch.undo()
    path.write_bytes(b"garbage")
    np.testing.assert_array_equal(
        color_noise.load_bank("purple", 3, 8, cache_dir=str(tmp_path)), first
    )


def test_unknown_color_names_the_valid_ones():
    with pytest.raises(ValueError, match="'red', 'blue', 'green', 'purple'"):
        color_noise.make_bank("pink", 1, 8)
