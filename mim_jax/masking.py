"""Pure, static-shape mask generators shared by all methods.

Every generator returns a `MaskSpec`; the number of kept tokens is fixed at trace time so
XLA compiles once. Masking draws from its own RNG stream (never the dropout one).
"""

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
