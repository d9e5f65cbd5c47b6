"""Image patchify/unpatchify (MAE's element order) and the patch-embedding layer."""

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

# Conv kernel [p, p, C, D] initialised like a Linear of shape [p*p*C, D] (xavier over the
# flattened view), as MAE's `initialize_weights` does for `patch_embed.proj`.
patch_kernel_init = jax.nn.initializers.variance_scaling(
    1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=-1
)


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
    """[B, H, W, C] -> [B, L, p*p*C], row-major patches, each flattened as (p, q, c)."""
    return einops.rearrange(
        images, "b (h p) (w q) c -> b (h w) (p q c)", p=patch_size, q=patch_size
    )


def unpatchify(patches: jax.Array, patch_size: int, grid: tuple[int, int]) -> jax.Array:
    """[B, L, p*p*C] -> [B, H, W, C]; the inverse of `patchify` for an h x w grid."""
    h, w = grid
    return einops.rearrange(
        patches, "b (h w) (p q c) -> b (h p) (w q) c", h=h, w=w, p=patch_size, q=patch_size
    )


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> D-dim tokens: [B, H, W, C] -> [B, L, D]."""

    patch_size: int
    embed_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        p = self.patch_size
        x = nn.Conv(
            self.embed_dim,
            (p, p),
            strides=(p, p),
            padding="VALID",
            kernel_init=patch_kernel_init,
            dtype=self.dtype,
            name="proj",
        )(images)
        return einops.rearrange(x, "b h w d -> b (h w) d")
