"""The attention switch: padding + true lengths (the cuDNN recipe) computes the unpadded
attention and its gradients; "auto" picks cuDNN only where it can run; config.model.attention
reaches every ViT-family attention and is validated before anything compiles."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mae as mae_config
from mim_jax import config_lib, methods
from mim_jax.models import attention, vit


def _qkv(t: int, s: int, dtype=jnp.float32, heads: int = 2, head_dim: int = 8):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    q = jax.random.normal(keys[0], (3, t, heads, head_dim), dtype)
    k = jax.random.normal(keys[1], (3, s, heads, head_dim), dtype)
    v = jax.random.normal(keys[2], (3, s, heads, head_dim), dtype)
    bias = jax.random.normal(keys[3], (1, heads, t, s), dtype)
    return q, k, v, bias


@pytest.mark.parametrize("t, s", [(197, 197), (13, 50), (16, 16)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_padding_with_true_lengths_equals_unpadded_attention(t, s, with_bias):
    """The cuDNN recipe, run through XLA (which honours the lengths too): outputs and the
    gradients of q, k, v and the bias match the unpadded attention."""
    q, k, v, bias = _qkv(t, s)
    bias = bias if with_bias else None
    ref = lambda *a: jax.nn.dot_product_attention(*a, implementation="xla")
    pad = lambda *a: attention.padded_attention(*a, implementation="xla")
    np.testing.assert_allclose(pad(q, k, v, bias), ref(q, k, v, bias), rtol=1e-5, atol=1e-5)
    args = (q, k, v) + ((bias,) if with_bias else ())
    argnums = tuple(range(len(args)))
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a[:3], a[3] if with_bias else None)))
    g_ref = jax.grad(loss(ref), argnums)(*args)
    g_pad = jax.grad(loss(pad), argnums)(*args)
    for a, b in zip(g_pad, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_padding_is_real_for_odd_lengths():
    """197 tokens reach the kernel as 200, with the true lengths (what cuDNN needs)."""
    q, k, v, _ = _qkv(197, 197)
    jaxpr = str(jax.make_jaxpr(lambda *a: attention.padded_attention(*a, None, "xla"))(q, k, v))
    assert "200" in jaxpr and "197" in jaxpr


def test_padded_bf16_attention_matches_float32_within_bf16_tolerance():
    q, k, v, bias = _qkv(197, 197)
    ref = jax.nn.dot_product_attention(q, k, v, bias, implementation="xla")
    cast = lambda x: x.astype(jnp.bfloat16)
    out = attention.padded_attention(cast(q), cast(k), cast(v), cast(bias), "xla")
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=3e-2, rtol=3e-2)


def test_attend_takes_a_per_head_bias_and_mixed_dtypes():
    q, k, v, bias = _qkv(10, 10)
    out = attention.attend(q, k.astype(jnp.bfloat16), v, bias[0], "xla")
    ref = jax.nn.dot_product_attention(q, k.astype(jnp.bfloat16).astype(q.dtype), v, bias)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


@pytest.mark.parametrize(
    "cuda, dtype, head_dim, expected",
    [
        (True, jnp.bfloat16, 64, "cudnn"),
        (True, jnp.float16, 64, "cudnn"),
        (True, jnp.float32, 64, "xla"),  # cuDNN flash attention takes bf16/fp16 only
        (True, jnp.bfloat16, 12, "xla"),  # head dim not a multiple of 8
        (True, jnp.bfloat16, 512, "xla"),  # over the 256 limit
        (False, jnp.bfloat16, 64, "xla"),  # CPU, TPU, ROCm
    ],
)
def test_auto_picks_cudnn_only_where_it_runs(monkeypatch, cuda, dtype, head_dim, expected):
    monkeypatch.setattr(attention, "on_cuda", lambda: cuda)
    monkeypatch.setattr(attention, "cudnn_max_head_dim", lambda: 256)
    assert attention.resolve("auto", dtype, head_dim) == expected
    assert attention.resolve("xla", dtype, head_dim) == "xla"  # explicit choices are kept


def test_cudnn_path_pads_before_calling_the_kernel(monkeypatch):
    """On a (pretend) GPU, "auto" in bf16 sends padded q/k/v plus true lengths to cuDNN."""
    calls = []

    def fake(q, k, v, bias=None, **kw):
        calls.append((q.shape, k.shape, kw))
        return jnp.zeros(q.shape, q.dtype)

    monkeypatch.setattr(attention, "cudnn_supports", lambda dtype, d: True)
    monkeypatch.setattr(attention.jax.nn, "dot_product_attention", fake)
    q, k, v, _ = _qkv(197, 50, jnp.bfloat16)
    assert attention.attend(q, k, v).shape == q.shape
    (q_shape, k_shape, kw) = calls[0]
    assert q_shape[1] == 200 and k_shape[1] == 56 and kw["implementation"] == "cudnn"
    assert int(kw["query_seq_lengths"][0]) == 197 and int(kw["key_value_seq_lengths"][0]) == 50


def test_unknown_implementation_names_the_key():
    x = jnp.zeros((1, 3, 8))
    with pytest.raises(ValueError, match="config.model.attention='flash'"):
        vit.Encoder(1, 2, attention="flash").init(jax.random.PRNGKey(0), x)


# (config module, arg, modules that must carry the choice): every ViT-family attention.
CONFIGS = [
    ("mae", ""),
    ("crossmae", ""),
    ("cae", ""),
    ("maskfeat", ""),
    ("simmim", ""),
    ("videomae", ""),
    ("mae_st", ""),
    ("audiomae", "decoder=global"),
    ("finetune", ""),
    ("attentive_probe", ""),
]


@pytest.mark.parametrize("name, arg", CONFIGS, ids=[f"{n}:{a}" for n, a in CONFIGS])
def test_config_choice_reaches_every_attention(monkeypatch, name, arg):
    """With config.model.attention="xla" every attention call resolves "xla" and with an
    invalid value the first one fails: no attention keeps a default of its own."""
    config = importlib.import_module(f"configs.{name}").get_config(arg or None)
    config.batch_size = 2
    seen = []
    original = attention.resolve

    def spy(implementation, dtype, head_dim):
        seen.append(implementation)
        return original("xla", dtype, head_dim)

    monkeypatch.setattr(attention, "resolve", spy)
    config.model.attention = "xla"
    method = methods.build(config)
    shape = (2, *config_lib.input_shape(config.data))
    batch = {"image": jnp.zeros(shape), "label": jnp.zeros((2,), jnp.int32)}
    rngs = {k: jax.random.PRNGKey(i) for i, k in enumerate(("masking", "dropout", "augment"))}
    if hasattr(method, "init_variables"):  # classifiers: params + BatchNorm statistics
        variables = dict(jax.eval_shape(method.init_variables, jax.random.PRNGKey(0), batch))
        params = variables.pop("params")
        loss = lambda p, s: method.loss(p, batch, rngs, model_state=s)
    else:
        params, variables = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch), {}
        loss = lambda p, s: method.loss(p, batch, rngs)
    jax.eval_shape(loss, params, variables)
    assert seen and set(seen) == {"xla"}, seen


def _validate(**model):
    c = mae_config.get_config()
    c.model.update(model)
    config_lib.validate(c, 1)


def test_validate_rejects_bad_values_and_cudnn_off_gpu():
    with pytest.raises(ValueError, match=r"config.model.attention='flash'; valid"):
        _validate(attention="flash")
    with pytest.raises(ValueError, match=r"attention='cudnn' needs an NVIDIA GPU.*'cpu'"):
        _validate(attention="cudnn")
    _validate(attention="xla")
    _validate(attention="auto")


def test_validate_cudnn_needs_bf16_and_head_dims(monkeypatch):
    monkeypatch.setattr(attention, "on_cuda", lambda: True)
    monkeypatch.setattr(attention, "cudnn_max_head_dim", lambda: 256)
    c = mae_config.get_config()  # small default: widths 128/4 and 64/4 -> 32, 16 per head
    c.model.attention = "cudnn"
    c.dtype = "float32"
    with pytest.raises(ValueError, match=r"needs bf16 compute; config.dtype='float32'"):
        config_lib.validate(c, 1)
    c.dtype = "bfloat16"
    config_lib.validate(c, 1)
    c.model.decoder_heads = 16  # 64 / 16 = 4 per head
    with pytest.raises(ValueError, match=r"config.model.decoder_width/decoder_heads = 4"):
        config_lib.validate(c, 1)


def test_a_run_saved_before_the_key_existed_resumes_unchanged():
    import json

    config = mae_config.get_config()
    saved = json.loads(config.to_json_best_effort())
    del saved["model"]["attention"]
    assert config_lib.ADDED_KEYS["model.attention"] == "xla"  # what old runs computed with
    assert config_lib.config_changes(saved, config) == []
    config.model.attention = "cudnn"  # another kernel for the same attention: resumable
    assert config_lib.config_changes(saved, config) == []
