"""MaskFeat: HOG targets of the masked patches, predicted from a ViT with mask tokens."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import maskfeat as maskfeat_config
from mim_jax import hog, methods
from mim_jax.methods.maskfeat import MaskFeatModel

SMALL = dict(image_size=(16, 16), channels=3, patch_size=8, width=16, depth=1, num_heads=2)
SMALL.update(hog_cell=4)


def _init(model):
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return model.init(keys, jnp.zeros((1, 16, 16, 3)), train=False)["params"]


def test_vit_b_predicts_108_hog_values_per_patch_and_masks_78_patches():
    """2x2 cells x 9 bins x 3 channels; round(196 x 0.4) = 78 (SlowFast image MaskFeat)."""
    model = methods.build(maskfeat_config.get_config("variant=B/16")).model
    assert model.num_masked == 78
    keys = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    x = jnp.zeros((1, 224, 224, 3))
    p = jax.eval_shape(lambda: model.init(keys, x, train=False))["params"]
    assert p["head"]["kernel"].shape == (768, 108)


def test_loss_is_the_mse_against_hog_of_the_masked_patches():
    model = MaskFeatModel(**SMALL)
    params = _init(model)
    images = jax.random.normal(jax.random.PRNGKey(2), (2, 16, 16, 3))
    mask = jnp.array([[True, False, False, True], [False, True, False, False]])
    out = model.apply({"params": params}, images, mask)
    target = np.asarray(hog.hog_patch_targets(images, 8, 9, 4, 0))  # [2, 4, 36]
    np.testing.assert_allclose(out["target"], target, atol=1e-6)
    m = np.asarray(mask)
    expected = ((np.asarray(out["pred"]) - target) ** 2)[m].mean()
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)


def test_drawn_masks_are_block_wise_with_at_most_the_target_count():
    model = MaskFeatModel(**{**SMALL, "image_size": (64, 64)})  # 8x8 patches, 26 masked
    params = model.init(
        {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)},
        jnp.zeros((1, 64, 64, 3)),
        train=False,
    )["params"]
    images = jnp.zeros((16, 64, 64, 3))
    out = model.apply({"params": params}, images, rngs={"masking": jax.random.PRNGKey(3)})
    counts = np.asarray(out["mask"]).sum(1)
    assert model.num_masked == 26 and (counts <= 26).all() and counts.mean() > 20
