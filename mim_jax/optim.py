"""Optimizers and learning-rate schedules (optax)."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("cosine", "multistep")
OPTIMIZERS = ("adamw", "lars", "sgd")


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


def lars(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    trust_coefficient: float = 0.001,
    mask=None,
) -> optax.GradientTransformation:
    """LARS as MAE's `util/lars.py` (linear probing): for each param where `mask` holds
    (>= 2-D: not biases or norms), d = g + wd * p scaled by the trust ratio
    tc * |p| / |d| (1 when either norm is 0); other params take g unchanged. Then heavy-ball
    momentum mu = momentum * mu + d and p -= lr * mu."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params):
        masks = mask(params) if callable(mask) else mask
        if masks is None:
            masks = jax.tree.map(lambda p: p.ndim > 1, params)

        def adapt(g, p, adapted):
            if not adapted:
                return g
            d = g + weight_decay * p
            p_norm, d_norm = jnp.linalg.norm(p), jnp.linalg.norm(d)
            ratio = jnp.where((p_norm > 0) & (d_norm > 0), trust_coefficient * p_norm / d_norm, 1.0)
            return d * ratio

        return jax.tree.map(adapt, updates, params, masks), state

    return optax.chain(
        optax.GradientTransformation(init_fn, update_fn),
        optax.trace(decay=momentum, nesterov=False),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    mask=None,
) -> optax.GradientTransformation:
    """torch.optim.SGD: g + wd * p (where `mask` holds), momentum, p -= lr * mu."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask),
        optax.trace(decay=momentum, nesterov=False),
        optax.scale_by_learning_rate(learning_rate),
    )


def vit_layer_id(path: tuple[str, ...], depth: int) -> int:
    """MAE `util/lr_decay.get_layer_id_for_vit` on our names: cls/pos tokens and the patch
    embedding are layer 0, `encoder/blocks_i` is layer i + 1, the rest (final or fc
    norm, head) is layer depth + 1."""
    if path[0] in ("cls_token", "pos_embed", "patch_embed"):
        return 0
    if path[0] == "encoder" and len(path) > 1 and path[1].startswith("blocks_"):
        return int(path[1].removeprefix("blocks_")) + 1
    return depth + 1


def layer_decay_scales(params, depth: int, decay: float):
    """Per-param lr multipliers decay ** (depth + 1 - layer_id) (MAE `param_groups_lrd`:
    num_layers = depth + 1, scale of layer i = decay ** (num_layers - i))."""

    def scale(path, _):
        names = tuple(str(getattr(k, "key", k)) for k in path)
        return decay ** (depth + 1 - vit_layer_id(names, depth))

    return jax.tree_util.tree_map_with_path(scale, params)


def scale_by_tree(scales) -> optax.GradientTransformation:
    """Multiplies each update by a fixed per-param factor (layer-wise lr decay: the whole
    AdamW update, weight decay included, as MAE scales each param group's lr)."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def make(
    config: ml_collections.ConfigDict,
    total_steps: int,
    warmup_steps: int,
    no_weight_decay: tuple[str, ...] = (),
    milestones: tuple[int, ...] = (),
    layer_scales=None,
    trainable=None,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer of `config.optim.name` (AdamW, LARS or SGD) with the decay mask (minus
    the params named in `no_weight_decay`), optional global-norm clipping, per-param lr
    multipliers `layer_scales` (a tree of floats), frozen params where the bool tree
    `trainable` is False, and its lr schedule (`milestones`: multistep drop steps)."""
    o = config.optim
    peak = peak_lr(config)
    warmup_init = o.warmup_base_lr * peak / o.base_lr if o.base_lr else 0.0  # scaled alike
    if o.schedule == "cosine":
        schedule = warmup_cosine(peak, total_steps, warmup_steps, o.min_lr, warmup_init)
    elif o.schedule == "multistep":
        schedule = warmup_multistep(peak, warmup_steps, milestones, o.milestone_rate, warmup_init)
    else:
        raise ValueError(f"config.optim.schedule={o.schedule!r}; valid: {SCHEDULES}")
    mask = functools.partial(decay_mask, skip=tuple(no_weight_decay))
    if o.name == "adamw":
        opt = optax.adamw(
            schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=mask
        )
    elif o.name == "lars":
        opt = lars(schedule, o.momentum, o.weight_decay, o.trust_coefficient, mask)
    elif o.name == "sgd":
        opt = sgd(schedule, o.momentum, o.weight_decay, mask)
    else:
        raise ValueError(f"config.optim.name={o.name!r}; valid: {OPTIMIZERS}")
    parts = []
    if o.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(o.grad_clip))
    parts.append(opt)
    tx = optax.chain(*parts)
    if trainable is not None:
        labels = jax.tree.map(lambda t: "train" if t else "freeze", trainable)
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
    if layer_scales is not None:
        tx = optax.chain(tx, scale_by_tree(layer_scales))
    return tx, schedule
