"""MAE against an independent NumPy re-implementation of the official forward and loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from configs import mae as mae_config
from mim_jax import methods
from mim_jax.methods.mae import MAE, MaskedAutoencoder

SMALL = dict(
    image_size=(8, 8),
    channels=3,
    patch_size=2,
    width=16,
    depth=2,
    num_heads=2,
    decoder_width=8,
    decoder_depth=1,
    decoder_heads=2,
    mask_ratio=0.75,
)


# ------------------------------------------------ NumPy reference (official code, NCHW, float64)
def np_sincos_2d(dim, size):
    """util/pos_embed.py: meshgrid(w, h); emb_h from grid[0]; zero cls row prepended."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size)), axis=0)
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


def np_ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def np_linear(x, p):
    return x @ np.asarray(p["kernel"], np.float64) + p["bias"]


def np_block(x, p, heads):
    b, n, d = x.shape
    qkv = np_linear(np_ln(x, p["norm1"]), p["attn"]["qkv"])
    qkv = qkv.reshape(b, n, 3, heads, d // heads).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv
    att = q @ k.transpose(0, 1, 3, 2) * (d // heads) ** -0.5
    att = np.exp(att - att.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    x = x + np_linear((att @ v).transpose(0, 2, 1, 3).reshape(b, n, d), p["attn"]["proj"])
    h = np_linear(np_ln(x, p["norm2"]), p["mlp"]["fc1"])
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    return x + np_linear(h, p["mlp"]["fc2"])


def np_mae_forward(params, imgs, noise, cfg, norm_pix):
    """models_mae.py MaskedAutoencoderViT.forward, imgs [N, C, H, W]."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    p, c = cfg["patch_size"], cfg["channels"]
    n, _, hh, ww = imgs.shape
    h, w = hh // p, ww // p
    # Conv2d(kernel=stride=p): weight [D, C, p, p] from the flax kernel [p, p, C, D].
    weight = params["patch_embed"]["proj"]["kernel"].transpose(3, 2, 0, 1)
    x = np.einsum("nchpwq,dcpq->nhwd", imgs.reshape(n, c, h, p, w, p), weight)
    x = x.reshape(n, h * w, -1) + params["patch_embed"]["proj"]["bias"]
    pos = np_sincos_2d(cfg["width"], h)
    x = x + pos[1:]
    length, keep = h * w, int(h * w * (1 - cfg["mask_ratio"]))
    ids_shuffle = np.argsort(noise, axis=1)
    ids_restore = np.argsort(ids_shuffle, axis=1)
    x = np.take_along_axis(x, ids_shuffle[:, :keep, None], axis=1)
    mask = np.ones([n, length])
    mask[:, :keep] = 0
    mask = np.take_along_axis(mask, ids_restore, axis=1)
    cls = np.broadcast_to(params["cls_token"] + pos[:1], (n, 1, cfg["width"]))
    x = np.concatenate([cls, x], axis=1)
    for i in range(cfg["depth"]):
        x = np_block(x, params["encoder"][f"blocks_{i}"], cfg["num_heads"])
    latent = np_ln(x, params["encoder"]["norm"])
    # decoder
    x = np_linear(latent, params["decoder_embed"])
    tokens = np.concatenate(
        [x[:, 1:], np.broadcast_to(params["mask_token"], (n, length - keep, x.shape[2]))], axis=1
    )
    tokens = np.take_along_axis(tokens, ids_restore[..., None], axis=1)
    x = np.concatenate([x[:, :1], tokens], axis=1) + np_sincos_2d(cfg["decoder_width"], h)
    for i in range(cfg["decoder_depth"]):
        x = np_block(x, params["decoder"][f"blocks_{i}"], cfg["decoder_heads"])
    pred = np_linear(np_ln(x, params["decoder"]["norm"]), params["decoder_pred"])[:, 1:]
    # forward_loss: patchify 'nchpwq->nhwpqc'; torch .var() is unbiased
    target = np.einsum("nchpwq->nhwpqc", imgs.reshape(n, c, h, p, w, p)).reshape(n, length, -1)
    if norm_pix:
        mean = target.mean(-1, keepdims=True)
        var = target.var(-1, keepdims=True, ddof=1)
        target = (target - mean) / (var + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(-1)
    return (loss * mask).sum() / mask.sum(), pred, mask


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_matches_numpy_reference(norm_pix):
    model = MaskedAutoencoder(**SMALL, norm_pix_loss=norm_pix)
    method = MAE(model)
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(3, 3, 8, 8))  # NCHW, as the official code takes them
    noise = rng.uniform(size=(3, 16))
    params = method.init(jax.random.PRNGKey(1), {"image": np.zeros((1, 8, 8, 3))})
    out = method.forward(params, jnp.asarray(imgs.transpose(0, 2, 3, 1), jnp.float32), noise=noise)
    ref_loss, ref_pred, ref_mask = np_mae_forward(params, imgs, noise, SMALL, norm_pix)
    np.testing.assert_allclose(out["mask"], ref_mask)
    np.testing.assert_allclose(out["pred"], ref_pred, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["loss"], ref_loss, rtol=1e-5)


def test_masking_uses_its_own_rng_stream():
    method = MAE(MaskedAutoencoder(**SMALL))
    params = method.init(jax.random.PRNGKey(0), {"image": np.zeros((1, 8, 8, 3))})
    images = jnp.ones((2, 8, 8, 3))
    key = jax.random.PRNGKey(3)
    a = method.forward(params, images, {"masking": key, "dropout": jax.random.PRNGKey(4)})
    b = method.forward(params, images, {"masking": key, "dropout": jax.random.PRNGKey(5)})
    c = method.forward(params, images, {"masking": jax.random.PRNGKey(6)})
    np.testing.assert_array_equal(a["mask"], b["mask"])
    assert not np.array_equal(a["mask"], c["mask"])


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_mae_vit_base_parameter_count_matches_official():
    config = mae_config.get_config("variant=B/16")
    method = methods.build(config)
    shapes = jax.eval_shape(
        method.init, jax.random.PRNGKey(0), {"image": jax.ShapeDtypeStruct((1, 224, 224, 3), "f4")}
    )
    # mae_vit_base_patch16: 111,907,840 in total, of which the fixed sin-cos tables
    # (197 x 768 + 197 x 512 = 252,160) are frozen buffers, here constants.
    assert _count(shapes) == 111_907_840 - 252_160
    assert _count(shapes["cls_token"]) == 768 and _count(shapes["mask_token"]) == 512
    assert _count(shapes["decoder"]) == 8 * 3_152_384 + 2 * 512


def test_features_and_reconstruction_shapes():
    method = MAE(MaskedAutoencoder(**SMALL))
    params = method.init(jax.random.PRNGKey(0), {"image": np.zeros((1, 8, 8, 3))})
    images = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3))
    assert method.features(params, images, "cls").shape == (2, 16)
    assert method.features(params, images, "mean").shape == (2, 16)
    with pytest.raises(ValueError, match="eval.features"):
        method.features(params, images, "max")
    views = method.reconstruct(params, images, {"masking": jax.random.PRNGKey(2)})
    assert set(views) == set(method.reconstruction_views)
    for v in views.values():
        assert v.shape == images.shape
    # visible patches are pasted back unchanged: 4 of 16 patches equal the input
    pasted = np.asarray(views["recon + visible"])
    same = np.isclose(pasted, np.asarray(images)).reshape(2, 4, 2, 4, 2, 3).all(axis=(2, 4, 5))
    assert (same.sum(axis=(1, 2)) >= 4).all()


def test_norm_pix_reconstruction_uses_target_statistics():
    """With norm-pix, a perfect normalised prediction maps back to the input pixels."""
    from mim_jax import targets
    from mim_jax.models.patch import patchify

    images = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3)) * 3 + 1
    patches = patchify(images, 2)
    normed = targets.pixel_targets(patches, norm_pix=True)
    back = targets.denormalize_predictions(normed, patches, norm_pix=True)
    np.testing.assert_allclose(back, patches, rtol=1e-5, atol=1e-5)
