import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_patchify_video_matches_the_official_cube_layouts():
    """VideoMAE 'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)' and MAE-ST's einsum
    'nctuhpwq->nthwupqc' give the same order."""
    from mim_jax.models.patch import patchify_video

    x = np.random.default_rng(1).normal(size=(2, 3, 4, 8, 12)).astype(np.float32)  # N C T H W
    u, p = 2, 4
    ref = np.einsum("nctuhpwq->nthwupqc", x.reshape(2, 3, 2, u, 2, p, 3, p))
    ref = ref.reshape(2, 2 * 2 * 3, u * p * p * 3)
    ours = patchify_video(jnp.asarray(x.transpose(0, 2, 3, 4, 1)), u, p)
    np.testing.assert_array_equal(ours, ref)


def test_unpatchify_video_inverts_patchify_video():
    from mim_jax.models.patch import patchify_video, unpatchify_video

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 12, 3))
    np.testing.assert_array_equal(unpatchify_video(patchify_video(x, 2, 4), 2, 4, (2, 2, 3)), x)


def test_tubelet_embed_tokens_in_t_h_w_order():
    """Token (t, h, w) of the embedding depends only on cube (t, h, w) of the clip."""
    from mim_jax.models.patch import TubeletEmbed

    module = TubeletEmbed(2, 4, 8, weight_init="torch")
    x = jnp.zeros((1, 4, 8, 12, 3))
    params = module.init(jax.random.PRNGKey(0), x)
    base = module.apply(params, x)
    assert base.shape == (1, 2 * 2 * 3, 8)
    bumped = module.apply(params, x.at[0, 3, 5, 9].set(1.0))  # frame 3 -> t=1, h=1, w=2
    changed = np.flatnonzero(np.abs(np.asarray(bumped - base)).sum(-1)[0])
    np.testing.assert_array_equal(changed, [1 * 6 + 1 * 3 + 2])


def test_video_grid_rejects_sizes_the_cubes_do_not_tile():
    from mim_jax.models.patch import video_grid

    assert video_grid(16, (224, 224), 2, 16) == (8, 14, 14)
    with pytest.raises(ValueError, match="num_frames"):
        video_grid(15, (224, 224), 2, 16)
