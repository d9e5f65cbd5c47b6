import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.feature import hog as skimage_hog

from mim_jax import hog


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _reference_hog(image, nbins=9, cell=8, window=16):
    """Loop-by-loop NumPy transcription of SlowFast operators.py HOGLayerC: [H, W, C] ->
    [H/cell, W/cell, C, nbins]."""
    h, w, c = image.shape
    sobel_x = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    sobel_y = sobel_x.T
    padded = np.pad(image.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    n = np.arange(window) - (window - 1) / 2
    g1 = np.exp(-0.5 * (n / (window // 2)) ** 2)
    kern = np.outer(g1, g1) / np.outer(g1, g1).sum()
    hist = np.zeros((h // cell, w // cell, c, nbins))
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                patch = padded[i : i + 3, j : j + 3, ch]
                gx, gy = (patch * sobel_x).sum(), (patch * sobel_y).sum()
                mag = np.hypot(gx, gy) * kern[i % window, j % window]
                b = int(np.floor(np.arctan2(gx, gy) / np.pi * nbins)) % nbins
                hist[i // cell, j // cell, ch, b] += mag
    norm = np.linalg.norm(hist, axis=-1, keepdims=True)
    return hist / np.maximum(norm, 1e-12)


def test_central_gradient_hog_is_skimage_hog_of_the_transposed_image():
    # atan2(gx, gy) (official) vs skimage's arctan2(g_row, g_col): the axes are swapped, so the
    # official HOG of I is skimage's HOG of I^T with the cell grid transposed back. Reflect
    # padding gives a zero central difference on the border, as skimage sets it.
    x = _images((2, 32, 48, 3))
    cells = np.asarray(hog.hog_cells(jnp.asarray(x), gaussian_window=0, gradient="central"))
    for b in range(2):
        for c in range(3):
            ref = skimage_hog(
                x[b, :, :, c].T.astype(np.float64),
                orientations=9,
                pixels_per_cell=(8, 8),
                cells_per_block=(1, 1),
                block_norm="L2",
                feature_vector=False,
            )  # [W/8, H/8, 1, 1, 9]
            np.testing.assert_allclose(
                cells[b, :, :, c], ref[:, :, 0, 0].transpose(1, 0, 2), atol=1e-4
            )


def test_sobel_gaussian_hog_matches_numpy_transcription():
    x = _images((2, 32, 48, 3), seed=1)
    cells = np.asarray(hog.hog_cells(jnp.asarray(x), gaussian_window=16))
    for b in range(2):
        np.testing.assert_allclose(cells[b], _reference_hog(x[b]), atol=1e-5)


def test_hog_is_invariant_to_per_channel_normalization():
    # The official target uses the mean/std-normalised image; per-channel L2 normalisation makes
    # that the same as using the raw image (a joint normalisation over channels would not be).
    x = np.abs(_images((1, 32, 32, 3), seed=2))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    raw = hog.hog_cells(jnp.asarray(x))
    normed = hog.hog_cells(jnp.asarray(((x - mean) / std).astype(np.float32)))
    np.testing.assert_allclose(raw, normed, atol=1e-5)


def test_flat_image_gives_zero_histograms_not_nan():
    out = hog.hog_cells(jnp.ones((1, 16, 16, 3)))
    np.testing.assert_array_equal(out, np.zeros((1, 2, 2, 3, 9)))


def test_patch_targets_are_the_patch_cells_in_channel_bin_row_col_order():
    x = jnp.asarray(_images((2, 32, 48, 3), seed=3))
    cells = np.asarray(hog.hog_cells(x))  # [2, 4, 6, 3, 9]
    targets = np.asarray(hog.hog_patch_targets(x, patch_size=16))
    assert targets.shape == (2, 6, 108)  # 2x3 patches, 2x2 cells x 3 channels x 9 bins
    for r in range(2):
        for c in range(3):
            block = cells[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2]  # [B, i, j, C, K]
            expected = block.transpose(0, 3, 4, 1, 2).reshape(2, -1)  # (C, K, i, j)
            np.testing.assert_array_equal(targets[:, r * 3 + c], expected)


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((1, 20, 32, 3), {"patch_size": 16}),  # height not a multiple of the cell
        ((1, 24, 32, 3), {"patch_size": 16}),  # height not a multiple of the patch
        ((1, 48, 48, 3), {"patch_size": 12}),  # patch not a multiple of the cell
        ((1, 48, 48, 3), {"patch_size": 16, "gaussian_window": 32}),  # window does not tile
        ((1, 32, 32, 3), {"patch_size": 16, "gradient": "prewitt"}),
    ],
)
def test_bad_geometry_raises_value_error(shape, kwargs):
    with pytest.raises(ValueError):
        hog.hog_patch_targets(jnp.zeros(shape), **kwargs)


def test_jits_and_returns_float32_for_bf16_input():
    x = jnp.asarray(_images((2, 32, 32, 3), seed=4), jnp.bfloat16)
    fn = functools.partial(hog.hog_patch_targets, patch_size=16, gaussian_window=16)
    out = jax.jit(fn)(x)
    assert out.dtype == jnp.float32 and out.shape == (2, 4, 108)
    np.testing.assert_allclose(out, fn(x), atol=1e-6)
    per_cell = np.asarray(out).reshape(2, 4, 3, 9, 4)  # (C, K, cells) per patch
    np.testing.assert_allclose(np.linalg.norm(per_cell, axis=3), 1.0, rtol=1e-5)
