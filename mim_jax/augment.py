"""Batch-level augmentations of the MAE / DeiT fine-tuning recipe (timm label smoothing,
Mixup/CutMix in "batch" mode, RandomErasing), as pure static-shape JAX functions so they run
inside the jitted train step on the global batch, drawing all randomness from one key.
"""

import math

import jax
import jax.numpy as jnp

MIXUP_ALPHA = 0.8  # MAE FINETUNE.md: --mixup 0.8
CUTMIX_ALPHA = 1.0  # MAE FINETUNE.md: --cutmix 1.0
SWITCH_PROB = 0.5  # MAE main_finetune.py: --mixup_switch_prob 0.5
MIX_PROB = 1.0  # MAE main_finetune.py: --mixup_prob 1.0
REPROB = 0.25  # MAE FINETUNE.md: --reprob 0.25
ERASE_AREA = (0.02, 1 / 3)  # timm RandomErasing: min_area=0.02, max_area=1/3
ERASE_LOG_RATIO = (math.log(0.3), math.log(1 / 0.3))  # timm RandomErasing: min_aspect=0.3
ERASE_ATTEMPTS = 10  # timm RandomErasing._erase: `for attempt in range(10)`


def smooth_targets(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
    """labels [B] int -> [B, C] float32 one-hot with timm's smoothing (mixup.py
    `mixup_target`): off = smoothing / C, on = 1 - smoothing + off."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return one_hot * (on - off) + off


def _box_mask(
    height: int, width: int, y0: jax.Array, y1: jax.Array, x0: jax.Array, x1: jax.Array
) -> jax.Array:
    """bool [H, W], True inside rows [y0, y1) and columns [x0, x1); bounds of shape
    [N, 1, 1] give [N, H, W]."""
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def _uniform_int(u: jax.Array, high: jax.Array | int) -> jax.Array:
    """Uniform integers in [0, high) from uniform floats u in [0, 1) (broadcasting)."""
    return jnp.minimum(jnp.floor(u * high).astype(jnp.int32), jnp.asarray(high) - 1)


def _cutmix_box(
    u: jax.Array, height: int, width: int, lam: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """timm `rand_bbox` from u [2] uniform: a (H sqrt(1-lam), W sqrt(1-lam)) box centred at a
    uniform pixel, clipped to the image. Like timm it spans centre -/+ cut // 2, so an odd cut
    loses a pixel."""
    ratio = jnp.sqrt(1.0 - lam)
    cut_h = jnp.floor(height * ratio).astype(jnp.int32)
    cut_w = jnp.floor(width * ratio).astype(jnp.int32)
    cy, cx = _uniform_int(u[0], height), _uniform_int(u[1], width)
    y0 = jnp.clip(cy - cut_h // 2, 0, height)
    y1 = jnp.clip(cy + cut_h // 2, 0, height)
    x0 = jnp.clip(cx - cut_w // 2, 0, width)
    x1 = jnp.clip(cx + cut_w // 2, 0, width)
    return y0, y1, x0, x1


def mixup_cutmix(
    key: jax.Array,
    images: jax.Array,
    targets: jax.Array,
    mixup_alpha: float = MIXUP_ALPHA,
    cutmix_alpha: float = CUTMIX_ALPHA,
    switch_prob: float = SWITCH_PROB,
    prob: float = MIX_PROB,
    correct_lam: bool = True,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """timm `Mixup(mode="batch")`: one lambda and one mixup-or-cutmix choice per batch.

    images: [B, H, W, C] or clips [B, T, H, W, C] (one box for every frame, as VideoMAE);
    targets: [B, K] float (e.g. `smooth_targets`). Row i is mixed with row B-1-i (timm's
    `x.flip(0)`). Returns (images, targets t*lam + flip(t)*(1-lam), info) where info =
    {"lam": float32 [], "cutmix": bool []}; lam is 1 and cutmix False when not applied.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError("one of mixup_alpha, cutmix_alpha must be > 0")
    if images.shape[0] % 2:  # as timm: row B/2 would be mixed with itself
        raise ValueError(f"mixup/cutmix needs an even batch, got {images.shape[0]}")
    height, width = images.shape[-3], images.shape[-2]
    k_uniform, k_beta = jax.random.split(key)
    u = jax.random.uniform(k_uniform, (4,))  # apply, switch, box centre y, x

    apply = u[0] < prob
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = u[1] < switch_prob
    else:
        use_cutmix = jnp.asarray(cutmix_alpha > 0)
    # one Beta draw with the chosen alpha (a disabled alpha is never chosen)
    alpha = jnp.where(use_cutmix, cutmix_alpha, mixup_alpha) if mixup_alpha > 0 else cutmix_alpha
    lam = jnp.where(apply, jax.random.beta(k_beta, alpha, alpha), 1.0).astype(jnp.float32)
    use_cutmix = apply & use_cutmix

    y0, y1, x0, x1 = _cutmix_box(u[2:], height, width, lam)
    in_box = use_cutmix & _box_mask(height, width, y0, y1, x0, x1)  # [H, W]
    if correct_lam:
        area = ((y1 - y0) * (x1 - x0)).astype(jnp.float32)
        lam = jnp.where(use_cutmix, 1.0 - area / (height * width), lam)

    flipped = images[::-1]
    lam_x = lam.astype(images.dtype)
    mixed = images * lam_x + flipped * (1 - lam_x)
    cut = jnp.where(in_box[:, :, None], flipped, images)
    images = jnp.where(use_cutmix, cut, jnp.where(apply, mixed, images))
    targets = targets * lam + targets[::-1] * (1.0 - lam)
    return images, targets, {"lam": lam, "cutmix": use_cutmix}


def random_erasing(
    key: jax.Array,
    images: jax.Array,
    prob: float = REPROB,
    min_area: float = ERASE_AREA[0],
    max_area: float = ERASE_AREA[1],
    log_ratio: tuple[float, float] = ERASE_LOG_RATIO,
    mode: str = "pixel",  # MAE main_finetune.py: --remode pixel
) -> jax.Array:
    """timm `RandomErasing(probability=prob, mode=mode, max_count=1)` on normalised images.

    images: [B, H, W, C], or clips [B, T, H, W, C] with one draw and one box per clip shared
    by its frames (VideoMAE: timm's `cube=True` on the [T, C, H, W] clip), the fill drawn per
    frame. With probability `prob` per image (clip),
    10 tries of area ~ U[min_area, max_area] * H*W and aspect h/w = exp(U[log_ratio]),
    h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)); the first with h < H and
    w < W is placed at a uniform top-left and filled ("pixel": N(0, 1) per pixel and channel,
    "rand": one N(0, 1) per channel, "const": 0). No valid try leaves the image as is.
    """
    if mode not in ("pixel", "rand", "const"):
        raise ValueError(f"mode must be 'pixel', 'rand' or 'const', got {mode!r}")
    n, *frames, height, width, chans = images.shape
    k_uniform, k_fill = jax.random.split(key)
    u = jax.random.uniform(k_uniform, (n, 2 * ERASE_ATTEMPTS + 3))  # apply, tries, top, left
    tries = u[:, 1 : 1 + 2 * ERASE_ATTEMPTS].reshape(n, 2, ERASE_ATTEMPTS)

    area = (min_area + (max_area - min_area) * tries[:, 0]) * (height * width)
    aspect = jnp.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * tries[:, 1])
    hs = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)  # round half to even, as Python
    ws = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    valid = (hs < height) & (ws < width)
    first = jnp.argmax(valid, axis=1)[:, None]  # the first valid try (0 when none is)
    h = jnp.take_along_axis(hs, first, axis=1)[:, 0]
    w = jnp.take_along_axis(ws, first, axis=1)[:, 0]
    erase = (u[:, 0] < prob) & valid.any(axis=1)
    h, w = jnp.where(erase, h, 0), jnp.where(erase, w, 0)
    top = _uniform_int(u[:, -2], height - h + 1)  # timm random.randint(0, H - h): inclusive
    left = _uniform_int(u[:, -1], width - w + 1)

    bounds = (top, top + h, left, left + w)
    in_box = _box_mask(height, width, *(b[:, None, None] for b in bounds))  # [N, H, W]
    in_box = in_box.reshape(n, *(1 for _ in frames), height, width, 1)
    if mode == "pixel":
        fill = jax.random.normal(k_fill, images.shape, images.dtype)
    elif mode == "rand":
        fill = jax.random.normal(k_fill, (n, *frames, 1, 1, chans), images.dtype)
    else:
        fill = jnp.zeros((), images.dtype)
    return jnp.where(in_box, fill, images)
