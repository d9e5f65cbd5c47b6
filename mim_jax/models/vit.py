"""Vision Transformer blocks (timm/MAE layout: pre-norm, fused qkv, exact GELU, LN eps 1e-6),
with the BEiT-family options SimMIM, MaskFeat and CAE use: layer scale, a relative
position bias shared by all blocks, and per-method weight initialisation."""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models import posemb
from mim_jax.models.attention import attend
from mim_jax.models.patch import PatchEmbed, patch_grid

# MAE `_init_weights`: xavier-uniform Linear weights, zero biases; LayerNorm (1, 0).
dense_init = nn.initializers.xavier_uniform()
token_init = nn.initializers.normal(stddev=0.02)  # cls/mask tokens: normal(std=.02)
# BEiT-family repos' local `trunc_normal_(t, std=.02)` passes a=-std, b=std: truncated at
# +-1 std (VideoMAE mask token; every SimMIM ViT weight, simmim.py `_trunc_normal_`).
trunc_std_init = nn.initializers.truncated_normal(stddev=0.02, lower=-1.0, upper=1.0)
LN_EPS = 1e-6
QKV_BIAS = ("qkv", "qv", "none")


def split_qkv_init(key, shape, dtype=jnp.float32):
    """A fused [D, 3D] qkv kernel initialised as three xavier-uniform [D, D] Linears."""
    d = shape[0]
    keys = jax.random.split(key, 3)
    return jnp.concatenate([dense_init(k, (d, d), dtype) for k in keys], axis=1)


def scaled_init(init: Callable, scale: float) -> Callable:
    """`init` times `scale`: BEiT's `fix_init_weight` divides each block's output
    projections by sqrt(2 * layer_id) (layer_id from 1)."""
    if scale == 1.0:
        return init

    def scaled(key, shape, dtype=jnp.float32):
        return init(key, shape, dtype) * scale

    return scaled


def relative_position_index(grid: tuple[int, int], cls_token: bool = True) -> np.ndarray:
    """[N, N] int32 index into a relative-position table for a row-major h x w grid (BEiT's
    `RelativePositionBias`): (2h-1)(2w-1) offset entries, then three for token->cls,
    cls->token and cls->cls when `cls_token` (N = 1 + h*w, cls first)."""
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([rows.reshape(-1), cols.reshape(-1)])  # [2, h*w]
    rel = coords[:, :, None] - coords[:, None, :]  # [2, hw, hw]: position i minus j
    index = (rel[0] + h - 1) * (2 * w - 1) + (rel[1] + w - 1)
    if not cls_token:
        return index.astype(np.int32)
    n = (2 * h - 1) * (2 * w - 1)
    full = np.zeros((h * w + 1, h * w + 1), np.int64)
    full[1:, 1:] = index
    full[0, :] = n  # cls -> token
    full[:, 0] = n + 1  # token -> cls
    full[0, 0] = n + 2
    return full.astype(np.int32)


class RelativePositionBias(nn.Module):
    """A learned per-head bias for every (query, key) offset: -> [heads, N, N] (BEiT; the
    table starts at zero, as BEiT and SimMIM leave it)."""

    grid: tuple[int, int]
    num_heads: int
    cls_token: bool = True

    @nn.compact
    def __call__(self) -> jax.Array:
        h, w = self.grid
        size = (2 * h - 1) * (2 * w - 1) + (3 if self.cls_token else 0)
        table = self.param("table", nn.initializers.zeros, (size, self.num_heads))
        index = relative_position_index(self.grid, self.cls_token)
        return jnp.moveaxis(table[index], -1, 0)  # [heads, N, N]


def layer_norm(name: str, dtype, eps: float = LN_EPS) -> nn.LayerNorm:
    """LayerNorm as torch computes it (two-pass variance), eps 1e-6 (timm's ViTs)."""
    return nn.LayerNorm(epsilon=eps, use_fast_variance=False, dtype=dtype, name=name)


def drop_path(x: jax.Array, rate: float, train: bool, module: nn.Module) -> jax.Array:
    """Stochastic depth: zero whole samples with probability `rate` (drawn from the
    module's "dropout" stream), rescale the rest; identity at eval."""
    if not train or rate == 0.0:
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, shape)
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


class Mlp(nn.Module):
    """fc1 -> GELU (erf, as torch's nn.GELU) -> fc2."""

    hidden_dim: int
    dtype: jnp.dtype = jnp.float32
    kernel_init: Callable = dense_init
    out_scale: float = 1.0  # fc2's init multiplier (BEiT fix_init_weight)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_dim = x.shape[-1]
        x = nn.Dense(self.hidden_dim, kernel_init=self.kernel_init, dtype=self.dtype, name="fc1")(x)
        x = nn.gelu(x, approximate=False)
        out_init = scaled_init(self.kernel_init, self.out_scale)
        return nn.Dense(out_dim, kernel_init=out_init, dtype=self.dtype, name="fc2")(x)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection: [B, N, D] -> [B, N, D].

    `qkv_bias`: "qkv" (timm/MAE), "qv" (VideoMAE: learned q and v biases, k bias fixed at
    zero) or "none". `attention`: "auto" | "xla" | "cudnn" (models/attention.py).
    """

    num_heads: int
    dtype: jnp.dtype = jnp.float32
    attention: str = "auto"
    qkv_bias: str = "qkv"
    split_init: bool = False  # xavier per q/k/v [D, D] (separate Linears, MAE-ST)
    kernel_init: Callable = dense_init
    out_scale: float = 1.0  # proj's init multiplier (BEiT fix_init_weight)

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array | None = None) -> jax.Array:
        """x [B, N, D]; bias [heads, N, N] (relative positions) added to the logits."""
        b, n, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}")
        if self.qkv_bias not in QKV_BIAS:
            raise ValueError(f"qkv_bias must be one of {QKV_BIAS}, got {self.qkv_bias!r}")
        fused = self.qkv_bias == "qkv"
        init = split_qkv_init if self.split_init else self.kernel_init
        qkv = nn.Dense(3 * d, use_bias=fused, kernel_init=init, dtype=self.dtype, name="qkv")(x)
        if self.qkv_bias == "qv":
            q_bias = self.param("q_bias", nn.initializers.zeros, (d,))
            v_bias = self.param("v_bias", nn.initializers.zeros, (d,))
            qkv = qkv + jnp.concatenate([q_bias, jnp.zeros_like(q_bias), v_bias]).astype(qkv.dtype)
        # timm's split order: [B, N, 3, heads, head_dim]
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads), 2, 0)
        out = attend(q, k, v, bias, self.attention).reshape(b, n, d)
        proj_init = scaled_init(self.kernel_init, self.out_scale)
        return nn.Dense(d, kernel_init=proj_init, dtype=self.dtype, name="proj")(out)


class Block(nn.Module):
    """Pre-norm transformer block with optional stochastic depth (per-sample drop path) and
    layer scale (learned per-channel residual gains `gamma_1`, `gamma_2`, CaiT/BEiT)."""

    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    qkv_bias: str = "qkv"
    split_init: bool = False
    layer_scale: float | None = None  # initial gamma; None: no layer scale
    kernel_init: Callable = dense_init
    out_scale: float = 1.0
    attention: str = "auto"  # models/attention.py IMPLEMENTATIONS

    def _scale(self, name: str, y: jax.Array) -> jax.Array:
        if self.layer_scale is None:
            return y
        init = nn.initializers.constant(self.layer_scale)
        return y * self.param(name, init, (y.shape[-1],)).astype(y.dtype)

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool = False, bias: jax.Array | None = None
    ) -> jax.Array:
        attn = Attention(
            self.num_heads,
            dtype=self.dtype,
            qkv_bias=self.qkv_bias,
            split_init=self.split_init,
            kernel_init=self.kernel_init,
            out_scale=self.out_scale,
            attention=self.attention,
            name="attn",
        )
        y = self._scale("gamma_1", attn(layer_norm("norm1", self.dtype)(x), bias))
        x = x + drop_path(y, self.drop_path, train, self)
        hidden = int(x.shape[-1] * self.mlp_ratio)
        mlp = Mlp(hidden, self.dtype, self.kernel_init, self.out_scale, name="mlp")
        y = self._scale("gamma_2", mlp(layer_norm("norm2", self.dtype)(x)))
        return x + drop_path(y, self.drop_path, train, self)


# Block activations kept for the backward pass (the rest is recomputed): all ("none"), only
# the block inputs ("full"), or also the weight matmuls' outputs ("dots"; attention scores
# and elementwise ops are recomputed).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def remat_block(
    block: type[nn.Module], remat: str, static_argnums: tuple[int, ...] = (2,)
) -> type[nn.Module]:
    """`block` rematerialized with policy `remat`; `static_argnums` count `self` as 0
    (default: block(x, train, ...), `train` a Python bool)."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"model.remat={remat!r}; valid: {sorted(REMAT_POLICIES)}")
    if remat == "none":
        return block
    return nn.remat(block, policy=REMAT_POLICIES[remat], static_argnums=static_argnums)


class Encoder(nn.Module):
    """`depth` blocks then (unless `final_norm=False`) a LayerNorm: [B, N, D] -> [B, N, D].

    Drop-path rates rise linearly from 0 to `drop_path` over depth (timm convention).
    `rescale_init` divides block i's output projections by sqrt(2 (i + 1)) at init (BEiT).
    """

    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    final_norm: bool = True
    qkv_bias: str = "qkv"
    split_init: bool = False
    layer_scale: float | None = None
    kernel_init: Callable = dense_init
    rescale_init: bool = False
    remat: str = "none"  # a REMAT_POLICIES key: what each block keeps for the backward pass
    attention: str = "auto"  # models/attention.py IMPLEMENTATIONS

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        train: bool = False,
        bias: jax.Array | None = None,
        return_hidden: bool = False,
    ):
        """x [B, N, D]; bias [heads, N, N] shared by all blocks. With `return_hidden`,
        also each block's output (before the final norm): (out, [depth x [B, N, D]])."""
        rates = np.linspace(0.0, self.drop_path, self.depth) if self.depth else []
        block = remat_block(Block, self.remat)
        hidden = []
        for i, rate in enumerate(rates):
            x = block(
                self.num_heads,
                self.mlp_ratio,
                float(rate),
                dtype=self.dtype,
                qkv_bias=self.qkv_bias,
                split_init=self.split_init,
                layer_scale=self.layer_scale,
                kernel_init=self.kernel_init,
                out_scale=1.0 / np.sqrt(2.0 * (i + 1)) if self.rescale_init else 1.0,
                attention=self.attention,
                name=f"blocks_{i}",
            )(x, train, bias)
            hidden.append(x)
        out = layer_norm("norm", self.dtype)(x) if self.final_norm else x
        return (out, hidden) if return_hidden else out


class MaskTokenViT(nn.Module):
    """A ViT that encodes every patch, masked ones replaced by a learned mask token after
    the patch embedding (SimMIM `VisionTransformerForSimMIM`, MaskFeat): images
    [B, H, W, C], mask bool [B, L] (True = masked) or None -> [B, 1 + L, D], cls first.

    BEiT-style options: `pos_embed` "none" | "learn" | "sincos", one relative position
    bias shared by all blocks, layer scale, q/v biases, `init` for every weight and token
    (SimMIM: truncated at +-1 std; the patch conv too, zero bias) with BEiT's depth
    rescaling.
    """

    image_size: tuple[int, int]
    patch_size: int
    width: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    pos_embed: str = "none"
    rel_pos_bias: bool = True
    layer_scale: float | None = 0.1
    qkv_bias: str = "qv"
    rescale_init: bool = True
    weight_init: Callable = trunc_std_init
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"
    attention: str = "auto"  # models/attention.py IMPLEMENTATIONS

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(self.image_size, self.patch_size)

    @nn.compact
    def __call__(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        embed = PatchEmbed(
            self.patch_size,
            self.width,
            dtype=self.dtype,
            kernel_init=self.weight_init,
            name="patch_embed",
        )
        x = embed(images)  # [B, L, D]
        mask_token = self.param("mask_token", self.weight_init, (1, 1, self.width))
        if mask is not None:
            w = mask[..., None].astype(x.dtype)
            x = x * (1 - w) + mask_token.astype(x.dtype) * w
        cls = self.param("cls_token", self.weight_init, (1, 1, self.width))
        x = jnp.concatenate(
            [jnp.broadcast_to(cls, (x.shape[0], 1, self.width)).astype(x.dtype), x], 1
        )
        if self.pos_embed == "learn":
            x = x + self.param("pos_embed", self.weight_init, (1, x.shape[1], self.width))
        elif self.pos_embed == "sincos":
            x = x + posemb.sincos_2d(self.width, self.grid, cls_token=True)
        elif self.pos_embed != "none":
            raise ValueError(f"pos_embed must be none|learn|sincos, got {self.pos_embed!r}")
        bias = None
        if self.rel_pos_bias:
            bias = RelativePositionBias(self.grid, self.num_heads, name="rel_pos_bias")()
        encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.drop_path,
            self.dtype,
            qkv_bias=self.qkv_bias,
            layer_scale=self.layer_scale,
            kernel_init=self.weight_init,
            rescale_init=self.rescale_init,
            remat=self.remat,
            attention=self.attention,
            name="encoder",
        )
        return encoder(x.astype(self.dtype), train, bias)
