"""config.dtype="bfloat16" is mixed precision in every method: float32 params, gradients
and loss; the matmuls (attention included, forward and backward) in bf16; and the loss
close to the float32 model's on the same params."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import config_lib, methods

CONFIGS = [
    ("mae", ""),
    ("crossmae", ""),
    ("cae", ""),
    ("maskfeat", ""),
    ("simmim", ""),
    ("simmim", "variant=Swin-B,data=synthetic"),
    ("videomae", ""),
    ("videomae_v2", ""),
    ("mae_st", ""),
    ("audiomae", ""),
    ("finetune", ""),
]
TINY_SWIN = dict(width=32, depths=(2, 2), heads=(2, 4), window=4, mask_patch_size=8)


def _config(name: str, arg: str, dtype: str, batch: int = 4):
    config = importlib.import_module(f"configs.{name}").get_config(arg or None)
    config.dtype, config.batch_size = dtype, batch
    if arg.startswith("variant=Swin"):
        config.data.image_size = 32
        config.model.update(TINY_SWIN)
    return config


def _loss_fn(config, abstract: bool = True):
    """(params, loss(params)) of config's method on random inputs; params as shapes only
    unless `abstract=False`."""
    method = methods.build(config)
    shape = (config.batch_size, *config_lib.input_shape(config.data))
    batch = {
        "image": jax.random.normal(jax.random.PRNGKey(3), shape),
        "label": jnp.arange(shape[0], dtype=jnp.int32) % config.data.num_classes,
    }
    rngs = {k: jax.random.PRNGKey(i) for i, k in enumerate(("masking", "dropout", "augment"))}
    init = jax.eval_shape if abstract else lambda f, *a: jax.jit(f)(*a)
    if hasattr(method, "init_variables"):  # classifiers: params + BatchNorm statistics
        variables = dict(init(method.init_variables, jax.random.PRNGKey(0), batch))
        params = variables.pop("params")
        return params, lambda p: method.loss(p, batch, rngs, model_state=variables)[0]
    params = init(method.init, jax.random.PRNGKey(0), batch)
    return params, lambda p: method.loss(p, batch, rngs)[0]


def _dot_flops(jaxpr, out: dict) -> None:
    """Sums 2 x (output size) x (contracted size) of every dot_general, by whether it
    computes in float32 (float32 operands without a bf16 algorithm) or not."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval
            k = int(np.prod([lhs.shape[i] for i in contract]))
            flops = 2 * int(np.prod(eqn.outvars[0].aval.shape)) * k
            dtypes = {str(v.aval.dtype) for v in eqn.invars}
            preset = "BF16" in str(eqn.params.get("precision"))
            key = "f32" if dtypes == {"float32"} or ("float32" in dtypes and not preset) else "bf16"
            out[key] = out.get(key, 0) + flops
        for value in eqn.params.values():
            for sub in value if isinstance(value, list | tuple) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _dot_flops(inner, out)


@pytest.mark.parametrize("name, arg", CONFIGS, ids=[f"{n}:{a.split(',')[0]}" for n, a in CONFIGS])
def test_bf16_is_mixed_precision(name, arg):
    config = _config(name, arg, "bfloat16")
    params, loss = _loss_fn(config)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    value, grads = jax.eval_shape(jax.value_and_grad(loss), params)
    assert value.dtype == jnp.float32
    assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    # The matmul work that grows with the batch (4 -> 8 examples) is bf16, in the forward
    # and the backward pass; float32 matmuls stay only where intended: the classifier's
    # logits (a sliver) and Audio-MAE's position-bias MLP (per step, not per example).
    grown = {}
    for batch, sign in ((8, 1), (4, -1)):
        cfg = _config(name, arg, "bfloat16", batch)
        p, fn = _loss_fn(cfg)
        shares = {}
        _dot_flops(jax.make_jaxpr(jax.value_and_grad(fn))(p).jaxpr, shares)
        for key, value in shares.items():
            grown[key] = grown.get(key, 0) + sign * value
    assert grown.get("f32", 0) < 1e-3 * grown["bf16"], grown


@pytest.mark.parametrize("name, arg", [("mae", ""), ("audiomae", ""), CONFIGS[5]])
def test_bf16_loss_is_close_to_float32(name, arg):
    """Same params, same masks: the bf16 loss within 3% of the float32 one (the norm-pix
    targets and the loss itself are float32 in both)."""
    params, loss16 = _loss_fn(_config(name, arg, "bfloat16"), abstract=False)
    _, loss32 = _loss_fn(_config(name, arg, "float32"))
    np.testing.assert_allclose(jax.jit(loss16)(params), jax.jit(loss32)(params), rtol=3e-2)
