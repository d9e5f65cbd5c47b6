import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import mae as mae_config
from mim_jax import optim


def official_lr(epoch, lr, min_lr, warmup, epochs):
    """util/lr_sched.adjust_learning_rate."""
    if epoch < warmup:
        return lr * epoch / warmup
    return min_lr + (lr - min_lr) * 0.5 * (
        1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup))
    )


def test_schedule_matches_official_per_iteration():
    steps_per_epoch, epochs, warmup = 10, 20, 4
    schedule = optim.warmup_cosine(1e-3, epochs * steps_per_epoch, warmup * steps_per_epoch, 1e-5)
    for step in (0, 1, 17, 40, 41, 123, 199, 200):
        expected = official_lr(step / steps_per_epoch, 1e-3, 1e-5, warmup, epochs)
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-9)


def test_decay_mask_follows_timm_param_groups():
    params = {
        "cls_token": jnp.zeros((1, 1, 8)),
        "mask_token": jnp.zeros((1, 1, 8)),
        "dense": {"kernel": jnp.zeros((8, 8)), "bias": jnp.zeros(8)},
        "norm": {"scale": jnp.zeros(8), "bias": jnp.zeros(8)},
        "conv": {"kernel": jnp.zeros((2, 2, 3, 8))},
    }
    mask = optim.decay_mask(params)
    assert mask["cls_token"] and mask["mask_token"]  # [1, 1, D]: decayed, as in the official run
    assert mask["dense"]["kernel"] and mask["conv"]["kernel"]
    assert not mask["dense"]["bias"] and not mask["norm"]["scale"] and not mask["norm"]["bias"]


def test_one_step_matches_torch_adamw_with_masked_decay():
    config = mae_config.get_config()
    config.batch_size, config.optim.base_lr, config.optim.lr_base_batch = 256, 0.1, 256
    config.optim.weight_decay = 0.05
    tx, _ = optim.make(config, total_steps=10, warmup_steps=0)  # lr(step 0) = 0.1
    params = {"w": jnp.full((2, 2), 2.0), "b": jnp.full((2,), 2.0)}
    grads = {"w": jnp.full((2, 2), 0.5), "b": jnp.full((2,), 0.5)}
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    # torch AdamW step 1: p *= 1 - lr * wd; m_hat = g, v_hat = g^2; p -= lr * g / (|g| + eps)
    lr, b1, b2, eps = 0.1, 0.9, 0.95, 1e-8
    m_hat = (1 - b1) * 0.5 / (1 - b1)
    v_hat = (1 - b2) * 0.25 / (1 - b2)
    adam = lr * m_hat / (math.sqrt(v_hat) + eps)
    np.testing.assert_allclose(new["w"], 2.0 * (1 - lr * 0.05) - adam, rtol=1e-6)
    np.testing.assert_allclose(new["b"], 2.0 - adam, rtol=1e-6)


def _two_steps(grad_clip, g1, g2):
    config = mae_config.get_config()
    config.optim.grad_clip = grad_clip
    config.optim.weight_decay = 0.0
    tx, _ = optim.make(config, total_steps=10, warmup_steps=0)
    params = {"a": jnp.zeros(3)}
    state = tx.init(params)
    for g in (g1, g2):
        updates, state = tx.update({"a": jnp.full((3,), g)}, state, params)
    return np.asarray(updates["a"])


def test_grad_clip_bounds_the_global_norm_before_adam():
    clip = float(np.sqrt(3.0))  # a gradient of ones has exactly this norm: left unchanged
    np.testing.assert_allclose(_two_steps(clip, 100.0, 1.0), _two_steps(None, 1.0, 1.0), rtol=1e-6)
    assert not np.allclose(_two_steps(None, 100.0, 1.0), _two_steps(None, 1.0, 1.0))


def test_peak_lr_scales_linearly_with_batch():
    config = mae_config.get_config("variant=B/16")
    assert optim.peak_lr(config) == 1.5e-4 * 4096 / 256


def test_multistep_schedule_warms_up_from_its_start_then_drops_at_milestones():
    """SimMIM's 800-epoch schedule: linear from warmup_lr, constant, x0.1 at each milestone."""
    sched = optim.warmup_multistep(4e-4, 10, (100, 150), rate=0.1, warmup_init=2e-6)
    lrs = [float(sched(s)) for s in (0, 5, 10, 99, 100, 149, 150, 400)]
    np.testing.assert_allclose(
        lrs, [2e-6, 2e-6 + 0.5 * (4e-4 - 2e-6), 4e-4, 4e-4, 4e-5, 4e-5, 4e-6, 4e-6], rtol=1e-5
    )


def test_simmim_recipe_uses_the_multistep_schedule_scaled_by_batch_over_512():
    from configs import simmim as simmim_config

    config = simmim_config.get_config("variant=ViT-B/16")
    _, sched = optim.make(config, total_steps=800, warmup_steps=10, milestones=(700,))
    np.testing.assert_allclose(float(sched(0)), 5e-7 * 2048 / 512, rtol=1e-5)
    np.testing.assert_allclose(float(sched(699)), 4e-4, rtol=1e-5)
    np.testing.assert_allclose(float(sched(700)), 4e-5, rtol=1e-5)


def test_decay_mask_exempts_names_at_any_depth():
    params = {
        "encoder": {"cls_token": jnp.zeros((1, 1, 4)), "blocks": {"w": jnp.zeros((4, 4))}},
        "mask_token": jnp.zeros((1, 1, 4)),
    }
    mask = optim.decay_mask(params, ("cls_token",))
    assert not mask["encoder"]["cls_token"] and mask["encoder"]["blocks"]["w"]
    assert mask["mask_token"]


def _lars_config(**optim):
    config = mae_config.get_config()
    config.batch_size, config.optim.lr_base_batch = 256, 256
    config.optim.update(name="lars", base_lr=0.5, momentum=0.9, trust_coefficient=0.001)
    config.optim.update(**optim)
    return config


def test_lars_step_matches_mae_util_lars_by_hand():
    # total_steps 1e9: the cosine lr stays 0.5 over the two steps
    tx, _ = optim.make(_lars_config(weight_decay=0.1), total_steps=10**9, warmup_steps=0)
    params = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.array([1.0, 2.0])}
    grads = {"w": jnp.array([[0.3, 0.4], [0.0, 0.0]]), "b": jnp.array([0.5, -0.5])}
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    # w (2-D): d = g + 0.1 p = [[0.6, 0.4], [0, 0.4]]; |p| = 5, |d| = sqrt(0.68);
    # q = 0.001 * 5 / |d|; mu = d q; p -= 0.5 mu. b (1-D): excluded, mu = g, p -= 0.5 g.
    d = np.array([[0.6, 0.4], [0.0, 0.4]])
    q = 0.001 * 5.0 / np.sqrt(0.68)
    np.testing.assert_allclose(updates["w"], -0.5 * d * q, rtol=1e-6)
    np.testing.assert_allclose(updates["b"], -0.5 * np.array([0.5, -0.5]), rtol=1e-6)
    # second step: momentum mu = 0.9 mu + d' (same grads, params moved)
    new_params = optax.apply_updates(params, updates)
    updates2, _ = tx.update(grads, state, new_params)
    p2 = np.asarray(new_params["w"])
    d2 = np.asarray(grads["w"]) + 0.1 * p2
    q2 = 0.001 * np.linalg.norm(p2) / np.linalg.norm(d2)
    np.testing.assert_allclose(updates2["w"], -0.5 * (0.9 * d * q + d2 * q2), rtol=1e-5)
    np.testing.assert_allclose(updates2["b"], -0.5 * 1.9 * np.array([0.5, -0.5]), rtol=1e-6)


def test_lars_trust_ratio_is_one_for_zero_params_or_zero_updates():
    tx, _ = optim.make(_lars_config(weight_decay=0.0), total_steps=10, warmup_steps=0)
    params = {"zero_p": jnp.zeros((2, 2)), "zero_g": jnp.ones((2, 2))}
    grads = {"zero_p": jnp.full((2, 2), 0.25), "zero_g": jnp.zeros((2, 2))}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["zero_p"], -0.5 * 0.25 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["zero_g"], 0.0)


def test_sgd_adds_weight_decay_before_momentum_like_torch():
    config = _lars_config(name="sgd", weight_decay=0.1)
    tx, _ = optim.make(config, total_steps=10, warmup_steps=0)
    params, grads = {"w": jnp.full((2, 2), 2.0)}, {"w": jnp.full((2, 2), 0.5)}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5 * (0.5 + 0.1 * 2.0), rtol=1e-6)


def test_layer_decay_scales_are_maes_vit_b_table():
    # MAE param_groups_lrd for ViT-B (12 blocks, decay 0.65): num_layers = 13, layer i
    # gets 0.65 ** (13 - i); tokens and patch embedding are layer 0, block j layer j + 1.
    leaf = jnp.zeros((1,))
    params = {
        "cls_token": leaf,
        "pos_embed": leaf,
        "patch_embed": {"proj": {"kernel": leaf}},
        "encoder": {f"blocks_{j}": {"attn": {"qkv": {"kernel": leaf}}} for j in range(12)},
        "fc_norm": {"scale": leaf},
        "head": {"kernel": leaf},
    }
    scales = optim.layer_decay_scales(params, depth=12, decay=0.65)
    for key in ("cls_token", "pos_embed"):
        assert scales[key] == pytest.approx(0.65**13)
    assert scales["patch_embed"]["proj"]["kernel"] == pytest.approx(0.65**13)
    for j in range(12):
        assert scales["encoder"][f"blocks_{j}"]["attn"]["qkv"]["kernel"] == pytest.approx(
            0.65 ** (12 - j)
        )
    assert scales["fc_norm"]["scale"] == 1.0 and scales["head"]["kernel"] == 1.0


def test_layer_scales_multiply_the_whole_adamw_update_and_frozen_params_stay():
    config = mae_config.get_config()
    config.batch_size, config.optim.lr_base_batch, config.optim.base_lr = 256, 256, 0.1
    params = {"a": jnp.full((2, 2), 2.0), "b": jnp.full((2, 2), 2.0), "c": jnp.full((2, 2), 2.0)}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    plain, _ = optim.make(config, 10, 0)
    base, _ = plain.update(grads, plain.init(params), params)
    scales = {"a": 1.0, "b": 0.25, "c": 1.0}
    trainable = {"a": True, "b": True, "c": False}
    tx, _ = optim.make(config, 10, 0, layer_scales=scales, trainable=trainable)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["a"], base["a"], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], 0.25 * np.asarray(base["b"]), rtol=1e-6)
    np.testing.assert_array_equal(updates["c"], 0.0)
