import jax
import jax.numpy as jnp
import numpy as np

from mim_jax.models import vit


def test_attention_matches_naive_softmax_attention():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8))
    layer = vit.Attention(num_heads=2)
    params = layer.init(jax.random.PRNGKey(1), x)
    out = layer.apply(params, x)
    p = params["params"]
    qkv = x @ p["qkv"]["kernel"] + p["qkv"]["bias"]
    q, k, v = qkv.reshape(2, 5, 3, 2, 4).transpose(2, 0, 3, 1, 4)
    att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / 2.0, axis=-1)
    ref = (att @ v).transpose(0, 2, 1, 3).reshape(2, 5, 8) @ p["proj"]["kernel"] + p["proj"]["bias"]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_layernorm_is_torch_style_eps_1e6():
    """Two-pass variance: a large offset does not swamp a small spread (E[x^2]-E[x]^2 would)."""
    x64 = np.asarray([[10.0, 10.01, 9.99]])
    ln = vit.layer_norm("ln", jnp.float32)
    out = ln.apply({"params": {"scale": jnp.ones(3), "bias": jnp.zeros(3)}}, jnp.asarray(x64))
    expected = (x64 - x64.mean()) / np.sqrt(x64.var() + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-3)


def test_drop_path_uses_dropout_rng_and_is_off_at_eval():
    block = vit.Block(num_heads=2, drop_path=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 3, 8))
    params = block.init(jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(block.apply(params, x), block.apply(params, x))
    a = block.apply(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    b = block.apply(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
    assert not np.allclose(a, b)
