"""SimMIM: the in-encoder mask token, the pixel-shuffle head, the L1 loss, BEiT's shared
relative position bias and the official parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import simmim as simmim_config
from mim_jax import methods, optim
from mim_jax.methods.simmim import SimMIMModel
from mim_jax.models import vit

SMALL = dict(image_size=(16, 16), channels=3, patch_size=4, width=16, depth=2, num_heads=2)
SMALL.update(mask_patch_size=8, mask_ratio=0.5)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init(model, size=16, channels=3):
    x = jnp.zeros((1, size, size, channels))
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return model.init(keys, x, train=False)["params"]


def _recipe_shapes(variant: str, size: int):
    """Parameter shapes of a recipe's model (no compute)."""
    model = methods.build(simmim_config.get_config(f"variant={variant}")).model
    x = jnp.zeros((1, size, size, 3))
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return jax.eval_shape(lambda: model.init(keys, x, train=False))["params"]


def test_vit_b_parameter_count_matches_the_official_model():
    """SimMIM ViT-B (simmim_pretrain__vit_base__img224__800ep.yaml), counted on the official
    classes: encoder 85,666,128 + 1x1-conv head 590,592."""
    shapes = _recipe_shapes("ViT-B/16", 224)
    assert _count(shapes["encoder"]) == 85_666_128
    assert _count(shapes) == 86_256_720


def test_swin_b_parameter_count_matches_the_official_model():
    """SimMIM Swin-B (192 px, window 6), counted on the official classes: encoder with its
    mask token 86,725,304 + 1x1-conv head 1024 x 3072 + 3072."""
    shapes = _recipe_shapes("Swin-B", 192)
    assert _count(shapes["encoder"]) == 86_725_304
    assert _count(shapes) == 89_874_104


def test_relative_position_index_is_beits_with_three_cls_entries():
    """Entries of the official 14x14 index (RelativePositionBias): 729 offsets, then
    cls->token 729, token->cls 730, cls->cls 731."""
    index = vit.relative_position_index((14, 14))
    assert index.shape == (197, 197) and index.max() == 731
    np.testing.assert_array_equal(index[0, :4], [731, 729, 729, 729])
    np.testing.assert_array_equal(index[:4, 0], [731, 730, 730, 730])
    np.testing.assert_array_equal(index[1, 1:4], [364, 363, 362])
    np.testing.assert_array_equal(index[1:4, 1], [364, 365, 366])


def test_the_mask_token_replaces_masked_patches_inside_the_encoder():
    model = SimMIMModel(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(2), (1, 16, 16, 3))
    mask = jnp.zeros((1, 16), bool).at[0, 5].set(True)  # patch (1, 1): rows 4-7, cols 4-7
    encode = lambda x: model.apply({"params": params}, x, mask, method="feature_map")
    base = encode(images)
    hidden_changed = images.at[0, 4:8, 4:8].add(3.0)
    np.testing.assert_allclose(encode(hidden_changed), base, atol=1e-6)
    visible_changed = images.at[0, 0:4, 0:4].add(3.0)
    assert np.abs(encode(visible_changed) - base).max() > 1e-3


def test_head_is_a_pixel_shuffle_of_the_1x1_conv_channels():
    """Channel c * s^2 + i * s + j of the head lands on pixel (i, j) of channel c."""
    model = SimMIMModel(**SMALL)
    params = _init(model)
    s, dim = 4, 16
    kernel = np.zeros((dim, s * s * 3), np.float32)
    bias = np.zeros(s * s * 3, np.float32)
    bias[2 * s * s + 1 * s + 3] = 1.0  # channel 2, pixel (1, 3) of every patch
    params = {**params, "decoder": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}
    out = model.apply({"params": params}, jnp.zeros((1, 16, 16, 3)), jnp.ones((1, 16), bool))
    expected = np.zeros((16, 16, 3), np.float32)
    expected[1::4, 3::4, 2] = 1.0
    np.testing.assert_array_equal(out["recon"][0], expected)


def test_loss_is_l1_over_masked_pixels_divided_by_channels():
    model = SimMIMModel(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(3), (2, 16, 16, 3))
    mask = jax.random.bernoulli(jax.random.PRNGKey(4), 0.5, (2, 16))
    out = model.apply({"params": params}, images, mask)
    pix = np.repeat(np.repeat(np.asarray(mask).reshape(2, 4, 4), 4, 1), 4, 2)[..., None]
    l1 = np.abs(np.asarray(images) - np.asarray(out["recon"]))
    expected = (l1 * pix).sum() / (pix.sum() + 1e-5) / 3
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)


def test_drawn_masks_follow_the_mask_grid():
    model = SimMIMModel(**SMALL)
    params = _init(model)
    images = jnp.zeros((4, 16, 16, 3))
    out = model.apply({"params": params}, images, rngs={"masking": jax.random.PRNGKey(5)})
    mask = np.asarray(out["mask"]).reshape(4, 4, 4)
    assert (mask.reshape(4, -1).sum(1) == 8).all()  # ceil(4 cells * 0.5) = 2 cells of 2x2
    cells = mask.reshape(4, 2, 2, 2, 2)  # [B, cell row, 2, cell col, 2]
    assert (cells.min(axis=(2, 4)) == cells.max(axis=(2, 4))).all()


def test_weight_decay_follows_the_official_skip_list():
    """ViT: cls token exempt, mask token and the shared bias table decayed (optimizer.py)."""
    method = methods.build(simmim_config.get_config())
    params = _init(method.model, 28, 1)
    decays = optim.decay_mask(params, method.no_weight_decay)
    enc = decays["encoder"]
    assert not enc["cls_token"] and enc["mask_token"] and enc["rel_pos_bias"]["table"]
    assert not enc["encoder"]["blocks_0"]["gamma_1"]


def test_swin_backbone_reconstructs_at_stride_32():
    model = SimMIMModel(
        image_size=(32, 32),
        channels=3,
        backbone="swin",
        patch_size=4,
        width=8,
        depths=(1, 1, 1, 1),
        heads=(1, 1, 2, 2),
        window=2,
        mask_patch_size=8,
        mask_ratio=0.5,
    )
    params = _init(model, 32)
    images = jax.random.normal(jax.random.PRNGKey(6), (2, 32, 32, 3))
    apply = jax.jit(
        lambda p, x: model.apply({"params": p}, x, rngs={"masking": jax.random.PRNGKey(7)})
    )
    out = apply(params, images)  # jitted: eager Swin dispatch takes ~30 s on 2 cores
    assert out["recon"].shape == (2, 32, 32, 3) and np.isfinite(out["loss"])
    assert out["mask"].shape == (2, 64) and float(out["mask"].sum()) == 2 * 32


def test_vit_weights_and_tokens_are_truncated_at_one_std():
    """SimMIM's `_trunc_normal_` cuts every ViT init at +-std (0.02), including the patch
    conv, cls and mask tokens; block i's output projections are divided by sqrt(2 (i + 1))."""
    config = simmim_config.get_config()
    params = _init(methods.build(config).model, 28, 1)["encoder"]
    for leaf in (
        params["cls_token"],
        params["mask_token"],
        params["patch_embed"]["proj"]["kernel"],
    ):
        assert np.abs(leaf).max() <= 0.02
    fc1 = np.asarray(params["encoder"]["blocks_3"]["mlp"]["fc1"]["kernel"])
    fc2 = np.asarray(params["encoder"]["blocks_3"]["mlp"]["fc2"]["kernel"])
    assert 0.019 < np.abs(fc1).max() <= 0.02
    assert np.abs(fc2).max() <= 0.02 / np.sqrt(8) + 1e-7
