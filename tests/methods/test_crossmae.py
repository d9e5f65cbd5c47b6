"""CrossMAE: cross-attention-only decoding of a subset of the masked patches, each decoder
block reading its own mix of encoder layers, and the official parameter count."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import crossmae as crossmae_config
from mim_jax import methods, targets
from mim_jax.methods.crossmae import CrossMAEModel
from mim_jax.models.patch import patchify

SMALL = dict(image_size=(16, 16), channels=3, patch_size=4, width=16, depth=2, num_heads=2)
SMALL.update(decoder_width=8, decoder_depth=3, decoder_heads=2)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init(model):
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return model.init(keys, jnp.zeros((1, 16, 16, 3)), train=False)["params"]


def test_vit_b_parameter_count_matches_the_official_model():
    """README recipe (dd12, --weight_fm --use_input), counted on the official model:
    127,034,268 trainable parameters (the sin-cos tables are frozen there, constants here)."""
    model = methods.build(crossmae_config.get_config("variant=B/16")).model
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    x = jnp.zeros((1, 224, 224, 3))
    shapes = jax.eval_shape(lambda: model.init(keys, x, train=False))["params"]
    assert _count(shapes) == 127_034_268
    assert shapes["feature_weights"]["kernel"].shape == (13, 12)  # input + 12 blocks -> 12


def test_the_predicted_tokens_are_the_largest_noise_and_the_loss_covers_only_them():
    model = CrossMAEModel(**SMALL, mask_ratio=0.75, kept_mask_ratio=0.25)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(2), (2, 16, 16, 3))
    noise = jax.random.uniform(jax.random.PRNGKey(3), (2, 16))
    out = model.apply({"params": params}, images, noise)
    # 4 visible (smallest noise), int(16 * 0.5) = 8 dropped, the 4 largest predicted.
    rank = np.argsort(np.argsort(np.asarray(noise), axis=1), axis=1)
    np.testing.assert_array_equal(out["visible"], rank < 4)
    np.testing.assert_array_equal(out["mask"], rank >= 12)
    ids = np.asarray(out["ids_pred"])
    assert (np.diff(ids, axis=1) > 0).all()  # raster order
    target = np.asarray(targets.pixel_targets(patchify(images, 4), True))
    picked = np.take_along_axis(target, ids[..., None], axis=1)
    np.testing.assert_allclose(out["loss"], np.mean((out["pred"] - picked) ** 2), rtol=1e-5)


def test_mask_queries_do_not_attend_to_each_other():
    """Changing one query (its position) leaves every other query's prediction unchanged."""
    model = CrossMAEModel(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(4), (1, 16, 16, 3))
    ids_keep = jnp.array([[0, 5, 10, 15]])
    _, feats = model.apply({"params": params}, images, ids_keep, method="encode")
    decode = lambda ids: model.apply({"params": params}, feats, ids, method="decode")
    a = decode(jnp.array([[1, 2, 3, 4]]))
    b = decode(jnp.array([[1, 2, 3, 9]]))
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert np.abs(a[:, 3] - b[:, 3]).max() > 1e-4


def test_each_decoder_block_reads_its_own_mix_of_encoder_layers():
    """Zeroing block 0's weight on every layer but the input changes only what it reads:
    the mixing is a per-block linear map over [input, block 1, ..., block depth]."""
    model = CrossMAEModel(**SMALL)
    params = _init(model)
    kernel = params["feature_weights"]["kernel"]
    assert kernel.shape == (SMALL["depth"] + 1, SMALL["decoder_depth"])
    feats = [jnp.full((1, 2, 16), float(i + 1)) for i in range(3)]
    mixed = model.apply(
        {"params": params}, jnp.stack(feats, -1), method=lambda m, x: m.feature_weights(x)
    )
    expected = sum(float(i + 1) * kernel[i] for i in range(3))  # [decoder_depth]
    np.testing.assert_allclose(mixed[0, 0, 0], expected, rtol=1e-5)
