"""Vision Transformer blocks (timm/MAE layout: pre-norm, fused qkv, exact GELU, LN eps 1e-6)."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models import posemb
from mim_jax.models.patch import PatchEmbed

# MAE `_init_weights`: xavier-uniform Linear weights, zero biases; LayerNorm (1, 0).
dense_init = nn.initializers.xavier_uniform()
token_init = nn.initializers.normal(stddev=0.02)  # cls/mask tokens: normal(std=.02)
LN_EPS = 1e-6
QKV_BIAS = ("qkv", "qv", "none")


def split_qkv_init(key, shape, dtype=jnp.float32):
    """A fused [D, 3D] qkv kernel initialised as three xavier-uniform [D, D] Linears."""
    d = shape[0]
    keys = jax.random.split(key, 3)
    return jnp.concatenate([dense_init(k, (d, d), dtype) for k in keys], axis=1)


def layer_norm(name: str, dtype) -> nn.LayerNorm:
    """LayerNorm as torch computes it (two-pass variance), eps 1e-6."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, dtype=dtype, name=name)


class Mlp(nn.Module):
    """fc1 -> GELU (erf, as torch's nn.GELU) -> fc2."""

    hidden_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_dim = x.shape[-1]
        x = nn.Dense(self.hidden_dim, kernel_init=dense_init, dtype=self.dtype, name="fc1")(x)
        x = nn.gelu(x, approximate=False)
        return nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype, name="fc2")(x)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection: [B, N, D] -> [B, N, D].

    `qkv_bias`: "qkv" (timm/MAE), "qv" (VideoMAE: learned q and v biases, k bias fixed at
    zero) or "none". `implementation` goes to `jax.nn.dot_product_attention` (None: XLA).
    """

    num_heads: int
    dtype: jnp.dtype = jnp.float32
    implementation: str | None = None
    qkv_bias: str = "qkv"
    split_init: bool = False  # xavier per q/k/v [D, D] (separate Linears, MAE-ST)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}")
        if self.qkv_bias not in QKV_BIAS:
            raise ValueError(f"qkv_bias must be one of {QKV_BIAS}, got {self.qkv_bias!r}")
        fused = self.qkv_bias == "qkv"
        init = split_qkv_init if self.split_init else dense_init
        qkv = nn.Dense(3 * d, use_bias=fused, kernel_init=init, dtype=self.dtype, name="qkv")(x)
        if self.qkv_bias == "qv":
            q_bias = self.param("q_bias", nn.initializers.zeros, (d,))
            v_bias = self.param("v_bias", nn.initializers.zeros, (d,))
            qkv = qkv + jnp.concatenate([q_bias, jnp.zeros_like(q_bias), v_bias]).astype(qkv.dtype)
        # timm's split order: [B, N, 3, heads, head_dim]
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads), 2, 0)
        out = jax.nn.dot_product_attention(q, k, v, implementation=self.implementation)
        out = out.reshape(b, n, d)
        return nn.Dense(d, kernel_init=dense_init, dtype=self.dtype, name="proj")(out)


class Block(nn.Module):
    """Pre-norm transformer block with optional stochastic depth (per-sample drop path)."""

    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    qkv_bias: str = "qkv"
    split_init: bool = False

    def _drop_path(self, x: jax.Array, train: bool) -> jax.Array:
        if not train or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
        return jnp.where(mask, x / keep, 0).astype(x.dtype)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        attn = Attention(
            self.num_heads,
            dtype=self.dtype,
            qkv_bias=self.qkv_bias,
            split_init=self.split_init,
            name="attn",
        )
        y = attn(layer_norm("norm1", self.dtype)(x))
        x = x + self._drop_path(y, train)
        hidden = int(x.shape[-1] * self.mlp_ratio)
        y = Mlp(hidden, dtype=self.dtype, name="mlp")(layer_norm("norm2", self.dtype)(x))
        return x + self._drop_path(y, train)


class Encoder(nn.Module):
    """`depth` blocks then (unless `final_norm=False`) a LayerNorm: [B, N, D] -> [B, N, D].

    Drop-path rates rise linearly from 0 to `drop_path` over depth (timm convention).
    """

    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    final_norm: bool = True
    qkv_bias: str = "qkv"
    split_init: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        rates = np.linspace(0.0, self.drop_path, self.depth) if self.depth else []
        for i, rate in enumerate(rates):
            x = Block(
                self.num_heads,
                self.mlp_ratio,
                float(rate),
                dtype=self.dtype,
                qkv_bias=self.qkv_bias,
                split_init=self.split_init,
                name=f"blocks_{i}",
            )(x, train)
        return layer_norm("norm", self.dtype)(x) if self.final_norm else x


class VisionTransformer(nn.Module):
    """Supervised ViT classifier (timm `VisionTransformer` parameterisation).

    posemb: "learn" (timm, cls slot included) or "sincos2d" (fixed, MAE pretraining);
    pool: "cls" token after the final norm, or "gap": mean of patch tokens then `fc_norm`
    with no final norm before it (MAE fine-tuning's `global_pool`).
    [B, H, W, C] -> [B, num_classes] (or [B, D] features when num_classes == 0).
    """

    image_size: Sequence[int]
    patch_size: int
    width: int
    depth: int
    num_heads: int
    num_classes: int = 1000
    mlp_ratio: float = 4.0
    posemb: str = "learn"
    pool: str = "cls"
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        grid = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        x = PatchEmbed(self.patch_size, self.width, dtype=self.dtype, name="patch_embed")(images)
        cls = self.param("cls_token", token_init, (1, 1, self.width))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
        if self.posemb == "learn":
            pos = self.param("pos_embed", token_init, (1, x.shape[1], self.width))
        elif self.posemb == "sincos2d":
            pos = posemb.sincos_2d(self.width, grid, cls_token=True)[None]
        else:
            raise ValueError(f"posemb must be 'learn' or 'sincos2d', got {self.posemb!r}")
        x = (x + pos).astype(self.dtype)
        if self.pool not in ("cls", "gap"):
            raise ValueError(f"pool must be 'cls' or 'gap', got {self.pool!r}")
        x = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.drop_path,
            self.dtype,
            final_norm=self.pool == "cls",
            name="encoder",
        )(x, train)
        if self.pool == "cls":
            feats = x[:, 0]
        else:
            feats = layer_norm("fc_norm", self.dtype)(x[:, 1:].mean(axis=1))
        if not self.num_classes:
            return feats
        head = nn.Dense(self.num_classes, kernel_init=dense_init, dtype=self.dtype, name="head")
        return head(feats)
