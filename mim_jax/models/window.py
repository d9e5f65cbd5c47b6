"""Shifted-window attention on a 2-D token grid (Swin), for local decoders and
hierarchical backbones.

The window helpers (partition, reverse, shift-region mask) follow Swin; the block is the
Swin-V2 "CR" variant Audio-MAE decodes with (its `timm_patch/swin_transformer.py`, timm's
`swin_transformer_v2_cr.py` of early 2022): cosine attention divided by a learned
per-head temperature, a continuous relative-position bias from a small MLP on
log-spaced offsets, and post-norm residuals `x + LN(f(x))`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models.attention import logits_einsum
from mim_jax.models.vit import Mlp, dense_init, layer_norm, remat_block

MASK_VALUE = -100.0  # added to logits across shifted regions (Swin's value)


def effective_window(
    grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Window and shift clamped to the grid: an axis no longer than its window gets the
    whole axis and no shift (timm's `_calc_window_shift`)."""
    win = tuple(min(w, g) for w, g in zip(window, grid))
    sft = tuple(0 if g <= w else s for g, w, s in zip(grid, window, shift))
    for g, w, s in zip(grid, win, sft):
        if g % w:
            raise ValueError(
                f"token grid {grid} is not divisible by window {window} (model.window)"
            )
        if not 0 <= s < w:
            raise ValueError(f"shift {shift} must be in [0, window) per axis, window {window}")
    return win, sft


def window_partition(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """[B, H, W, C] -> [B * nW, wh * ww, C]; windows row-major, tokens row-major inside."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.reshape(b, h // wh, wh, w // ww, ww, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: jax.Array, window: tuple[int, int], grid: tuple[int, int]):
    """[B * nW, wh * ww, C] -> [B, H, W, C]; the inverse of `window_partition`."""
    (h, w), (wh, ww) = grid, window
    c = windows.shape[-1]
    x = windows.reshape(-1, h // wh, w // ww, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_mask(grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]):
    """[nW, N, N] float32: 0 between tokens of the same region of the rolled grid, else
    MASK_VALUE. Along a shifted axis the last `window` positions split into the part
    that belongs there and the `shift` that wrapped around; unshifted axes add nothing."""
    regions = []
    for n, w, s in zip(grid, window, shift):
        r = np.zeros(n, np.int32)
        if s:
            r[n - w : n - s], r[n - s :] = 1, 2
        regions.append(r)
    ids = regions[0][:, None] * 3 + regions[1][None, :]  # [H, W]
    ids = np.asarray(window_partition(ids[None, :, :, None], window))[..., 0]  # [nW, N]
    return np.where(ids[:, :, None] != ids[:, None, :], MASK_VALUE, 0.0).astype(np.float32)


def log_relative_coords(window: tuple[int, int]) -> np.ndarray:
    """[N * N, 2] offsets (r_i - r_j, c_i - c_j) of every token pair in a window, mapped
    by sign(d) * ln(1 + |d|) (Swin-V2 log-spaced coordinates, natural log, unscaled)."""
    coords = np.stack(np.meshgrid(*map(np.arange, window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).reshape(2, -1).T  # [N * N, 2]
    return (np.sign(rel) * np.log1p(np.abs(rel))).astype(np.float32)


class CosineWindowAttention(nn.Module):
    """Swin-V2-CR window attention: [B * nW, N, C] (+ mask [nW, N, N]) -> [B * nW, N, C].

    logits = cos(q, k) / max(tau, 0.01) + MLP(log offsets) [+ shift mask]; `tau` starts
    at 1 per head. The bias MLP (2 -> meta_hidden -> heads, ReLU) has dropout after
    each layer, active in training as officially.
    """

    num_heads: int
    window: tuple[int, int]
    meta_hidden: int = 384
    meta_dropout: float = 0.1
    dtype: jnp.dtype = jnp.float32

    def position_bias(self, train: bool) -> jax.Array:
        """[heads, N, N] continuous relative-position bias."""
        n = self.window[0] * self.window[1]
        x = jnp.asarray(log_relative_coords(self.window))
        x = nn.Dense(self.meta_hidden, kernel_init=dense_init, name="meta_fc1")(x)
        x = nn.Dropout(self.meta_dropout, deterministic=not train)(nn.relu(x))
        x = nn.Dense(self.num_heads, kernel_init=dense_init, name="meta_fc2")(x)
        x = nn.Dropout(self.meta_dropout, deterministic=not train)(x)
        return x.T.reshape(self.num_heads, n, n)

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None, train: bool = False):
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = nn.Dense(3 * c, kernel_init=dense_init, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(bw, n, 3, heads, c // heads), 2, 0)  # [Bw, N, h, d]
        # q k^T from compute-dtype operands, accumulated in float32; norms in float32.
        logits = logits_einsum("bihd,bjhd->bhij", q, k)
        norms = jnp.linalg.norm(q.astype(jnp.float32), axis=-1).transpose(0, 2, 1)  # [Bw, h, N]
        norms_k = jnp.linalg.norm(k.astype(jnp.float32), axis=-1).transpose(0, 2, 1)
        logits = logits / jnp.maximum(norms[..., :, None] * norms_k[..., None, :], 1e-6)
        tau = self.param("tau", nn.initializers.ones, (heads,))
        logits = logits / jnp.maximum(tau, 0.01)[:, None, None]
        logits = logits + self.position_bias(train)
        if mask is not None:
            nw = mask.shape[0]
            logits = logits.reshape(bw // nw, nw, heads, n, n) + mask[None, :, None]
            logits = logits.reshape(bw, heads, n, n)
        attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhij,bjhd->bihd", attn, v).reshape(bw, n, c)
        return nn.Dense(c, kernel_init=dense_init, dtype=self.dtype, name="proj")(out)


class CosineWindowBlock(nn.Module):
    """Swin-V2-CR block on tokens [B, H*W, C] in row-major grid order: (shifted) window
    attention and an MLP, each as `x + LN(f(x))` (post-norm)."""

    num_heads: int
    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int] = (0, 0)
    mlp_ratio: float = 4.0
    meta_hidden: int = 384
    meta_dropout: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        b, length, c = x.shape
        h, w = self.grid
        if length != h * w:
            raise ValueError(f"{length} tokens do not fill the {h}x{w} grid")
        window, shift = effective_window(self.grid, self.window, self.shift)
        y = x.reshape(b, h, w, c)
        if any(shift):
            y = jnp.roll(y, (-shift[0], -shift[1]), axis=(1, 2))
        mask = jnp.asarray(shift_mask(self.grid, window, shift)) if any(shift) else None
        attn = CosineWindowAttention(
            self.num_heads, window, self.meta_hidden, self.meta_dropout, self.dtype, name="attn"
        )
        y = window_reverse(attn(window_partition(y, window), mask, train), window, self.grid)
        if any(shift):
            y = jnp.roll(y, shift, axis=(1, 2))
        x = x + layer_norm("norm1", self.dtype)(y.reshape(b, length, c))
        y = Mlp(int(c * self.mlp_ratio), dtype=self.dtype, name="mlp")(x)
        return x + layer_norm("norm2", self.dtype)(y)


class CosineWindowDecoder(nn.Module):
    """`depth` CosineWindowBlocks alternating shift (0, 0) and `shift`, then a LayerNorm:
    Audio-MAE's local decoder (decoder_mode=1). [B, H*W, C] -> [B, H*W, C]."""

    depth: int
    num_heads: int
    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]
    mlp_ratio: float = 4.0
    meta_hidden: int = 384
    meta_dropout: float = 0.1
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"  # vit.REMAT_POLICIES

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        block = remat_block(CosineWindowBlock, self.remat)
        for i in range(self.depth):
            x = block(
                self.num_heads,
                self.grid,
                self.window,
                self.shift if i % 2 else (0, 0),
                self.mlp_ratio,
                self.meta_hidden,
                self.meta_dropout,
                self.dtype,
                name=f"blocks_{i}",
            )(x, train)
        return layer_norm("norm", self.dtype)(x)
