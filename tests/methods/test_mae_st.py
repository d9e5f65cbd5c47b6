"""MAE-ST against the official PyTorch code's numbers."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import mae_st as mae_st_config
from mim_jax import methods
from mim_jax.methods import mae_st
from tests.methods.test_videomae import num_params


def test_parameter_count_equals_the_official_vit_l():
    """models_mae.mae_vit_large_patch16 with the PRETRAIN.md args: 317,731,584."""
    config = mae_st_config.get_config("variant=L/16,data=synthetic")
    assert num_params(config) == 317_731_584


def test_separable_position_embeddings():
    config = mae_st_config.get_config("variant=B/16,data=synthetic")
    method = methods.build(config)
    example = {"image": jax.ShapeDtypeStruct((1, 16, 224, 224, 3), jnp.float32)}
    params = jax.eval_shape(method.init, jax.random.PRNGKey(0), example)
    for name, dim in (("pos_embed", 768), ("decoder_pos_embed", 512)):
        shapes = {k: v.shape for k, v in params[name].items()}
        assert shapes == {"spatial": (1, 196, dim), "temporal": (1, 8, dim), "cls": (1, 1, dim)}
    table = mae_st.SeparablePosEmbed((2, 2, 3), 4).init_with_output(jax.random.PRNGKey(0))
    out, variables = table
    p = variables["params"]
    assert out.shape == (1 + 12, 4)
    # token (t, s) = spatial[s] + temporal[t]; row 0 is the cls table
    np.testing.assert_allclose(out[1 + 1 * 6 + 4], p["spatial"][0, 4] + p["temporal"][0, 1])
    np.testing.assert_allclose(out[0], p["cls"][0, 0])


def test_predicted_frames_follow_torch_linspace_long():
    np.testing.assert_array_equal(mae_st.target_frames(16, 8), [0, 2, 4, 6, 8, 10, 12, 15])


def test_forward_with_explicit_noise_masks_like_the_official_random_masking():
    model = mae_st.MAESTModel(
        num_frames=4,
        image_size=(8, 8),
        channels=3,
        tubelet=2,
        patch_size=4,
        width=16,
        depth=1,
        num_heads=2,
        decoder_width=8,
        decoder_depth=1,
        decoder_heads=2,
        mask_ratio=0.75,
        pred_t_dim=2,
    )
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 8, 3))
    noise = jax.random.uniform(jax.random.PRNGKey(1), (2, 8))
    params = model.init(jax.random.PRNGKey(2), x, noise)["params"]
    out = model.apply({"params": params}, x, noise)
    assert out["latent"].shape == (2, 1 + 2, 16)  # cls + int(8 * 0.25) kept
    assert out["pred"].shape == (2, 8, 1 * 4 * 4 * 3)  # one frame per token
    np.testing.assert_array_equal(out["mask"].sum(1), 6)
    kept = np.argsort(np.asarray(noise), axis=1)[:, :2]  # smallest noise is kept
    for b in range(2):
        assert set(np.flatnonzero(np.asarray(out["mask"][b]) == 0)) == set(kept[b])
