"""VideoMAE / V2 against numbers measured on the official PyTorch code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import videomae as videomae_config
from configs import videomae_v2 as v2_config
from mim_jax import methods
from mim_jax.methods import videomae


def num_params(config) -> int:
    method = methods.build(config)
    shape = (1, config.data.num_frames, config.data.image_size, config.data.image_size, 3)
    example = {"image": jax.ShapeDtypeStruct(shape, jnp.float32)}
    abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0), example)
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract))


@pytest.mark.parametrize(
    "module, variant, expected",
    [  # sum(p.numel()) of the official pretrain_videomae_*_patch16_224, decoder_depth 4
        (videomae_config, "S/16", 24_029_376),
        (videomae_config, "B/16", 94_210_944),
        (v2_config, "g/14", 1_026_306_560),  # VideoMAEv2 pretrain_videomae_giant_patch14_224
    ],
)
def test_parameter_count_equals_the_official_model(module, variant, expected):
    config = module.get_config(f"variant={variant},data=synthetic")
    config.model.decoder_depth = 4
    assert num_params(config) == expected


def tiny(decoder_mask_ratio=0.0, norm_target=True):
    return videomae.VideoMAEModel(
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
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
        mask_ratio=0.5,
        decoder_mask_ratio=decoder_mask_ratio,
        norm_target=norm_target,
    )


def test_cube_target_equals_an_independent_numpy_computation():
    """engine_for_pretraining.py: per channel within each 2x4x4 cube of the [0, 1] video,
    unbiased variance, (x - mean) / (std + 1e-6); layout (t, h, w, c)."""
    model = tiny()
    rng = np.random.default_rng(0)
    raw = rng.uniform(size=(2, 4, 8, 8, 3)).astype(np.float32)  # [0, 1] pixels
    videos = (raw - np.array(model.mean)) / np.array(model.std)
    params, _ = init(model)
    targets = model.apply({"params": params}, videos, method=videomae.VideoMAEModel.targets)
    ours = np.asarray(targets)
    expected = np.zeros((2, 8, 2 * 4 * 4 * 3), np.float32)
    for b in range(2):
        for t in range(2):
            for h in range(2):
                for w in range(2):
                    cube = raw[b, 2 * t : 2 * t + 2, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4]
                    cube = cube.reshape(-1, 3)  # (t, h, w) pixels x channels
                    norm = (cube - cube.mean(0)) / (cube.std(0, ddof=1) + 1e-6)
                    expected[b, t * 4 + h * 2 + w] = norm.reshape(-1)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def init(model):
    x = jnp.zeros((2, 4, 8, 8, 3))
    rngs = {"params": jax.random.PRNGKey(0), "masking": jax.random.PRNGKey(1)}
    return model.init(rngs, x)["params"], x


def test_v1_predicts_exactly_the_masked_tokens_with_mse_over_them():
    model = tiny()
    params, x = init(model)
    x = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    mask = np.zeros((2, 8), bool)
    mask[0, [0, 2, 4, 6]] = True  # tube mask at ratio 0.5: 2 of 4 per frame
    mask[1, [1, 3, 5, 7]] = True
    out = model.apply({"params": params}, x, jnp.asarray(mask))
    np.testing.assert_array_equal(out["ids_pred"], [[0, 2, 4, 6], [1, 3, 5, 7]])
    assert out["pred"].shape == (2, 4, 96)
    mse = np.mean((np.asarray(out["pred"]) - np.asarray(out["target"])) ** 2)
    np.testing.assert_allclose(out["loss"], mse, rtol=1e-6)


def test_v2_decoder_computes_only_the_cell_selected_tokens():
    model = tiny(decoder_mask_ratio=0.5)
    params, x = init(model)
    x = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    out = model.apply({"params": params}, x, rngs={"masking": jax.random.PRNGKey(3)})
    assert out["pred"].shape == (2, 4, 96)  # half of the 8 positions, not all masked ones
    # explicit masks: the loss counts decoded positions the encoder did not see
    mask = np.array([[1, 0, 1, 0, 1, 0, 1, 0]] * 2, bool)
    decode_mask = np.array([[1, 1, 0, 0, 0, 0, 1, 1]] * 2, bool)  # decode positions 2-5
    out = model.apply({"params": params}, x, jnp.asarray(mask), jnp.asarray(decode_mask))
    np.testing.assert_array_equal(out["ids_pred"], [[2, 3, 4, 5]] * 2)
    err = np.mean((np.asarray(out["pred"]) - np.asarray(out["target"])) ** 2, axis=-1)
    counted = err[:, [0, 2]]  # positions 2 and 4 are masked; 3 and 5 were visible
    np.testing.assert_allclose(out["loss"], counted.mean(), rtol=1e-6)


def test_no_weight_decay_on_the_mask_token():
    from mim_jax import optim

    params, _ = init(tiny())
    mask = optim.decay_mask(params, skip=videomae.VideoMAE.no_weight_decay)
    assert not mask["mask_token"] and mask["encoder_to_decoder"]["kernel"]
    assert not mask["encoder"]["blocks_0"]["attn"]["q_bias"]


def test_reconstruction_views_are_clips_and_restore_visible_cubes():
    model = tiny(norm_target=False)
    params, x = init(model)
    x = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    views = videomae.VideoMAE(model).reconstruct(params, x, {"masking": jax.random.PRNGKey(4)})
    assert set(views) == set(videomae.VideoMAE.reconstruction_views)
    assert all(v.shape == x.shape for v in views.values())
    # visible cubes are copied from the input; the masked view is black where hidden
    same = np.isclose(np.asarray(views["recon + visible"]), np.asarray(x), atol=1e-5)
    assert 0.3 < same.mean() < 0.7  # half the tubes visible
