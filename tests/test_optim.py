import math

import jax.numpy as jnp
import numpy as np
import optax

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
