"""Swin Transformer (v1), the hierarchical backbone SimMIM pretrains, with its mask token.

Follows microsoft/SimMIM `models/swin_transformer.py` (scaled dot-product window attention
with a learned relative-position bias table, pre-norm residuals, patch merging between
stages) and `models/simmim.py` `SwinTransformerForSimMIM` (masked patch embeddings replaced by
a learned token). Feature maps stay [B, H, W, C] throughout, row-major like the official
token order, so parameters map one to one onto the official state dict
(`layers.{i}.blocks.{j}` -> `stages_{i}/blocks_{j}`, `layers.{i}.downsample` ->
`stages_{i}/downsample`).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models import vit
from mim_jax.models.attention import logits_einsum
from mim_jax.models.patch import torch_conv_bias_init, torch_default_init
from mim_jax.models.vit import drop_path
from mim_jax.models.window import shift_mask, window_partition, window_reverse

# SimMIM swin_transformer.py `_init_weights`: trunc_normal_(std=.02) Linear weights (also the
# bias table and mask token). timm cuts at +-2 absolute, i.e. 100 std: a plain normal.
trunc_init = nn.initializers.normal(stddev=0.02)
LN_EPS = 1e-5  # torch nn.LayerNorm default, which Swin uses


def layer_norm(name: str, dtype) -> nn.LayerNorm:
    """LayerNorm as torch computes it (two-pass variance), eps 1e-5."""
    return vit.layer_norm(name, dtype, LN_EPS)


def dense(features: int, name: str, dtype, use_bias: bool = True) -> nn.Dense:
    """Linear with Swin's init: normal(.02) weights, zero bias."""
    return nn.Dense(features, use_bias=use_bias, kernel_init=trunc_init, dtype=dtype, name=name)


def stage_window(resolution: tuple[int, int], window: int) -> tuple[int, int]:
    """(window, shift for odd blocks) of a stage: a grid whose shorter side fits in one window
    gets a square window of that side and no shift (SimMIM `SwinTransformerBlock.__init__`;
    `window.effective_window` instead clamps each axis on its own, as timm's V2-CR does)."""
    if min(resolution) <= window:
        win, shift = min(resolution), 0
    else:
        win, shift = window, window // 2
    if any(r % win for r in resolution):
        raise ValueError(
            f"stage grid {resolution} is not divisible by window {win} (model.window_size)"
        )
    return win, shift


def relative_position_index(window: int) -> np.ndarray:
    """[N, N] int32 row of the [(2w-1)^2] bias table for every token pair (i, j) in a w x w
    window: (dr + w - 1) * (2w - 1) + (dc + w - 1), dr/dc the offsets of i from j."""
    return vit.relative_position_index((window, window), cls_token=False)


class WindowAttention(nn.Module):
    """(Shifted-)window multi-head attention on a grid: [B, H, W, C] -> [B, H, W, C].

    The grid is rolled by -shift, cut into window x window tiles, attended within each tile
    with softmax(q k^T / sqrt(d) + bias [+ -100 across wrapped regions]) and put back; bias
    comes from the `relative_position_bias_table` [(2w-1)^2, heads]. `window`/`shift` must
    already be the stage's clamped values (`stage_window`).
    """

    num_heads: int
    window: int
    shift: int = 0
    dtype: jnp.dtype = jnp.float32

    def position_bias(self) -> jax.Array:
        """[heads, N, N] bias of every token pair in a window, looked up in the table."""
        n = self.window**2
        table = self.param(
            "relative_position_bias_table",
            trunc_init,
            ((2 * self.window - 1) ** 2, self.num_heads),
        )
        index = relative_position_index(self.window).reshape(-1)
        return table[index].reshape(n, n, self.num_heads).transpose(2, 0, 1)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, h, w, c = x.shape
        heads, win, shift = self.num_heads, (self.window, self.window), (self.shift, self.shift)
        if c % heads:
            raise ValueError(f"width {c} is not divisible by num_heads={heads}")
        if shift[0]:
            x = jnp.roll(x, (-shift[0], -shift[1]), axis=(1, 2))
        windows = window_partition(x, win)  # [B * nW, N, C]
        bw, n, _ = windows.shape
        qkv = dense(3 * c, "qkv", self.dtype)(windows)
        q, k, v = jnp.moveaxis(qkv.reshape(bw, n, 3, heads, c // heads), 2, 0)  # [Bw, N, h, d]
        q = q * jnp.asarray((c // heads) ** -0.5, q.dtype)
        logits = logits_einsum("bihd,bjhd->bhij", q, k)  # float32 accumulation and softmax
        logits = logits + self.position_bias()
        if shift[0]:
            mask = jnp.asarray(shift_mask((h, w), win, shift))  # [nW, N, N]
            nw = mask.shape[0]
            logits = logits.reshape(bw // nw, nw, heads, n, n) + mask[None, :, None]
            logits = logits.reshape(bw, heads, n, n)
        attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhij,bjhd->bihd", attn, v).reshape(bw, n, c)
        out = window_reverse(dense(c, "proj", self.dtype)(out), win, (h, w))
        if shift[0]:
            out = jnp.roll(out, shift, axis=(1, 2))
        return out


class SwinMlp(nn.Module):
    """fc1 -> exact GELU -> fc2, Swin's init."""

    hidden_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.gelu(dense(self.hidden_dim, "fc1", self.dtype)(x), approximate=False)
        return dense(x.shape[-1], "fc2", self.dtype)(y)


class SwinBlock(nn.Module):
    """Pre-norm block: x + DP(WindowAttention(LN(x))), then x + DP(MLP(LN(x))). [B, H, W, C]."""

    num_heads: int
    window: int
    shift: int = 0
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        attn = WindowAttention(self.num_heads, self.window, self.shift, self.dtype, name="attn")
        x = x + drop_path(attn(layer_norm("norm1", self.dtype)(x)), self.drop_path, train, self)
        mlp = SwinMlp(int(x.shape[-1] * self.mlp_ratio), self.dtype, name="mlp")
        y = mlp(layer_norm("norm2", self.dtype)(x))
        return x + drop_path(y, self.drop_path, train, self)


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated as (0,0), (1,0), (0,1), (1,1) (row, col), LayerNorm(4C),
    Linear(4C -> 2C, no bias): [B, H, W, C] -> [B, H/2, W/2, 2C] (SimMIM `PatchMerging`)."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"patch merging needs an even grid, got {h}x{w}")
        x = jnp.concatenate(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1
        )
        x = layer_norm("norm", self.dtype)(x)
        return dense(2 * c, "reduction", self.dtype, use_bias=False)(x)


class SwinStage(nn.Module):
    """`len(drop_paths)` blocks, odd ones shifted, then an optional PatchMerging."""

    num_heads: int
    window: int
    drop_paths: Sequence[float]
    mlp_ratio: float = 4.0
    downsample: bool = True
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"  # vit.REMAT_POLICIES

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        win, shift = stage_window(x.shape[1:3], self.window)
        block = vit.remat_block(SwinBlock, self.remat)
        for j, rate in enumerate(self.drop_paths):
            x = block(
                self.num_heads,
                win,
                shift if j % 2 else 0,
                self.mlp_ratio,
                float(rate),
                self.dtype,
                name=f"blocks_{j}",
            )(x, train)
        return PatchMerging(self.dtype, name="downsample")(x) if self.downsample else x


class SwinPatchEmbed(nn.Module):
    """p x p conv (stride p) then LayerNorm: [B, H, W, C] -> [B, H/p, W/p, D]. The conv is
    outside Swin's `_init_weights`, so it keeps torch's Conv2d default init."""

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
            kernel_init=torch_default_init,
            bias_init=torch_conv_bias_init(p * p * images.shape[-1]),
            dtype=self.dtype,
            name="proj",
        )(images)
        return layer_norm("norm", self.dtype)(x)


class SwinTransformer(nn.Module):
    """SimMIM's Swin encoder: [B, H, W, C] (+ mask [B, L] bool, L = (H/p)(W/p), row-major)
    -> final-norm feature map [B, H/stride, W/stride, num_features].

    Patch embedding = p x p conv + LayerNorm; masked embeddings become the learned
    `mask_token` (always created, unused when mask is None); no absolute position embedding;
    drop-path rates rise linearly over all blocks. Swin-B SimMIM: image 192, embed 128,
    depths (2, 2, 18, 2), heads (4, 8, 16, 32), window 6 -> [B, 6, 6, 1024].
    """

    image_size: Sequence[int]
    embed_dim: int
    depths: Sequence[int]
    num_heads: Sequence[int]
    window_size: int
    patch_size: int = 4
    channels: int = 3
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"  # vit.REMAT_POLICIES

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def stride(self) -> int:
        """Pixels per cell of the output map (32 for the 4-stage, patch-4 model)."""
        return self.patch_size * 2 ** (len(self.depths) - 1)

    @nn.compact
    def __call__(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        b, h, w, c = images.shape
        p = self.patch_size
        if (h, w) != tuple(self.image_size) or c != self.channels:
            raise ValueError(
                f"images {h}x{w}x{c} do not match image_size {tuple(self.image_size)} "
                f"x channels {self.channels}"
            )
        if h % self.stride or w % self.stride:
            raise ValueError(f"image {h}x{w} is not divisible by the output stride {self.stride}")
        if len(self.num_heads) != len(self.depths):
            raise ValueError(f"{len(self.depths)} depths but {len(self.num_heads)} num_heads")
        x = SwinPatchEmbed(p, self.embed_dim, self.dtype, name="patch_embed")(images)
        token = self.param("mask_token", trunc_init, (1, 1, self.embed_dim))
        if mask is not None:
            # SimMIM simmim.py SwinTransformerForSimMIM.forward: x * (1 - w) + token * w
            m = mask.reshape(b, h // p, w // p, 1)
            x = jnp.where(m, token[0].astype(x.dtype), x)
        rates = np.linspace(0.0, self.drop_path, sum(self.depths))
        start = 0
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            x = SwinStage(
                heads,
                self.window_size,
                tuple(rates[start : start + depth].tolist()),
                self.mlp_ratio,
                downsample=i < len(self.depths) - 1,
                dtype=self.dtype,
                remat=self.remat,
                name=f"stages_{i}",
            )(x, train)
            start += depth
        return layer_norm("norm", self.dtype)(x)


def global_pool(feature_map: jax.Array) -> jax.Array:
    """[B, h, w, C] -> [B, C]: mean over the final map, Swin's pooled features (its avgpool
    after the final norm), for linear/kNN probes."""
    return feature_map.mean(axis=(1, 2))
