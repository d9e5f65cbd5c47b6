"""Optimizers and learning-rate schedules (optax)."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("cosine", "multistep")


def _warmup(step: jax.Array, peak_lr: float, warmup_steps: int, warmup_init: float):
    return warmup_init + (peak_lr - warmup_init) * step / max(warmup_steps, 1)


def warmup_cosine(
    peak_lr: float,
    total_steps: int,
    warmup_steps: int,
    min_lr: float = 0.0,
    warmup_init: float = 0.0,
) -> optax.Schedule:
    """Linear warmup from `warmup_init`, then half-cycle cosine to `min_lr`, per step.

    MAE `util/lr_sched.adjust_learning_rate` with epoch = step / steps_per_epoch.
    """

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = _warmup(step, peak_lr, warmup_steps, warmup_init)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        cosine = min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        return jnp.where(step < warmup_steps, warm, cosine)

    return schedule


def warmup_multistep(
    peak_lr: float,
    warmup_steps: int,
    milestones: tuple[int, ...],
    rate: float = 0.1,
    warmup_init: float = 0.0,
) -> optax.Schedule:
    """Linear warmup from `warmup_init`, then `peak_lr` times `rate` per milestone step
    passed (SimMIM's 800-epoch `multistep` schedule, lr_scheduler.py)."""
    bounds = jnp.asarray(milestones or (), jnp.float32)

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = _warmup(step, peak_lr, warmup_steps, warmup_init)
        drops = jnp.sum(step >= bounds) if len(milestones) else 0
        return jnp.where(step < warmup_steps, warm, peak_lr * rate**drops)

    return schedule


def decay_mask(params, skip: tuple[str, ...] = ()):
    """True where weight decay applies: >= 2-D tensors whose path names nothing in `skip`.

    timm's `param_groups_weight_decay` (used by MAE) exempts 1-D params and biases; the
    cls and mask tokens are [1, 1, D], so MAE does decay them. Methods whose official
    optimizer skips named params (VideoMAE: `no_weight_decay()`) list them in `skip`; a
    name matches at any depth (SimMIM's `encoder/cls_token`).
    """
    skip = frozenset(skip)

    def decays(path, p) -> bool:
        names = {getattr(k, "key", None) for k in path}
        return p.ndim > 1 and not names & skip

    return jax.tree_util.tree_map_with_path(decays, params)


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
    milestones: tuple[int, ...] = (),
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with the decay mask (minus the params named in `no_weight_decay`), optional
    global-norm clipping, and its lr schedule (`milestones`: steps of the multistep drops)."""
    o = config.optim
    peak = peak_lr(config)
    warmup_init = o.warmup_base_lr * peak / o.base_lr if o.base_lr else 0.0  # scaled alike
    if o.schedule == "cosine":
        schedule = warmup_cosine(peak, total_steps, warmup_steps, o.min_lr, warmup_init)
    elif o.schedule == "multistep":
        schedule = warmup_multistep(peak, warmup_steps, milestones, o.milestone_rate, warmup_init)
    else:
        raise ValueError(f"config.optim.schedule={o.schedule!r}; valid: {SCHEDULES}")
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
