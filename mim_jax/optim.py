"""Optimizers and learning-rate schedules (optax)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax


def warmup_cosine(
    peak_lr: float, total_steps: int, warmup_steps: int, min_lr: float = 0.0
) -> optax.Schedule:
    """Linear warmup from 0, then half-cycle cosine to `min_lr`, evaluated per step.

    MAE `util/lr_sched.adjust_learning_rate` with epoch = step / steps_per_epoch.
    """

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = peak_lr * step / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        cosine = min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        return jnp.where(step < warmup_steps, warm, cosine)

    return schedule


def decay_mask(params):
    """True where weight decay applies: >= 2-D tensors.

    timm's `param_groups_weight_decay` (used by MAE) exempts 1-D params and biases; the
    cls and mask tokens are [1, 1, D], so the official recipe does decay them.
    """
    return jax.tree.map(lambda p: p.ndim > 1, params)


def peak_lr(config: ml_collections.ConfigDict) -> float:
    """The linear scaling rule: lr = base_lr * batch_size / lr_base_batch."""
    return config.optim.base_lr * config.batch_size / config.optim.lr_base_batch


def make(
    config: ml_collections.ConfigDict, total_steps: int, warmup_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with the decay mask, optional global-norm clipping, and its lr schedule."""
    o = config.optim
    schedule = warmup_cosine(peak_lr(config), total_steps, warmup_steps, o.min_lr)
    parts = []
    if o.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(o.grad_clip))
    parts.append(
        optax.adamw(
            schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=decay_mask
        )
    )
    return optax.chain(*parts), schedule
