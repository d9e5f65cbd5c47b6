"""Optimizers and learning-rate schedules (optax)."""

import functools
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


def decay_mask(params, skip: tuple[str, ...] = ()):
    """True where weight decay applies: >= 2-D tensors outside the top-level names `skip`.

    timm's `param_groups_weight_decay` (used by MAE) exempts 1-D params and biases; the
    cls and mask tokens are [1, 1, D], so MAE does decay them. Methods whose official
    optimizer skips named params (VideoMAE: `no_weight_decay()`) list them in `skip`.
    """
    return {
        name: jax.tree.map(lambda p, decay=name not in skip: decay and p.ndim > 1, sub)
        for name, sub in params.items()
    }


def peak_lr(config: ml_collections.ConfigDict) -> float:
    """The linear scaling rule: lr = base_lr * examples per step / lr_base_batch.

    With repeated sampling (video `data.num_samples` clips per video) the examples are
    videos, batch_size / num_samples, as MAE-ST (`repeat_aug`) and VideoMAE V2
    (`num_sample`) compute it: their lr ignores the repeats.
    """
    d = config.data
    examples = config.batch_size // (d.num_samples if d.num_frames else 1)
    return config.optim.base_lr * examples / config.optim.lr_base_batch


def make(
    config: ml_collections.ConfigDict,
    total_steps: int,
    warmup_steps: int,
    no_weight_decay: tuple[str, ...] = (),
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with the decay mask (minus the top-level params `no_weight_decay`), optional
    global-norm clipping, and its lr schedule."""
    o = config.optim
    schedule = warmup_cosine(peak_lr(config), total_steps, warmup_steps, o.min_lr)
    parts = []
    if o.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(o.grad_clip))
    parts.append(
        optax.adamw(
            schedule,
            b1=o.b1,
            b2=o.b2,
            eps=o.eps,
            weight_decay=o.weight_decay,
            mask=functools.partial(decay_mask, skip=tuple(no_weight_decay)),
        )
    )
    return optax.chain(*parts), schedule
