"""Pure, static-shape mask generators shared by all methods.

Every generator returns a `MaskSpec`; the number of kept tokens is fixed at trace time so
XLA compiles once. Masking draws from its own RNG stream (never the dropout one).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


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
