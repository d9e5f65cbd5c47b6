"""Image patchify/unpatchify (MAE's element order) and the patch-embedding layer."""

from collections.abc import Callable

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

# Conv kernel [p, p, C, D] initialised like a Linear of shape [p*p*C, D] (xavier over the
# flattened view), as MAE's `initialize_weights` does for `patch_embed.proj`.
patch_kernel_init = jax.nn.initializers.variance_scaling(
    1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=-1
)


def patch_grid(image_size: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """The (h, w) patch grid of an image, failing on sizes the patches do not tile."""
    (h, w), p = image_size, patch_size
    if h % p or w % p:
        raise ValueError(f"image size {tuple(image_size)} is not divisible by patch {p}")
    return h // p, w // p


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
    bias_init: Callable = nn.initializers.zeros
    kernel_init: Callable = patch_kernel_init

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        p = self.patch_size
        x = nn.Conv(
            self.embed_dim,
            (p, p),
            strides=(p, p),
            padding="VALID",
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            dtype=self.dtype,
            name="proj",
        )(images)
        return einops.rearrange(x, "b h w d -> b (h w) d")


def patchify_video(videos: jax.Array, tubelet: int, patch_size: int) -> jax.Array:
    """[B, T, H, W, C] -> [B, L, u*p*p*C]: tokens in (t, h, w) order, each cube flattened as
    (u, p, q, c), VideoMAE's `(p0 p1 p2 c)` target layout."""
    return einops.rearrange(
        videos,
        "b (t u) (h p) (w q) c -> b (t h w) (u p q c)",
        u=tubelet,
        p=patch_size,
        q=patch_size,
    )


def unpatchify_video(
    patches: jax.Array, tubelet: int, patch_size: int, grid: tuple[int, int, int]
) -> jax.Array:
    """[B, L, u*p*p*C] -> [B, T, H, W, C]; the inverse of `patchify_video` on a (t, h, w) grid."""
    t, h, w = grid
    return einops.rearrange(
        patches,
        "b (t h w) (u p q c) -> b (t u) (h p) (w q) c",
        t=t,
        h=h,
        w=w,
        u=tubelet,
        p=patch_size,
        q=patch_size,
    )


# torch's default Linear/Conv init (kaiming_uniform, a=sqrt(5)): U(+-1/sqrt(fan_in)). VideoMAE
# keeps it for its tubelet embedding and `encoder_to_decoder` (`_init_weights` skips them).
torch_default_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_conv_bias_init(fan_in: int):
    bound = 1.0 / fan_in**0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


class TubeletEmbed(nn.Module):
    """Non-overlapping u x p x p cubes -> D-dim tokens: [B, T, H, W, C] -> [B, T/u*H/p*W/p, D].

    `weight_init`: "torch" (Conv3d default, VideoMAE) or "xavier" (weight over the flattened kernel,
    MAE-ST's `initialize_weights`; its bias keeps torch's default)."""

    tubelet: int
    patch_size: int
    embed_dim: int
    weight_init: str = "xavier"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, videos: jax.Array) -> jax.Array:
        u, p = self.tubelet, self.patch_size
        if self.weight_init == "torch":
            fan_in = u * p * p * videos.shape[-1]
            inits = dict(kernel_init=torch_default_init, bias_init=torch_conv_bias_init(fan_in))
        elif self.weight_init == "xavier":
            kernel_init = jax.nn.initializers.variance_scaling(
                1.0, "fan_avg", "uniform", in_axis=(0, 1, 2, 3), out_axis=-1
            )
            fan_in = u * p * p * videos.shape[-1]
            inits = dict(kernel_init=kernel_init, bias_init=torch_conv_bias_init(fan_in))
        else:
            raise ValueError(
                f"TubeletEmbed init must be 'torch' or 'xavier', got {self.weight_init!r}"
            )
        x = nn.Conv(
            self.embed_dim,
            (u, p, p),
            strides=(u, p, p),
            padding="VALID",
            dtype=self.dtype,
            name="proj",
            **inits,
        )(videos)
        return einops.rearrange(x, "b t h w d -> b (t h w) d")


def video_grid(
    num_frames: int, image_size: tuple[int, int], tubelet: int, patch_size: int
) -> tuple[int, int, int]:
    """The (t, h, w) token grid of a clip, failing on sizes the cubes do not tile."""
    h, w = image_size
    if num_frames % tubelet or h % patch_size or w % patch_size:
        raise ValueError(
            f"clip {num_frames}x{h}x{w} (config.data.num_frames x image_size) is not "
            f"divisible by the {tubelet}x{patch_size}x{patch_size} tubelet"
        )
    return num_frames // tubelet, h // patch_size, w // patch_size
