"""Reconstruction targets and losses (pixels, per-patch normalized pixels)."""

import jax
import jax.numpy as jnp

NORM_PIX_EPS = 1e-6  # MAE `forward_loss`: (var + 1e-6) ** .5


def patch_stats(patches: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-patch mean and std as MAE's norm-pix loss computes them: [B, L, P] -> 2 x [B, L, 1].

    The variance is torch's default `Tensor.var` (unbiased, divides by P - 1).
    """
    patches = patches.astype(jnp.float32)
    mean = patches.mean(axis=-1, keepdims=True)
    var = patches.var(axis=-1, keepdims=True, ddof=1)
    return mean, jnp.sqrt(var + NORM_PIX_EPS)


def pixel_targets(patches: jax.Array, norm_pix: bool) -> jax.Array:
    """[B, L, P] target per patch: raw pixels, or each patch normalised by its own statistics."""
    patches = patches.astype(jnp.float32)
    if not norm_pix:
        return patches
    mean, std = patch_stats(patches)
    return (patches - mean) / std


def denormalize_predictions(pred: jax.Array, patches: jax.Array, norm_pix: bool) -> jax.Array:
    """Map norm-pix predictions back to pixel space using the target patches' statistics."""
    if not norm_pix:
        return pred
    mean, std = patch_stats(patches)
    return pred.astype(jnp.float32) * std + mean


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over masked tokens of the per-token MSE (MAE `forward_loss`), in float32.

    pred, target: [B, L, P]; mask: [B, L] with 1 = masked (counted), 0 = visible.
    """
    per_token = jnp.mean((pred.astype(jnp.float32) - target.astype(jnp.float32)) ** 2, axis=-1)
    return jnp.sum(per_token * mask) / jnp.sum(mask)


SIMMIM_EPS = 1e-5  # SimMIM models/simmim.py: / (mask.sum() + 1e-5) / in_chans


def masked_l1_pixels(images: jax.Array, recon: jax.Array, pixel_mask: jax.Array) -> jax.Array:
    """SimMIM's loss: L1 summed over masked pixels and channels, divided by the number of
    masked pixels (+1e-5) and by the channel count, in float32.

    images, recon: [B, H, W, C]; pixel_mask: [B, H, W] with 1 = masked.
    """
    diff = jnp.abs(images.astype(jnp.float32) - recon.astype(jnp.float32))
    m = pixel_mask.astype(jnp.float32)
    return jnp.sum(diff * m[..., None]) / (jnp.sum(m) + SIMMIM_EPS) / images.shape[-1]
