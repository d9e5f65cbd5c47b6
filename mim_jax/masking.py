"""Pure, static-shape mask generators shared by all methods.

Every generator returns a `MaskSpec`; the number of kept tokens is fixed at trace time so
XLA compiles once. Masking draws from its own RNG stream (never the dropout one).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MaskSpec(NamedTuple):
    """Which tokens an encoder sees.

    ids_keep:    [B, K] int32, indices of visible tokens (in shuffled order).
    ids_restore: [B, L] int32, inverse permutation: ids_shuffle[ids_restore] == arange(L).
    mask:        [B, L] float32, 0 = visible, 1 = masked, in the original token order.
    """

    ids_keep: jax.Array
    ids_restore: jax.Array
    mask: jax.Array


def num_kept(num_tokens: int, mask_ratio: float) -> int:
    """Visible tokens per sample, `int(L * (1 - ratio))` as in MAE's `random_masking`."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return int(num_tokens * (1 - mask_ratio))


def mask_from_noise(noise: jax.Array, mask_ratio: float) -> MaskSpec:
    """MAE per-sample masking: keep the `len_keep` tokens with the smallest noise.

    noise: [B, L] (e.g. uniform [0, 1)); supplying it explicitly reproduces another
    implementation's masks exactly.
    """
    _, length = noise.shape
    keep = num_kept(length, mask_ratio)
    ids_shuffle = jnp.argsort(noise, axis=1)  # ascending: small is keep, large is remove
    ids_restore = jnp.argsort(ids_shuffle, axis=1)
    mask = (ids_restore >= keep).astype(jnp.float32)
    return MaskSpec(
        ids_keep=ids_shuffle[:, :keep].astype(jnp.int32),
        ids_restore=ids_restore.astype(jnp.int32),
        mask=mask,
    )


def random_masking(key: jax.Array, batch: int, num_tokens: int, mask_ratio: float) -> MaskSpec:
    """Uniform random masking of `mask_ratio` of `num_tokens`, independently per sample."""
    return mask_from_noise(jax.random.uniform(key, (batch, num_tokens)), mask_ratio)


def gather_tokens(x: jax.Array, ids: jax.Array) -> jax.Array:
    """x [B, L, D], ids [B, K] -> [B, K, D]."""
    return jnp.take_along_axis(x, ids[..., None], axis=1)


def scatter_tokens(x: jax.Array, ids: jax.Array, length: int) -> jax.Array:
    """x [B, K, D] placed at positions ids [B, K] of zeros [B, length, D]: the inverse of
    `gather_tokens` where it is defined (e.g. predictions of a subset of patches)."""
    rows = jnp.arange(x.shape[0])[:, None]
    return jnp.zeros((x.shape[0], length, x.shape[2]), x.dtype).at[rows, ids].set(x)


def mask_from_bool(mask: jax.Array, num_keep: int) -> MaskSpec:
    """MaskSpec of a boolean mask [B, L] (True = masked) with exactly `num_keep` False per row.

    Visible tokens keep their original order (ascending index), as in VideoMAE, where the
    encoder takes `x[~mask]`; `ids_restore` then puts [visible, masked] back in place.
    """
    ids_shuffle = jnp.argsort(mask.astype(jnp.int32), axis=1, stable=True)  # visible first
    ids_restore = jnp.argsort(ids_shuffle, axis=1)
    return MaskSpec(
        ids_keep=ids_shuffle[:, :num_keep].astype(jnp.int32),
        ids_restore=ids_restore.astype(jnp.int32),
        mask=mask.astype(jnp.float32),
    )


def tube_mask(noise: jax.Array, num_frames: int, mask_ratio: float) -> jax.Array:
    """VideoMAE tube masking: one random spatial mask repeated over all temporal positions.

    noise [B, H*W] -> bool [B, T*H*W] (True = masked), token order (t, h, w). Masks
    `int(ratio * H*W)` patches per frame, as `TubeMaskingGenerator` (VideoMAE
    masking_generator.py), so 0.9 of 14x14 masks 176 and keeps 20 per frame.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    per_frame = noise.shape[1]
    num_masked = int(mask_ratio * per_frame)
    rank = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)  # a uniform random permutation
    spatial = rank >= per_frame - num_masked  # [B, H*W]
    return jnp.tile(spatial, (1, num_frames))


def tube_masking(
    key: jax.Array, batch: int, grid: tuple[int, int, int], mask_ratio: float
) -> MaskSpec:
    """Tube masking over a (T, H, W) token grid, independently per sample."""
    t, h, w = grid
    mask = tube_mask(jax.random.uniform(key, (batch, h * w)), t, mask_ratio)
    return mask_from_bool(mask, t * (h * w - int(mask_ratio * h * w)))


def running_cell_patterns(grid: tuple[int, int, int], mask_ratio: float = 0.5) -> np.ndarray:
    """All VideoMAE V2 running-cell decoder masks: bool [4, T*H*W] (True = not decoded).

    A 2x2 cell holds the queue [1]*m + [0]*(4-m), m = int(4 * ratio); each temporal step
    rotates it by one, and the cell is tiled over the H x W grid. Pattern p starts at
    pointer p (V2 masking_generator.py `RunningCellMaskingGenerator` / `Cell`).
    """
    t, h, w = grid
    masked = int(4 * mask_ratio)
    if not 0 < masked < 4:
        raise ValueError(f"running-cell mask_ratio must give 1-3 of 4 cells, got {mask_ratio}")
    if h % 2 or w % 2:
        raise ValueError(f"running-cell masking needs an even spatial grid, got {h}x{w}")
    queue = np.array([1] * masked + [0] * (4 - masked), bool)
    patterns = []
    for start in range(4):
        frames = []
        for step in range(1, t + 1):  # the pointer advances before each frame's cell is read
            cell = queue[(np.arange(4) + start + step) % 4].reshape(2, 2)
            frames.append(np.tile(cell, (h // 2, w // 2)).reshape(-1))
        patterns.append(np.concatenate(frames))
    return np.stack(patterns)


def running_cell_mask(
    key: jax.Array, batch: int, grid: tuple[int, int, int], mask_ratio: float = 0.5
) -> jax.Array:
    """One random running-cell pattern per sample: bool [B, T*H*W] (True = not decoded)."""
    patterns = jnp.asarray(running_cell_patterns(grid, mask_ratio))
    return patterns[jax.random.randint(key, (batch,), 0, len(patterns))]


def time_freq_mask(
    noise_t: jax.Array, noise_f: jax.Array, mask_t_prob: float, mask_f_prob: float
) -> tuple[jax.Array, int]:
    """Audio-MAE's 2-D masking of a [T, F] patch grid: whole time rows and whole frequency
    columns, `T - int(T (1 - p_t))` rows and `F - int(F (1 - p_f))` columns per sample
    (the largest noise). noise_t [B, T], noise_f [B, F] -> (bool [B, T*F] True = masked,
    token order (t, f); the visible count). Official `random_masking_2d` (models_mae.py)."""
    t, f = noise_t.shape[1], noise_f.shape[1]
    keep_t, keep_f = num_kept(t, mask_t_prob), num_kept(f, mask_f_prob)
    masked_t = jnp.argsort(jnp.argsort(noise_t, axis=1), axis=1) >= keep_t  # [B, T]
    masked_f = jnp.argsort(jnp.argsort(noise_f, axis=1), axis=1) >= keep_f  # [B, F]
    mask = masked_t[:, :, None] | masked_f[:, None, :]
    return mask.reshape(mask.shape[0], t * f), keep_t * keep_f


def time_freq_masking(
    noise_t: jax.Array, noise_f: jax.Array, mask_t_prob: float, mask_f_prob: float
) -> MaskSpec:
    """MaskSpec of `time_freq_mask`; visible tokens stay in raster order, as officially."""
    mask, keep = time_freq_mask(noise_t, noise_f, mask_t_prob, mask_f_prob)
    return mask_from_bool(mask, keep)


def _rect(
    grid: tuple[int, int], top: jax.Array, left: jax.Array, h: jax.Array, w: jax.Array
) -> jax.Array:
    """bool [H, W], True inside rows [top, top + h) and columns [left, left + w)."""
    rows = jnp.arange(grid[0])[:, None]
    cols = jnp.arange(grid[1])[None, :]
    return (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)


def _mask_random_extra(key: jax.Array, mask: jax.Array, extra: jax.Array) -> jax.Array:
    """Masks `extra` more of the still-visible positions of `mask` [L], uniformly at random."""
    noise = jnp.where(mask, 2.0, jax.random.uniform(key, mask.shape))  # masked ones sort last
    return mask | (jnp.argsort(jnp.argsort(noise)) < extra)


def block_mask(
    key: jax.Array,
    grid: tuple[int, int],
    num_masked: int,
    min_patches: int = 16,
    max_patches: int | None = None,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    exact: bool = True,
    max_attempts: int | None = None,
) -> jax.Array:
    """BEiT block-wise masking of one (H, W) grid -> bool [H*W] (True = masked, raster order).

    Rectangles (area ~ U[min_patches, budget], aspect h/w log-uniform) are kept when they add
    1..budget new patches, budget = min(patches still wanted, max_patches). `exact=False`: BEiT
    (unilm beit/masking_generator.py), which stops after 10 failed tries in a row, often a few
    short. `exact=True`: CAE (Atten4Vis/CAE furnace/masking_generator.py), which retries until
    exactly `num_masked`; past `max_attempts` tries the rest is masked at random, as in BEiT v2
    (unilm beit2/masking_generator.py), so the loop always ends.
    """
    height, width = grid
    if not 0 <= num_masked <= height * width:
        raise ValueError(
            f"num_masked must be in [0, {height * width}] for grid {grid}, got {num_masked}"
        )
    max_patches = num_masked if max_patches is None else max_patches
    max_aspect = 1 / min_aspect if max_aspect is None else max_aspect
    if not 0 < min_aspect <= max_aspect:
        raise ValueError(f"need 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}")
    if num_masked and max_patches < 1:
        raise ValueError(f"max_patches must be >= 1, got {max_patches}")
    # Without the CAE retry the loop ends by itself: each round of <= 10 tries adds a patch or
    # stops. With it, 1000 tries is far in the tail (~200 at most in 20k draws of 98 of 14x14).
    bound = 10 * (num_masked + 1)
    max_attempts = (max(bound, 1000) if exact else bound) if max_attempts is None else max_attempts
    log_aspect = (math.log(min_aspect), math.log(max_aspect))
    loop_key, fill_key = jax.random.split(key)

    def unfinished(state):
        step, fails, count, _ = state
        going = (count < num_masked) & (step < max_attempts)
        return going if exact else going & (fails < 10)

    # One try of BEiT masking_generator.py `MaskingGenerator._mask` (unilm/beit).
    def attempt(state):
        step, fails, count, mask = state
        budget = jnp.minimum(num_masked - count, max_patches)
        u = jax.random.uniform(jax.random.fold_in(loop_key, step), (4,))
        # random.uniform(a, b) = a + (b - a) u, also when budget < min_patches
        area = min_patches + (budget - min_patches) * u[0]
        aspect = jnp.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * u[1])
        # jnp.round rounds half to even, like Python's round in the official code
        h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
        w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
        # random.randint(0, H - h), both ends included
        top = jnp.minimum(jnp.floor(u[2] * (height - h + 1)).astype(jnp.int32), height - h)
        left = jnp.minimum(jnp.floor(u[3] * (width - w + 1)).astype(jnp.int32), width - w)
        rect = _rect(grid, top, left, h, w)
        new = jnp.sum(rect & ~mask)
        ok = (h < height) & (w < width) & (new > 0) & (new <= budget)
        mask = jnp.where(ok, mask | rect, mask)
        return step + 1, jnp.where(ok, 0, fails + 1), count + jnp.where(ok, new, 0), mask

    zero = jnp.zeros((), jnp.int32)
    init = (zero, zero, zero, jnp.zeros(grid, bool))
    _, _, count, mask = jax.lax.while_loop(unfinished, attempt, init)
    mask = mask.reshape(-1)
    if exact:
        mask = _mask_random_extra(fill_key, mask, num_masked - count)
    return mask


def block_mask_batch(
    key: jax.Array, batch: int, grid: tuple[int, int], num_masked: int, **kw
) -> jax.Array:
    """`block_mask` drawn independently per sample: bool [B, H*W] (True = masked)."""
    return jax.vmap(lambda k: block_mask(k, grid, num_masked, **kw))(jax.random.split(key, batch))


def block_masking(
    key: jax.Array, batch: int, grid: tuple[int, int], num_masked: int, **kw
) -> MaskSpec:
    """MaskSpec of exactly `num_masked` block-masked tokens per sample (CAE); visible tokens
    stay in raster order. `kw` goes to `block_mask` (exact is forced)."""
    if not kw.pop("exact", True):
        raise ValueError("block_masking needs an exact count; use block_mask_batch(exact=False)")
    mask = block_mask_batch(key, batch, grid, num_masked, exact=True, **kw)
    return mask_from_bool(mask, grid[0] * grid[1] - num_masked)


def simmim_mask(
    key: jax.Array,
    batch: int,
    image_size: tuple[int, int],
    mask_patch_size: int,
    model_patch_size: int,
    mask_ratio: float,
) -> jax.Array:
    """SimMIM masking: `ceil(cells * ratio)` random mask_patch_size cells, each spread over
    the model patches it covers -> bool [B, (H/p)*(W/p)] (True = masked), raster order.

    Follows SimMIM data/data_simmim.py `MaskGenerator`, generalised to H != W.
    """
    height, width = image_size
    if height % mask_patch_size or width % mask_patch_size:
        raise ValueError(
            f"image_size {image_size} must be divisible by mask_patch_size {mask_patch_size}"
        )
    if mask_patch_size % model_patch_size:
        raise ValueError(
            f"mask_patch_size {mask_patch_size} must be divisible by "
            f"model_patch_size {model_patch_size}"
        )
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
    rows, cols = height // mask_patch_size, width // mask_patch_size
    scale = mask_patch_size // model_patch_size
    num_cells = int(np.ceil(rows * cols * mask_ratio))  # ceil of the float product, as official
    rank = jnp.argsort(jnp.argsort(jax.random.uniform(key, (batch, rows * cols)), axis=1), axis=1)
    cells = (rank < num_cells).reshape(batch, rows, cols)  # a random subset of num_cells cells
    mask = jnp.repeat(jnp.repeat(cells, scale, axis=1), scale, axis=2)  # [B, H/p, W/p]
    return mask.reshape(batch, rows * scale * cols * scale)
