"""Audio-MAE against the official model's structure: parameter counts of the pretraining
model, its position-embedding layout, and the global-decoder forward against a NumPy
re-implementation of models_mae.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import audiomae as audiomae_config
from mim_jax import methods
from mim_jax.methods.audiomae import AudioMAE, AudioMaskedAutoencoder
from tests.methods.test_mae import _count, np_block, np_linear, np_ln

SMALL = dict(
    image_size=(16, 8),  # 16 frames x 8 mel bins, 4 x 2 patches of 4
    channels=1,
    patch_size=4,
    width=16,
    depth=2,
    num_heads=2,
    decoder_width=8,
    decoder_depth=2,
    decoder_heads=2,
    mask_ratio=0.75,
)


def np_sincos_1d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.outer(pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def official_pos_table(dim, t, f):
    """get_2d_sincos_pos_embed_flexible on patch_hw = (F', T') with tokens k = t * F' + f:
    row 1 + k = [sincos(k mod T'), sincos(k div T')], cls row zero."""
    k = np.arange(t * f)
    table = np.concatenate([np_sincos_1d(dim // 2, k % t), np_sincos_1d(dim // 2, k // t)], 1)
    return np.concatenate([np.zeros((1, dim)), table])


@pytest.mark.parametrize("decoder, total", [("swin", 136_992_768), ("global", 111_656_448)])
def test_vit_b_parameter_count_matches_the_official_pretraining_model(decoder, total):
    config = audiomae_config.get_config(f"variant=B,decoder={decoder},data=synthetic")
    method = methods.build(config)
    shapes = jax.eval_shape(
        method.init, jax.random.key(0), {"image": jax.ShapeDtypeStruct((1, 1024, 128, 1), "f4")}
    )
    fixed = 513 * 768 + 513 * 512  # the frozen sin-cos tables, constants here
    assert _count(shapes) == total - fixed
    assert _count(shapes["encoder"]) == 12 * 7_087_872 + 2 * 768
    if decoder == "swin":  # 16 Swin-V2-CR blocks, whatever decoder_depth says officially
        assert _count(shapes["decoder"]) == 16 * 3_159_712 + 2 * 512


def test_position_table_follows_the_official_layout():
    model = AudioMaskedAutoencoder(**{**SMALL, "image_size": (1024, 128), "patch_size": 16})
    np.testing.assert_allclose(model.pos_table(768), official_pos_table(768, 64, 8), atol=1e-6)


def np_audiomae_forward(params, spec, noise, cfg):
    """models_mae.py forward with decoder_mode=0; spec [N, 1, T, F] as the official input."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    p = cfg["patch_size"]
    n, _, tt, ff = spec.shape
    t, f = tt // p, ff // p
    weight = params["patch_embed"]["proj"]["kernel"].transpose(3, 2, 0, 1)
    x = np.einsum("nchpwq,dcpq->nhwd", spec.reshape(n, 1, t, p, f, p), weight)
    x = x.reshape(n, t * f, -1) + params["patch_embed"]["proj"]["bias"]
    pos = official_pos_table(cfg["width"], t, f)
    x = x + pos[1:]
    length, keep = t * f, int(t * f * (1 - cfg["mask_ratio"]))
    ids_shuffle = np.argsort(noise, axis=1)
    ids_restore = np.argsort(ids_shuffle, axis=1)
    x = np.take_along_axis(x, ids_shuffle[:, :keep, None], axis=1)
    mask = np.take_along_axis(
        np.r_[np.zeros(keep), np.ones(length - keep)][None].repeat(n, 0), ids_restore, 1
    )
    x = np.concatenate([np.broadcast_to(params["cls_token"], (n, 1, cfg["width"])), x], axis=1)
    for i in range(cfg["depth"]):
        x = np_block(x, params["encoder"][f"blocks_{i}"], cfg["num_heads"])
    x = np_linear(np_ln(x, params["encoder"]["norm"]), params["decoder_embed"])
    tokens = np.concatenate(
        [x[:, 1:], np.broadcast_to(params["mask_token"], (n, length - keep, x.shape[2]))], axis=1
    )
    tokens = np.take_along_axis(tokens, ids_restore[..., None], axis=1)
    x = np.concatenate([x[:, :1], tokens], axis=1) + official_pos_table(cfg["decoder_width"], t, f)
    for i in range(cfg["decoder_depth"]):
        x = np_block(x, params["decoder"][f"blocks_{i}"], cfg["decoder_heads"])
    pred = np_linear(np_ln(x, params["decoder"]["norm"]), params["decoder_pred"])[:, 1:]
    target = np.einsum("nchpwq->nhwpqc", spec.reshape(n, 1, t, p, f, p)).reshape(n, length, -1)
    target = (target - target.mean(-1, keepdims=True)) / (
        target.var(-1, keepdims=True, ddof=1) + 1e-6
    ) ** 0.5
    loss = ((pred - target) ** 2).mean(-1)
    return (loss * mask).sum() / mask.sum(), pred, mask


def test_global_decoder_forward_matches_numpy_reference():
    method = AudioMAE(AudioMaskedAutoencoder(**SMALL, decoder_type="global"))
    rng = np.random.default_rng(0)
    spec = rng.normal(size=(3, 1, 16, 8))
    noise = rng.uniform(size=(3, 8))
    params = method.init(jax.random.key(1), {"image": np.zeros((1, 16, 8, 1))})
    out = method.forward(params, jnp.asarray(spec.transpose(0, 2, 3, 1), jnp.float32), noise=noise)
    ref_loss, ref_pred, ref_mask = np_audiomae_forward(params, spec, noise, SMALL)
    np.testing.assert_allclose(out["mask"], ref_mask)
    np.testing.assert_allclose(out["pred"], ref_pred, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["loss"], ref_loss, rtol=1e-5)


def test_patch_conv_bias_keeps_torch_default_init():
    model = AudioMaskedAutoencoder(**{**SMALL, "width": 256})
    params = model.init({"params": jax.random.key(0)}, jnp.zeros((1, 16, 8, 1)), jnp.zeros((1, 8)))
    bias = np.asarray(params["params"]["patch_embed"]["proj"]["bias"])
    assert 0.15 < np.abs(bias).max() <= 0.25  # U(+-1/sqrt(4 * 4 * 1))


def test_swin_decoder_predicts_every_patch_and_its_bias_dropout_trains():
    method = AudioMAE(AudioMaskedAutoencoder(**SMALL, window=(2, 2), shift=(1, 0)))
    params = method.init(jax.random.key(0), {"image": np.zeros((1, 16, 8, 1))})
    assert "blocks_1" in params["decoder"] and "tau" in params["decoder"]["blocks_0"]["attn"]
    x = jax.random.normal(jax.random.key(1), (2, 16, 8, 1))
    noise = jax.random.uniform(jax.random.key(2), (2, 8))
    out = method.forward(params, x, noise=noise)
    assert out["pred"].shape == (2, 8, 16) and out["latent"].shape == (2, 3, 16)
    a = method.forward(params, x, {"dropout": jax.random.key(3)}, noise=noise, train=True)
    b = method.forward(params, x, {"dropout": jax.random.key(4)}, noise=noise, train=True)
    assert not np.allclose(a["loss"], b["loss"])


def test_2d_masking_in_the_model_hides_rows_and_columns():
    model = AudioMaskedAutoencoder(**SMALL, mask_2d=True, mask_t_prob=0.5, mask_f_prob=0.5)
    method = AudioMAE(model)
    params = method.init(jax.random.key(0), {"image": np.zeros((1, 16, 8, 1))})
    assert model.noise_shape(5) == (5, 4 + 2)
    out = method.forward(params, jnp.ones((5, 16, 8, 1)), {"masking": jax.random.key(1)})
    grid = np.asarray(out["mask"]).reshape(5, 4, 2)
    assert out["latent"].shape == (5, 1 + 2 * 1, 16)  # 2 of 4 rows x 1 of 2 columns
    assert (grid.all(axis=2).sum(1) == 2).all() and (grid.all(axis=1).sum(1) == 1).all()


def test_reconstruction_views_are_spectrograms():
    method = AudioMAE(AudioMaskedAutoencoder(**SMALL, window=(2, 2), shift=(1, 0)))
    params = method.init(jax.random.key(0), {"image": np.zeros((1, 16, 8, 1))})
    x = jax.random.normal(jax.random.key(1), (2, 16, 8, 1))
    views = method.reconstruct(params, x, {"masking": jax.random.key(2)})
    assert all(v.shape == (2, 16, 8, 1) for v in views.values())
    np.testing.assert_allclose(views["original"], x, atol=1e-6)
