"""CAE: official parameter counts, the stop-gradient alignment target, the regressor's
inputs and the rows-first sin-cos table."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import cae as cae_config
from mim_jax import methods
from mim_jax.methods.cae import ContextAutoencoder
from mim_jax.models import posemb

SMALL = dict(image_size=(16, 16), channels=3, patch_size=4, width=16, depth=2, num_heads=2)
SMALL.update(regressor_depth=2, decoder_depth=1, num_masked=8, min_block_patches=2)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init(model):
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return model.init(keys, jnp.zeros((1, 16, 16, 3)), train=False)["params"]


def test_vit_b_parameter_counts_match_the_official_model():
    """cae_base_patch16_224_8k_vocab counted on the official classes: encoder 85,656,576,
    regressor 28,368,384, decoder blocks + norm 28,356,096 (34,655,744 minus its 8192-way
    DALL-E head; ours predicts 768 pixels), mask token 768."""
    model = methods.build(cae_config.get_config("variant=B/16")).model
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    x = jnp.zeros((1, 224, 224, 3))
    p = jax.eval_shape(lambda: model.init(keys, x, train=False))["params"]
    assert _count([p["patch_embed"], p["cls_token"], p["encoder"]]) == 85_656_576
    regressor = [v for k, v in p.items() if k.startswith("regressor")]
    assert _count(regressor) == 28_368_384
    assert _count(p["decoder"]) == 28_356_096
    assert _count(p["head"]) == 768 * 768 + 768 and _count(p["mask_token"]) == 768


def _split_losses(model, params, images, mask, stop: bool):
    """The alignment loss rebuilt from the model's parts, with or without stop-gradient."""

    def fn(m, x, msk):
        order = jnp.argsort(msk.astype(jnp.int32), axis=1, stable=True)
        keep = m.num_patches - m.num_masked
        ids_keep, ids_masked = order[:, :keep], order[:, keep:]
        latent = m.encode(x, ids_keep)[:, 1:]
        target = m.encode(x, ids_masked)[:, 1:]
        target = jax.lax.stop_gradient(target) if stop else target
        return jnp.mean((m.regress(latent, ids_keep, ids_masked, False) - target) ** 2)

    return model.apply({"params": params}, images, mask, method=fn)


def test_the_alignment_target_carries_no_gradient():
    model = ContextAutoencoder(**SMALL, drop_path=0.0)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(2), (2, 16, 16, 3))
    mask = jnp.zeros((2, 16), bool).at[:, 8:].set(True)
    align = lambda p: model.apply({"params": p}, images, mask, False)["loss_align"]
    ours = jax.jit(jax.grad(align))(params)
    stopped = jax.jit(jax.grad(lambda p: _split_losses(model, p, images, mask, True)))(params)
    through = jax.jit(jax.grad(lambda p: _split_losses(model, p, images, mask, False)))(params)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(stopped)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    diff = [np.abs(a - c).max() for a, c in zip(jax.tree.leaves(ours), jax.tree.leaves(through))]
    assert max(diff) > 1e-4  # a target with gradient would change the encoder's gradient


def test_loss_is_pixel_loss_plus_twice_the_alignment_loss():
    model = ContextAutoencoder(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(3), (2, 16, 16, 3))
    out = model.apply(
        {"params": params}, images, rngs={"masking": jax.random.PRNGKey(4)}, train=False
    )
    np.testing.assert_allclose(out["loss"], out["loss_main"] + 2.0 * out["loss_align"], rtol=1e-6)
    assert (np.asarray(out["mask"]).sum(1) == 8).all()  # exactly num_masked, block-wise
    assert out["pred"].shape == (2, 8, 4 * 4 * 3)


def test_visible_latents_change_the_predictions_of_masked_patches():
    """The regressor reads the visible latents: changing a visible patch changes the
    predictions; changing a masked patch's pixels leaves them unchanged."""
    model = ContextAutoencoder(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(5), (1, 16, 16, 3))
    mask = jnp.zeros((1, 16), bool).at[:, 8:].set(True)  # rows 2-3 of patches masked
    pred = lambda x: model.apply({"params": params}, x, mask, False)["pred"]
    base = pred(images)
    np.testing.assert_allclose(pred(images.at[0, 12:, :].add(5.0)), base, atol=1e-6)
    assert np.abs(pred(images.at[0, :4, :4].add(5.0)) - base).max() > 1e-4


def test_position_table_is_rows_first():
    """CAE build_2d_sincos_position_embedding: [sin r, cos r, sin c, cos c] per patch."""
    table = posemb.sincos_2d(8, (3, 4), cls_token=True, rows_first=True)
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    r, c = 2, 1  # patch 9 of a 3x4 grid
    expected = np.concatenate(
        [np.sin(r * omega), np.cos(r * omega), np.sin(c * omega), np.cos(c * omega)]
    )
    np.testing.assert_allclose(table[1 + 9], expected, rtol=1e-6)
    np.testing.assert_array_equal(table[0], 0.0)
