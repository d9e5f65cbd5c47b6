import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models.patch import PatchEmbed, patchify, unpatchify


def test_patchify_matches_official_order():
    """models_mae.patchify on NCHW: 'nchpwq->nhwpqc'."""
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 12)).astype(np.float32)  # N, C, H, W
    p = 4
    ref = np.einsum("nchpwq->nhwpqc", x.reshape(2, 3, 2, p, 3, p)).reshape(2, 6, p * p * 3)
    np.testing.assert_array_equal(patchify(jnp.asarray(x.transpose(0, 2, 3, 1)), p), ref)


def test_unpatchify_inverts_patchify():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 8, 3))
    np.testing.assert_array_equal(unpatchify(patchify(x, 4), 4, (3, 2)), x)


def test_patch_embed_is_a_linear_map_of_patchified_pixels():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    layer = PatchEmbed(patch_size=4, embed_dim=5)
    params = layer.init(jax.random.PRNGKey(1), x)["params"]["proj"]
    out = layer.apply({"params": {"proj": params}}, x)
    ref = patchify(x, 4) @ params["kernel"].reshape(-1, 5) + params["bias"]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_patch_embed_init_is_xavier_over_the_flattened_kernel():
    """MAE initialises the conv like a Linear [D, p*p*C]: bound sqrt(6 / (p*p*C + D))."""
    layer = PatchEmbed(patch_size=16, embed_dim=768)
    kernel = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]["proj"][
        "kernel"
    ]
    bound = np.sqrt(6.0 / (16 * 16 * 3 + 768))
    assert np.abs(kernel).max() <= bound
    np.testing.assert_allclose(np.std(kernel), bound / np.sqrt(3), rtol=0.02)
