"""Cross-attention blocks: queries attend to a separate memory (CrossMAE's decoder, CAE's
latent regressor). Masked-token queries never attend to each other here unless the memory
includes them (CAE appends the queries to the keys/values; CrossMAE does not)."""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mim_jax.models.attention import attend
from mim_jax.models.vit import Mlp, dense_init, drop_path, layer_norm


class CrossAttention(nn.Module):
    """Multi-head attention of queries [B, M, Dq] over keys [B, N, Dk] and values [B, N, Dk]
    -> [B, M, Dq]. `fused_kv`: one Linear makes k and v from `k_in` (CrossMAE's `kv`);
    else separate q/k/v Linears without bias plus learned q and v biases (CAE, BEiT).
    `attention`: "auto" | "xla" | "cudnn" (models/attention.py)."""

    num_heads: int
    fused_kv: bool = True
    dtype: jnp.dtype = jnp.float32
    kernel_init: Callable = dense_init
    attention: str = "auto"

    @nn.compact
    def __call__(self, q_in: jax.Array, k_in: jax.Array, v_in: jax.Array | None = None):
        b, m, d = q_in.shape
        n = k_in.shape[1]
        if d % self.num_heads:
            raise ValueError(f"width {d} is not divisible by num_heads={self.num_heads}")
        dense = lambda f, name, bias: nn.Dense(
            f, use_bias=bias, kernel_init=self.kernel_init, dtype=self.dtype, name=name
        )
        if self.fused_kv:
            if v_in is not None:
                raise ValueError("fused_kv cross-attention takes keys and values from k_in")
            q = dense(d, "q", True)(q_in)
            k, v = jnp.split(dense(2 * d, "kv", True)(k_in), 2, axis=-1)
        else:
            v_in = k_in if v_in is None else v_in
            # The fp32 biases are added in the compute dtype (as vit.Attention's q/v biases),
            # so bf16 activations stay bf16 into the attention.
            biased = lambda x, name: (
                x + self.param(name, nn.initializers.zeros, (d,)).astype(x.dtype)
            )
            q = biased(dense(d, "q", False)(q_in), "q_bias")
            k = dense(d, "k", False)(k_in)
            v = biased(dense(d, "v", False)(v_in), "v_bias")
        h = self.num_heads
        q = q.reshape(b, m, h, d // h)
        k = k.reshape(b, n, h, d // h)
        v = v.reshape(b, n, h, d // h)
        out = attend(q, k, v, implementation=self.attention).reshape(b, m, d)
        return dense(d, "proj", True)(out)


class CrossBlock(nn.Module):
    """Pre-norm cross-attention block (CrossMAE transformer_utils.py CrossAttentionBlock):
    x + CrossAttn(LN(x), memory), then x + MLP(LN(x)). x [B, M, D], memory [B, N, Dm]."""

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32
    attention: str = "auto"  # models/attention.py IMPLEMENTATIONS

    @nn.compact
    def __call__(self, x: jax.Array, memory: jax.Array) -> jax.Array:
        attn = CrossAttention(
            self.num_heads, True, self.dtype, attention=self.attention, name="cross_attn"
        )
        x = x + attn(layer_norm("norm1", self.dtype)(x), memory)
        hidden = int(x.shape[-1] * self.mlp_ratio)
        return x + Mlp(hidden, self.dtype, name="mlp")(layer_norm("norm2", self.dtype)(x))


class RegressorBlock(nn.Module):
    """CAE's latent-regressor block (modeling_cae_helper.py RegressorBlock): queries plus
    their positions attend to keys = LN(memory + pos) and values = LN(memory), a layer-
    scaled residual, then a post-norm of the stream and a layer-scaled MLP residual."""

    num_heads: int
    mlp_ratio: float = 4.0
    layer_scale: float = 0.1
    drop_path: float = 0.0
    dtype: jnp.dtype = jnp.float32
    attention: str = "auto"  # models/attention.py IMPLEMENTATIONS

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        memory: jax.Array,
        pos_q: jax.Array,
        pos_k: jax.Array,
        train: bool = False,
    ) -> jax.Array:
        """x [B, M, D] (queries), memory [B, N, D], pos_q [B, M, D], pos_k [B, N, D]."""
        d = x.shape[-1]
        gamma = lambda name: self.param(name, nn.initializers.constant(self.layer_scale), (d,))
        attn = CrossAttention(
            self.num_heads, False, self.dtype, attention=self.attention, name="cross_attn"
        )
        y = attn(
            layer_norm("norm1_q", self.dtype)(x + pos_q),
            layer_norm("norm1_k", self.dtype)(memory + pos_k),
            layer_norm("norm1_v", self.dtype)(memory),
        )
        x = x + drop_path(gamma("gamma_1") * y, self.drop_path, train, self)
        x = layer_norm("norm2", self.dtype)(x)
        y = Mlp(int(d * self.mlp_ratio), self.dtype, name="mlp")(x)
        return x + drop_path(gamma("gamma_2") * y, self.drop_path, train, self)
