"""Scaled dot-product attention for every ViT-family block, behind one switch
(`config.model.attention`): XLA's attention, or cuDNN's fused flash attention on NVIDIA
GPUs, with the sequence padded to a multiple of 8 and the true lengths passed, since
cuDNN refuses odd lengths in training (MAE's 197-token decoder; shared/FACTS.md)."""

import jax
import jax.numpy as jnp
from jax import lax

IMPLEMENTATIONS = ("auto", "xla", "cudnn")
PAD_MULTIPLE = 8  # cuDNN flash attention: pad T and S to this (verified on H100, jax 0.11)
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def on_cuda() -> bool:
    """True when the default backend is an NVIDIA GPU (cuDNN present), not ROCm or CPU."""
    if jax.default_backend() != "gpu":
        return False
    return "cuda" in getattr(jax.devices()[0].client, "platform_version", "").lower()


def cudnn_max_head_dim() -> int:
    """cuDNN flash attention's largest head dim: 256 from Hopper (sm90) on, else 128
    (jax `_src/cudnn/fused_attention_stablehlo.py` check_is_flash_attention)."""
    try:
        major = int(str(jax.devices()[0].compute_capability).split(".")[0])
    except (AttributeError, ValueError):
        return 128
    return 256 if major >= 9 else 128


def cudnn_supports(dtype, head_dim: int) -> bool:
    """Whether cuDNN flash attention takes these inputs on this host."""
    return (
        on_cuda()
        and jnp.dtype(dtype) in CUDNN_DTYPES
        and head_dim % 8 == 0
        and head_dim <= cudnn_max_head_dim()
    )


def resolve(implementation: str, dtype, head_dim: int) -> str:
    """ "auto" -> "cudnn" where `cudnn_supports(dtype, head_dim)`, else "xla"; an explicit
    choice is kept (an unsupported "cudnn" then fails in JAX, naming the reason)."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"config.model.attention={implementation!r}; valid: {IMPLEMENTATIONS}")
    if implementation == "auto":
        return "cudnn" if cudnn_supports(dtype, head_dim) else "xla"
    return implementation


def logits_einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """`jnp.einsum(spec, a, b)` accumulated and returned in float32. bf16 operands stay
    bf16 in the backward pass too (the BF16_BF16_F32 algorithm, as jax's own XLA attention
    sets it: without it the float32 cotangent makes the gradient matmuls float32, jax
    issue 24047). For the window attentions, which build their logits themselves."""
    if a.dtype == jnp.bfloat16 and b.dtype == jnp.bfloat16:
        preset = lax.DotAlgorithmPreset.BF16_BF16_F32
        return jnp.einsum(spec, a, b, precision=preset, preferred_element_type=jnp.float32)
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _pad_to(x: jax.Array, axis: int, size: int) -> jax.Array:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths)


def padded_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None = None,
    implementation: str = "cudnn",
    multiple: int = PAD_MULTIPLE,
) -> jax.Array:
    """`jax.nn.dot_product_attention` with T and S zero-padded up to `multiple` and the
    true lengths passed as `query_seq_lengths` / `key_value_seq_lengths` (padded keys are
    masked out, padded query rows cut off): equals the unpadded attention.

    q [B, T, h, d], k and v [B, S, h, d], bias broadcastable to [B, h, T, S] -> [B, T, h, d].
    """
    b, t, s = q.shape[0], q.shape[1], k.shape[1]
    tp, sp = -(-t // multiple) * multiple, -(-s // multiple) * multiple
    if (tp, sp) == (t, s):
        return jax.nn.dot_product_attention(q, k, v, bias, implementation=implementation)
    q, k, v = _pad_to(q, 1, tp), _pad_to(k, 1, sp), _pad_to(v, 1, sp)
    if bias is not None:
        bias = jnp.broadcast_to(bias, (*bias.shape[:-2], t, s))
        bias = _pad_to(_pad_to(bias, -2, tp), -1, sp)
    out = jax.nn.dot_product_attention(
        q,
        k,
        v,
        bias,
        query_seq_lengths=jnp.full((b,), t, jnp.int32),
        key_value_seq_lengths=jnp.full((b,), s, jnp.int32),
        implementation=implementation,
    )
    return out[:, :t]


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None = None,
    implementation: str = "auto",
) -> jax.Array:
    """softmax(q k^T / sqrt(d) + bias) v per head, by `implementation` (IMPLEMENTATIONS):
    q [B, T, h, d], k and v [B, S, h, d], bias [heads, T, S] or broadcastable to
    [B, h, T, S] -> [B, T, h, d]. Logits and softmax are float32 in either path."""
    impl = resolve(implementation, q.dtype, q.shape[-1])
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    if bias is not None:
        bias = bias.astype(q.dtype)
        bias = bias[None] if bias.ndim == 3 else bias
    if impl == "cudnn":
        return padded_attention(q, k, v, bias, "cudnn")
    return jax.nn.dot_product_attention(q, k, v, bias, implementation="xla")
