import jax.numpy as jnp
import numpy as np

from mim_jax import targets


def test_norm_pix_uses_unbiased_variance_and_eps():
    patches = np.random.default_rng(0).normal(size=(2, 3, 12))
    out = targets.pixel_targets(jnp.asarray(patches, jnp.float32), norm_pix=True)
    mean = patches.mean(-1, keepdims=True)
    var = patches.var(-1, keepdims=True, ddof=1)  # torch .var() default
    np.testing.assert_allclose(out, (patches - mean) / (var + 1e-6) ** 0.5, rtol=1e-5, atol=1e-6)


def test_raw_pixel_targets_pass_through():
    patches = jnp.arange(12.0).reshape(1, 2, 6)
    np.testing.assert_array_equal(targets.pixel_targets(patches, norm_pix=False), patches)


def test_masked_mse_averages_over_masked_tokens_only():
    pred = jnp.zeros((1, 3, 2))
    target = jnp.asarray([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    mask = jnp.asarray([[1.0, 0.0, 1.0]])
    assert float(targets.masked_mse(pred, target, mask)) == (1.0 + 9.0) / 2
